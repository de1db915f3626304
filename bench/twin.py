"""What a run's poison-free twin costs, as ratios within one run of this benchmark: the default run alone against the
same run with its twin (which takes from the run what the poison has not reached yet), and with a twin that computes
every node-cycle itself (`evaluation.twin_borrows = false`); and a dose sweep's runs (5 doses, 2 seeds) against the
twins they share (one per seed). Every run is computed in this process, one after another, on the base model already
built.

`cascade bench twin [--quick] [--set key=value ...]`
"""

from __future__ import annotations

import tempfile
import time
from pathlib import Path

from rich.console import Console
from rich.table import Table

from ecosystem.bases import base_checkpoint
from ecosystem.config import Config
from ecosystem.engine import run

DEFAULTS = ["hosting.mode=in_process"]
DOSES = (1, 10, 25, 50, 100)
SEEDS = (0, 1)


def main(config: Config, quick: bool) -> dict:
    if quick:
        config = config.model_copy(update={"cycles": 2})
    base_checkpoint(config)  # built (or found) before anything is timed
    with tempfile.TemporaryDirectory(prefix="bench-twin-") as folder:
        alone = _timed(_twinned(config, False), Path(folder) / "alone")
        with_twin = _timed(_twinned(config, True), Path(folder) / "with-twin")
        with_full_twin = _timed(_twinned(config, True, borrows=False), Path(folder) / "with-full-twin")
        sweep = {}
        for seed in SEEDS:
            seeded = config.model_copy(update={"seed": seed})
            for dose in DOSES:
                attack = [attack.model_copy(update={"examples": dose}) for attack in seeded.attack]
                dosed = _twinned(seeded.model_copy(update={"attack": attack}), False)
                sweep[f"run dose {dose} seed {seed}"] = _timed(dosed, Path(folder) / f"dose-{dose}-{seed}")
            sweep[f"twin seed {seed}"] = _timed(seeded.poison_free(), Path(folder) / f"twin-{seed}")
    runs = sum(seconds for name, seconds in sweep.items() if name.startswith("run"))
    twins = sum(seconds for name, seconds in sweep.items() if name.startswith("twin"))
    default_extra, full_extra, sweep_extra = with_twin / alone - 1, with_full_twin / alone - 1, twins / runs
    table = Table(title="the twin's cost: extra seconds over the runs alone")
    for column in ("what", "runs alone s", "twins s", "extra"):
        table.add_column(column, justify="right")
    table.add_row("default run", f"{alone:.1f}", f"{with_twin - alone:.1f}", f"{default_extra:+.0%}")
    table.add_row("default run, borrowing none", f"{alone:.1f}", f"{with_full_twin - alone:.1f}", f"{full_extra:+.0%}")
    table.add_row(f"{len(DOSES)} doses x {len(SEEDS)} seeds", f"{runs:.1f}", f"{twins:.1f}", f"{sweep_extra:+.0%}")
    Console().print(table)
    seconds = {
        "default run alone": alone,
        "default run with its twin": with_twin,
        "default run with its twin, borrowing none": with_full_twin,
        **sweep,
    }
    return {
        "seconds": seconds,
        "default_run_twin_extra": default_extra,
        "default_run_full_twin_extra": full_extra,
        "dose_sweep_twins_extra": sweep_extra,
    }


def _twinned(config: Config, twin: bool, borrows: bool = True) -> Config:
    """`config` with its poison-free twin (`evaluation.poison_control`) on or off, borrowing from the run or not."""
    evaluation = config.evaluation.model_copy(update={"poison_control": twin, "twin_borrows": borrows})
    return config.model_copy(update={"evaluation": evaluation})


def _timed(config: Config, out: Path) -> float:
    started = time.perf_counter()
    run(config, out)
    return time.perf_counter() - started
