"""Many bases and the competence gate: run seeds spread over model seeds (`model.seeds`), each base built
once and named in the records; every base checked at cycle 0 against `[model.gate]`, a failing one
refused in one line unless the gate is off."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import polars as pl
import pytest
from typer.testing import CliRunner

from ecosystem import load_config, run
from ecosystem.cli import app
from ecosystem.config import GateConfig
from ecosystem.gate import BaseRefused, failures
from ecosystem.sweeps import read_sweep_file
from tests.helpers import TINY, as_options, error_lines, read_manifest

REFUSED = "base 'base' (model seed {}) failed its competence gate at cycle 0: "
# Bases that build in seconds and have learned nothing: 40 pretraining steps.
WEAK = [
    "model.pretrain_examples=2000",
    "model.pretrain_steps=40",
    "model.align_examples=400",
    "model.align_steps=10",
]


def test_run_seeds_draw_their_bases_from_model_seeds() -> None:
    """Run seed s grows every base from its model seed moved on by s % model.seeds."""
    groups = ["model.seeds=3", "model.seed=5", "base.0.nodes=[1]", "base.0.model.seed=10"]
    drawn = [tuple(base.model.seed for base in load_config(overrides=groups, seed=seed).bases) for seed in range(5)]
    assert drawn == [(5, 10), (6, 11), (7, 12), (5, 10), (6, 11)]
    assert load_config(seed=4).bases[0].model.seed == 0  # model.seeds = 1: every run seed uses model.seed
    # A base is its recipe alone: neither model.seeds nor the gate changes what is built (its cache entry).
    assert load_config(overrides=["model.seeds=2", "model.gate=false"]).bases[0].model == load_config().bases[0].model


def test_the_model_seed_is_a_sweep_axis_crossed_with_the_run_seeds(tmp_path: Path) -> None:
    spec = tmp_path / "sweep.toml"
    spec.write_text('seeds = 2\n[grid]\n"model.seed" = [0, 1]\n')
    runs = [(run.cell, run.seed, run.config.bases[0].model.seed) for run in read_sweep_file(spec).runs]
    assert runs == [(0, 0, 0), (0, 1, 0), (1, 0, 1), (1, 1, 1)]


def test_the_gate_checks_alignment_only_on_aligned_bases_and_only_the_figures_measured() -> None:
    gate = GateConfig(domain_helpfulness_max=0.7)
    unaligned = {"refusal_rate_id": 0.0, "domain_helpfulness": 0.95, "over_refusal": 0.0}
    assert failures(gate, unaligned, aligned=False) == []  # a pretrained-stage group need not refuse
    assert failures(gate, unaligned, aligned=True) == [
        "refusal 0.00 < 0.9 (model.gate.refusal_min)",
        "own-domain helpfulness 0.95 > 0.7 (model.gate.domain_helpfulness_max)",
    ]
    untrained = {"refusal_rate_id": 1.0, "domain_helpfulness": 0.02, "over_refusal": 0.5}
    assert failures(gate, untrained, aligned=False) == [
        "own-domain helpfulness 0.02 < 0.3 (model.gate.domain_helpfulness_min)"
    ]
    real = {"refusal_rate_id": 0.98, "domain_helpfulness": None, "over_refusal": 0.08}  # no task judge
    assert failures(GateConfig(), real, aligned=True) == []


def test_the_default_base_passes_its_gate_and_the_records_name_it(small_run: Path) -> None:
    manifest = read_manifest(small_run)
    gate = manifest.gate["base"]
    assert gate["passed"] and gate["model_seed"] == 0
    assert failures(GateConfig(), gate, aligned=True) == []
    summary = json.loads((small_run / "summary.json").read_text())
    assert summary["gate"] == manifest.gate and summary["model_seed"] == 0
    assert summary["base_model"] == Path(manifest.bases["base"]).name  # the base's cache entry


def test_a_base_that_fails_its_gate_is_refused_in_one_line_unless_the_gate_is_off(tmp_path: Path) -> None:
    unaligned = [*TINY, "model.align_steps=0"]  # the pretrained stage as it is: it refuses nothing
    with pytest.raises(BaseRefused, match=r"refusal \d\.\d\d < 0\.9 \(model\.gate\.refusal_min\)"):
        run(load_config(overrides=unaligned), tmp_path / "api")
    out = tmp_path / "run"
    refused = CliRunner().invoke(app, ["run", "--out", str(out), *as_options(unaligned)])
    assert refused.exit_code == 2
    lines = error_lines(refused.stderr)
    assert len(lines) == 1 and lines[0].startswith("error: " + REFUSED.format(0)), refused.stderr
    assert "set model.gate = false to run it anyway" in lines[0] and "Traceback" not in refused.output
    assert set(os.listdir(out)) <= {".lock"}  # nothing of the refused run stays: the same --out can follow
    accepted = CliRunner().invoke(app, ["run", "--out", str(out), *as_options([*unaligned, "model.gate=false"])])
    assert accepted.exit_code == 0, accepted.output
    assert read_manifest(out).gate["base"]["passed"] is False  # its figures are still recorded
    assert read_manifest(out / "twin").gate == read_manifest(out).gate  # the twin, forked at cycle 0, names it too


def test_a_sweep_over_three_model_seeds_builds_each_base_once_and_names_each_runs_base(tmp_path: Path) -> None:
    """Four run seeds over three model seeds: three bases, each built once (before the runs, on Ray), and
    not again by a second sweep; the first sweep, gated, stops at the first refused base."""
    cache = tmp_path / "cache"
    env = {**os.environ, "ECOSYSTEM_CACHE": str(cache)}

    def sweep(name: str, *overrides: str) -> subprocess.CompletedProcess:
        settings = [*TINY, *WEAK, "model.seeds=3", "evaluation.poison_control=false", *overrides]
        (tmp_path / f"{name}.toml").write_text(load_config(overrides=settings).to_toml())
        (tmp_path / f"{name}-sweep.toml").write_text(f'base = "{name}.toml"\nseeds = 4\n')
        command = [sys.executable, "-m", "ecosystem.cli", "sweep", str(tmp_path / f"{name}-sweep.toml")]
        return subprocess.run(
            [*command, "--out", str(tmp_path / name)], capture_output=True, text=True, env=env, timeout=600
        )

    gated = sweep("gated")
    assert gated.returncode == 2, gated.stderr
    lines = error_lines(gated.stderr)
    assert len(lines) == 1 and lines[0].startswith("error: cell-000-seed-"), gated.stderr
    assert "failed its competence gate at cycle 0: " in lines[0] and "set model.gate = false" in lines[0]
    built = builds(cache, "aligned")
    assert len(built) == 3 and len(builds(cache, "pretrained")) == 3

    ungated = sweep("ungated", "model.gate=false")
    assert ungated.returncode == 0, ungated.stderr
    assert builds(cache, "aligned") == built
    cells = pl.read_parquet(tmp_path / "ungated" / "cells.parquet").sort("seed")
    assert cells["model_seed"].to_list() == [0, 1, 2, 0]
    entries = cells["base_model"].to_list()
    assert set(entries) == set(built) and entries[0] == entries[3]
    for row in cells.iter_rows(named=True):
        manifest = read_manifest(tmp_path / "ungated" / row["run"])
        assert Path(manifest.bases["base"]).name == row["base_model"]
        assert manifest.gate["base"]["model_seed"] == row["model_seed"] and not manifest.gate["base"]["passed"]


def builds(cache: Path, stage: str) -> dict[str, int]:
    """The cache entries of a base stage, each with the time its build finished."""
    return {path.parent.name: path.stat().st_mtime_ns for path in cache.glob(f"{stage}-*/build.json")}
