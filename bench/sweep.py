"""Experiment throughput as a researcher meets it, every figure taken from whole `cascade` processes started
here, one after another, on the base model already built: the default `cascade run` (with its twin), and a
small study by `cascade sweep` (the scenario's runs on a ring and a complete graph, 2 seeds, each run with its
own twin). It reports runs finished per hour, the share of wall time spent outside the runs' cycles (the
interpreter and its imports, Ray, the hosts, loading the base, building the world, idle cores), and the
seconds of each stage summed over the runs.

`cascade bench sweep [--quick] [--set key=value ...]` (the settings apply to the study's runs)
"""

from __future__ import annotations

import hashlib
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import polars as pl
import tomli_w
from rich.console import Console
from rich.table import Table

from ecosystem.bases import base_checkpoint
from ecosystem.config import Config, load_config
from ecosystem.progress import COMPANION_RUNS, CYCLE_STAGES
from ecosystem.results import RunDirectory

# The study: the systemic experiment's stronger coupling at its full node count.
DEFAULTS = ["topology.nodes=10", "attack.0.examples=50", "topology.edge_weight=1.0", "traffic.harmful_fraction=0.4"]
GRAPHS = ["ring", "complete"]
SEEDS = 2
QUICK_CYCLES = 2


def main(config: Config, quick: bool) -> dict:
    if quick:
        config = config.model_copy(update={"cycles": QUICK_CYCLES})
    default = load_config(None, [f"cycles={QUICK_CYCLES}"] if quick else [])
    for built in (config, default):
        base_checkpoint(built)  # built (or found) before anything is timed
    with tempfile.TemporaryDirectory(prefix="bench-sweep-") as folder:
        single = _default_run(Path(folder) / "default", quick)
        refusals = {  # answered without a model: before torch and Ray load
            "resume of a complete run": _cascade("run", "--resume", str(Path(folder) / "default"), refused=True),
            "resume of a missing directory": _cascade("run", "--resume", str(Path(folder) / "none"), refused=True),
            "a missing sweep file": _cascade("sweep", str(Path(folder) / "none.toml"), "-o", folder, refused=True),
        }
        study = _study(config, Path(folder))
    table = Table(title="throughput: whole cascade processes, wall seconds")
    for column in ("what", "runs", "wall s", "runs per hour", "outside cycles"):
        table.add_column(column, justify="right")
    table.add_row("default cascade run (its twin inside)", "1", f"{single['wall']:.1f}", "", f"{single['outside']:.0%}")
    table.add_row(
        f"sweep: {len(GRAPHS)} graphs x {SEEDS} seeds (+ twins)",
        f"{study['runs']} (+{study['twins']})",
        f"{study['wall']:.1f}",
        f"{study['runs_per_hour']:.1f}",
        f"{study['outside']:.0%}",
    )
    Console().print(table)
    stages = Table(title="seconds per stage, summed over the runs (twins included)")
    for column in ("what", *single["stages"]):
        stages.add_column(column, justify="right")
    stages.add_row("default run", *(f"{value:.1f}" for value in single["stages"].values()))
    stages.add_row("sweep", *(f"{study['stages'].get(stage, 0.0):.1f}" for stage in single["stages"]))
    Console().print(stages)
    Console().print("refusals, seconds: " + ", ".join(f"{what} {seconds:.2f}" for what, seconds in refusals.items()))
    return {
        "default_run": single,
        "sweep": study,
        "refusals": refusals,
    }


def _default_run(out: Path, quick: bool) -> dict[str, Any]:
    """`cascade run` with the built-in configuration, timed from outside."""
    wall = _cascade("run", "--out", str(out), *(["--set", f"cycles={QUICK_CYCLES}"] if quick else []))
    runs = [RunDirectory(out), RunDirectory(out).twin]
    return _shares(wall, runs, slots=1)


def _study(config: Config, folder: Path) -> dict[str, Any]:
    """The study as a `cascade sweep` of its own file, timed from outside."""
    changed = {key: value for key, value in config.settings().items() if Config().settings().get(key) != value}
    spec = folder / "study.toml"
    spec.write_text(tomli_w.dumps({"seeds": SEEDS, "base": changed, "grid": {"topology.name": GRAPHS}}))
    out = folder / "study"
    wall = _cascade("sweep", str(spec), "--out", str(out))
    runs = [RunDirectory(path) for path in sorted((out / "runs").iterdir())]
    twins = [RunDirectory(path) for path in sorted((out / "twins").iterdir())]
    slots = min(os.cpu_count() or 1, len(runs) + len(twins))  # a run computes on one core (hosting.num_cpus)
    cells = pl.read_parquet(out / "cells.parquet").drop("run")
    return {
        **_shares(wall, runs + twins, slots),
        "runs": len(runs),
        "twins": len(twins),
        "runs_per_hour": len(runs) / wall * 3600,
        "cores": slots,
        # the study's figures, to check that a change of speed changed no result
        "cells_digest": hashlib.sha256(cells.write_csv().encode()).hexdigest(),
    }


def _shares(wall: float, runs: list[RunDirectory], slots: int) -> dict[str, Any]:
    """The runs' stage seconds (summed), and the share of the cores' wall time spent outside their cycles."""
    stages: dict[str, float] = {}
    for run in runs:
        for stage, seconds in run.read_manifest().seconds.items():
            if stage not in ("total", *COMPANION_RUNS):  # a twin is counted by its own stages
                stages[stage] = stages.get(stage, 0.0) + seconds
    cycles = sum(stages.get(stage, 0.0) for stage in CYCLE_STAGES)
    return {"wall": wall, "outside": 1 - cycles / (wall * slots), "stages": stages}


def _cascade(*arguments: str, refused: bool = False) -> float:
    """Run `cascade ARGUMENTS` in a new process (one that must be `refused`, or succeed); its wall seconds."""
    started = time.perf_counter()
    done = subprocess.run([sys.executable, "-m", "ecosystem.cli", *arguments], capture_output=True, text=True)
    if done.returncode != (2 if refused else 0):
        raise RuntimeError(f"cascade {' '.join(arguments)}: exit code {done.returncode}: {done.stderr[-2000:]}")
    return time.perf_counter() - started
