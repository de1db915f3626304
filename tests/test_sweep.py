"""Sweeps: a grid of tiny runs as Ray tasks, gathered into cells.parquet and metrics.parquet, resumed
after an interruption to the same results, and bad sweep files refused before anything is written."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pandas as pd
import polars as pl
import pytest
import ray
from polars.testing import assert_frame_equal
from typer.testing import CliRunner

from ecosystem import load_config, load_sweep, run
from ecosystem.cli import app
from ecosystem.progress import Stage, StageStart
from ecosystem.results import RunDirectory, Status
from ecosystem.sweeps import SweepDirectory, SweepProgress, read_sweep_file, sweep
from tests.helpers import TINY, error_lines, read_manifest

SPEC = """\
base = "base.toml"
seeds = 2
[grid]
"attack.0.examples" = [10, 50]
"cycles" = [1]  # an axis named like a summary figure
"""
# Sweeps run in the session's embedded Ray, in the worker that holds it (and the finished sweep).
pytestmark = pytest.mark.usefixtures("ray_cluster")
RUNS = ["cell-000-seed-0", "cell-000-seed-1", "cell-001-seed-0", "cell-001-seed-1"]


def write_sweep(folder: Path, spec: str = SPEC) -> Path:
    """A sweep file, and beside it base.toml: the tiny run of tests.helpers.TINY."""
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "base.toml").write_text(load_config(overrides=TINY).to_toml())
    (folder / "sweep.toml").write_text(spec)
    return folder / "sweep.toml"


def snapshot(folder: Path) -> dict[str, tuple[bytes, int]]:
    """Every file under `folder` with its bytes and modification time."""
    return {
        str(path.relative_to(folder)): (path.read_bytes(), path.stat().st_mtime_ns)
        for path in sorted(folder.rglob("*"))
        if path.is_file()
    }


@pytest.fixture(scope="module")
def finished(tmp_path_factory) -> tuple[Path, list[SweepProgress]]:
    """A finished sweep of 2 doses and 2 seeds, and the progress it reported."""
    folder = tmp_path_factory.mktemp("sweep")
    reports: list[SweepProgress] = []
    sweep(write_sweep(folder), folder / "out", reports.append)
    return folder / "out", reports


def test_a_sweep_runs_every_cell_and_seed_and_gathers_their_figures(finished) -> None:
    out, reports = finished
    result = load_sweep(out)
    cells = result.cells
    assert cells.select("cell", "seed", "attack.0.examples", "cycles").rows() == [
        (0, 0, 10, 1),
        (0, 1, 10, 1),
        (1, 0, 50, 1),
        (1, 1, 50, 1),
    ]
    assert cells["run"].to_list() == [f"runs/{name}" for name in RUNS]
    assert {"final_mean_refusal", "final_unattacked_refusal", "time_to_systemic"} <= set(cells.columns)
    assert not {"per_cycle", "graph"} & set(cells.columns)
    for row in cells.iter_rows(named=True):
        directory = RunDirectory(out / row["run"])
        assert directory.read_manifest().status is Status.complete
        assert directory.read_config().attack[0].examples == row["attack.0.examples"]
        assert row["final_mean_refusal"] == directory.read_summary()["final_mean_refusal"]
        rows = result.metrics.filter(pl.col("cell") == row["cell"], pl.col("seed") == row["seed"])
        assert (rows["attack.0.examples"] == row["attack.0.examples"]).all()
        assert_frame_equal(rows.drop("cell", "seed", "attack.0.examples", "cycles"), directory.read_metrics())
    assert result.metrics.columns[:4] == ["cell", "seed", "attack.0.examples", "cycles"]
    assert len(pd.read_parquet(out / "cells.parquet")) == 4  # readable without this package
    assert reports[-1].total == 6 and any(report.running for report in reports)  # 4 runs and 2 shared twins
    running = {name for report in reports for name in report.running}
    assert running <= {*RUNS, *(f"twins/{twin.name}" for twin in (out / "twins").iterdir())}


def test_the_runs_of_a_seed_share_one_twin_computed_once(finished) -> None:
    """2 doses at 2 seeds: a twin per seed (its configuration without attacks), each computed once."""
    out, _ = finished
    twins = sorted((out / "twins").iterdir())
    assert len(twins) == 2
    assert all(not read_manifest(twin).resumed and not RunDirectory(twin).read_config().attack for twin in twins)
    cells = load_sweep(out).cells
    for row in cells.iter_rows(named=True):
        directory = RunDirectory(out / row["run"])
        twin = directory.twin.path.resolve()
        assert twin in twins and RunDirectory(twin).read_config().seed == row["seed"]
        assert directory.read_metrics()["twin_refusal_rate"].equals(
            RunDirectory(twin).read_metrics()["refusal_rate"].alias("twin_refusal_rate")
        )
    assert cells["infected_share_final"].is_not_null().all()
    assert (cells["causal_horizon_breaches"] == 0).all()


def test_a_run_in_a_warm_worker_equals_the_same_run_in_a_fresh_process(finished, tmp_path) -> None:
    """Ray reuses a sweep's worker processes (torch loaded, other runs computed before): nothing carries over."""
    out, _ = finished
    warm = RunDirectory(out / "runs" / RUNS[-1])  # the sweep's last run: its worker computed others first
    script = (
        "import sys\nfrom ecosystem import run\nfrom ecosystem.results import RunDirectory\n"
        "warm = RunDirectory(sys.argv[1])\nrun(warm.read_config(), sys.argv[2], twin=warm.read_manifest().twin)\n"
    )
    subprocess.run([sys.executable, "-c", script, str(warm.path), str(tmp_path / "fresh")], check=True, timeout=600)
    assert RunDirectory(tmp_path / "fresh").read_metrics().equals(warm.read_metrics())


def test_a_rerun_of_a_finished_sweep_computes_nothing(finished, monkeypatch) -> None:
    out, _ = finished
    runs = snapshot(out / "runs")

    def no_ray(*_: object, **__: object) -> None:
        raise AssertionError("a finished sweep needs no Ray")

    # Ray's first call starts or joins a cluster by itself (once it hung on a stale address here): none may happen.
    for name in ("init", "remote", "get", "wait"):
        monkeypatch.setattr(ray, name, no_ray)
    result = sweep(out.parent / "sweep.toml", out)
    assert snapshot(out / "runs") == runs  # no run started: every manifest is untouched
    assert_frame_equal(result.cells, load_sweep(out).cells)


def test_an_interrupted_sweep_resumes_to_the_results_of_an_undisturbed_one(finished, tmp_path) -> None:
    """One run never started, one stopped after its baseline checkpoint (beside the link to the twin it shares,
    as the sweep starts it), the gathered files not written."""
    out, _ = finished
    copy = tmp_path / "out"
    shutil.copytree(out, copy, symlinks=True)
    sweep_directory = SweepDirectory(copy)
    sweep_directory.cells_path.unlink()
    sweep_directory.metrics_path.unlink()
    shutil.rmtree(sweep_directory.run("cell-001-seed-1").path)
    stopped = sweep_directory.run("cell-000-seed-1")
    config, twin = stopped.read_config(), stopped.twin.path.resolve()
    shutil.rmtree(stopped.path)

    def stop_after_the_baseline(start: StageStart) -> None:
        if start.stage is Stage.generate:
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        run(config, stopped.path, stop_after_the_baseline, twin=twin)
    assert stopped.twin.path.is_symlink()
    assert read_manifest(stopped.path).status is Status.interrupted
    untouched = {name: snapshot(sweep_directory.run(name).path) for name in ("cell-000-seed-0", "cell-001-seed-0")}

    result = sweep(out.parent / "sweep.toml", copy)
    undisturbed = load_sweep(out)
    assert_frame_equal(result.cells, undisturbed.cells)
    assert_frame_equal(result.metrics, undisturbed.metrics)
    assert [resumption.after_cycle for resumption in read_manifest(stopped.path).resumed] == [0]
    assert {name: snapshot(sweep_directory.run(name).path) for name in untouched} == untouched


def test_a_changed_sweep_file_is_refused_naming_the_change(finished, tmp_path) -> None:
    out, _ = finished
    before = snapshot(out)
    more_seeds = write_sweep(tmp_path / "seeds", SPEC.replace("seeds = 2", "seeds = 3"))
    edited_base = write_sweep(tmp_path / "base")
    edited_base.with_name("base.toml").write_text(load_config(overrides=[*TINY, "training.steps=6"]).to_toml())
    for changed, named in ((more_seeds, "seeds: [0, 1] → [0, 1, 2]"), (edited_base, "training.steps: 5 → 6")):
        result = CliRunner().invoke(app, ["sweep", str(changed), "--out", str(out)])
        assert result.exit_code == 2
        line = result.stderr.strip()
        assert line.startswith(f"error: {out} holds a sweep of another sweep file (") and named in line, line
    assert snapshot(out) == before


def test_a_sweep_directory_in_use_is_refused(tmp_path) -> None:
    out = tmp_path / "out"
    with RunDirectory(out).lock():  # as a live sweep holds it
        result = CliRunner().invoke(app, ["sweep", str(write_sweep(tmp_path)), "--out", str(out)])
    assert result.exit_code == 2
    assert "is in use by a live run" in result.stderr and "sweep.json" not in {p.name for p in out.iterdir()}


BAD_SWEEPS = {
    "unknown key": ("seeds = 1\ngird = {}\n", "unknown key 'gird'; valid keys: base, seeds, grid, zip"),
    "unknown config key": (
        'seeds = 1\n[grid]\n"topology.nodez" = [4]\n',
        "cell 0 (topology.nodez = 4): invalid config: unknown key 'topology.nodez'",
    ),
    "invalid cell": (
        'base = "base.toml"\nseeds = 1\n[grid]\n"topology.nodes" = [4, 1]\n',
        "cell 1 (topology.nodes = 1): invalid config: topology.nodes",
    ),
    "target outside a cell's graph": (
        'seeds = 1\n[grid]\n"topology.nodes" = [4, 3]\n"attack.0.targets" = [[3]]\n',
        "cell 1 (topology.nodes = 3, attack.0.targets = [3]): invalid config: attack.0.targets: node 3 does not exist",
    ),
    "targets a cell's graph cannot rank": (
        'seeds = 1\n[base]\nattack.0.targets = "top"\nattack.0.by = "eigenvector"\n'
        '[grid]\n"topology.name" = ["ring", "chain"]\n',
        'cell 1 (topology.name = "chain"): attack.0.by: eigenvector centrality is undefined on this graph',
    ),
    "unequal zip": (
        'seeds = 1\n[[zip]]\n"topology.nodes" = [4, 5]\n"cycles" = [1]\n',
        "zip 0: zipped axes need lists of one length ('topology.nodes' has 2, 'cycles' has 1)",
    ),
    "no seeds": ('base = "base.toml"\nseeds = []\n', "no seeds"),
    "seeds left out": ('base = "base.toml"\n', "no seeds"),
    "negative seed": ("seeds = [0, -1]\n", "seeds must be a count or a list of distinct seeds in 0.."),
    "missing base file": ('base = "nowhere.toml"\nseeds = 1\n', "nowhere.toml is not a file"),
    "not TOML": ("seeds = = 1\n", "is not valid TOML"),
    "axis not a list": ('seeds = 1\n[grid]\n"cycles" = 2\n', "grid: 'cycles' must be a non-empty list of values"),
    "unquoted dotted key": ("seeds = 1\n[grid]\ntopology.nodes = [4]\n", 'quote dotted keys, as "topology.nodes"'),
    "seed as an axis": ('seeds = 1\n[grid]\n"seed" = [1, 2]\n', "set the seeds with seeds = [...], not a 'seed' axis"),
    "axis twice": (
        'seeds = 1\n[grid]\n"cycles" = [1]\n[[zip]]\n"cycles" = [2]\n',
        "axis 'cycles' appears more than once",
    ),
}


@pytest.mark.parametrize("name", BAD_SWEEPS)
def test_a_bad_sweep_file_gets_one_line_and_writes_nothing(name, tmp_path) -> None:
    spec, expected = BAD_SWEEPS[name]
    before = snapshot(write_sweep(tmp_path, spec).parent)
    result = CliRunner().invoke(app, ["sweep", str(tmp_path / "sweep.toml"), "--out", str(tmp_path / "out")])
    assert result.exit_code == 2, result.output
    lines = error_lines(result.stderr)
    assert len(lines) == 1 and lines[0].startswith("error: sweep file") and expected in lines[0], result.stderr
    assert snapshot(tmp_path) == before  # no sweep directory


def test_zipped_axes_vary_together_and_each_zip_is_one_more_dimension(tmp_path) -> None:
    spec = """\
seeds = [3, 5]
[base]
topology.nodes = 4
[grid]
"topology.name" = ["ring", "complete"]
[[zip]]
"topology.edge_weight" = [0.1, 0.5]
"traffic.harmful_fraction" = [0.1, 0.3]
"""
    resolved = read_sweep_file(write_sweep(tmp_path, spec))
    cells = {run.cell: run.values for run in resolved.runs}
    assert list(cells.values()) == [
        {"topology.name": name, "topology.edge_weight": weight, "traffic.harmful_fraction": fraction}
        for name in ("ring", "complete")
        for weight, fraction in ((0.1, 0.1), (0.5, 0.3))
    ]
    assert [run.name for run in resolved.runs][:3] == ["cell-000-seed-3", "cell-000-seed-5", "cell-001-seed-3"]
    for sweep_run in resolved.runs:
        config = sweep_run.config
        assert (config.seed, config.topology.nodes, config.hosting.mode) == (sweep_run.seed, 4, "in_process")
        assert (config.topology.name, config.topology.edge_weight, config.traffic.harmful_fraction) == tuple(
            sweep_run.values.values()
        )
