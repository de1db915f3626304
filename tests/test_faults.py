"""Faults that are not the user's input: a full disk leaves a directory that resumes to the same results,
for a run and for a sweep; a run that fails inside a sweep is one line, and a rerun retries it."""

from __future__ import annotations

import subprocess
from pathlib import Path

import polars as pl
import pytest
from typer.testing import CliRunner

from ecosystem import load_config, run, sweep
from ecosystem.cli import app
from ecosystem.results import Status
from ecosystem.sweeps import SweepDirectory, read_sweep_file
from tests.helpers import SMALL, TINY, as_options, error_lines, read_manifest, read_metrics, small_config

# Full fine-tuning writes every weight at each checkpoint: 3 MiB hold cycle 0's checkpoint, not cycle 1's.
SETTINGS = ["training.method=full", "training.learning_rate=3e-4", "cycles=2", "training.steps=5"]


@pytest.fixture
def small_disk(tmp_path: Path):
    """A 3 MiB tmpfs (skipped where the test may not mount one), and a way to grow it."""
    disk = tmp_path / "disk"
    disk.mkdir()
    if subprocess.run(["mount", "-t", "tmpfs", "-o", "size=3m", "tmpfs", str(disk)], capture_output=True).returncode:
        pytest.skip("cannot mount a tmpfs here (needs root)")
    yield disk, lambda: subprocess.run(["mount", "-o", "remount,size=100m", str(disk)], check=True)
    subprocess.run(["umount", str(disk)], check=True)


def test_a_full_disk_stops_with_one_line_and_the_run_resumes_to_the_same_results(small_disk, tmp_path) -> None:
    disk, grow = small_disk
    out = disk / "run"
    config = small_config(*SETTINGS)
    result = CliRunner().invoke(app, ["run", "--out", str(out), *as_options([*SMALL, *SETTINGS])])
    assert result.exit_code == 2 and result.stderr.startswith("error: no space left on the device"), result.output
    assert len(error_lines(result.stderr)) == 1
    assert read_manifest(out).status is Status.failed
    assert [path.name for path in (out / "checkpoints").iterdir() if path.name.startswith(".")] == []  # no staging
    grow()
    resumed = CliRunner().invoke(app, ["run", "--resume", str(out)])
    assert resumed.exit_code == 0, resumed.output
    assert read_metrics(out).equals(run(config, tmp_path / "undisturbed").metrics)


# Two tiny runs (two seeds) with full fine-tuning: each writes 2 MiB of checkpoint, so 3 MiB cannot hold them.
SWEEP_BASE = [*TINY, "training.method=full", "training.learning_rate=3e-4"]


def write_sweep(folder: Path) -> Path:
    (folder / "base.toml").write_text(load_config(overrides=SWEEP_BASE).to_toml())
    (folder / "sweep.toml").write_text('base = "base.toml"\nseeds = 2\n')
    return folder / "sweep.toml"


@pytest.fixture(scope="module")
def undisturbed_sweep(tmp_path_factory, ray_cluster) -> Path:  # noqa: ARG001 (the sweep runs in that Ray)
    folder = tmp_path_factory.mktemp("undisturbed")
    return sweep(write_sweep(folder), folder / "out").path


def cascade_sweep(spec: Path, out: Path, failure: str) -> None:
    """`cascade sweep` fails with exit code 2 and one line that holds `failure`."""
    failed = CliRunner().invoke(app, ["sweep", str(spec), "--out", str(out)])
    lines = error_lines(failed.stderr)
    assert failed.exit_code == 2 and len(lines) == 1 and lines[0].startswith("error:"), failed.output
    assert failure in lines[0] and "Traceback" not in failed.output, lines[0]


def assert_same_results(out: Path, undisturbed: Path) -> None:
    for table in (SweepDirectory.CELLS, SweepDirectory.METRICS):
        assert pl.read_parquet(out / table).equals(pl.read_parquet(undisturbed / table)), table


@pytest.mark.usefixtures("ray_cluster")
def test_a_run_that_fails_in_a_sweep_is_one_line_and_a_rerun_retries_it(undisturbed_sweep, tmp_path) -> None:
    spec = write_sweep(tmp_path)
    directory = SweepDirectory(tmp_path / "out")
    directory.path.mkdir()
    directory.write_record(read_sweep_file(spec))
    directory.runs.mkdir()
    (tmp_path / "elsewhere").mkdir()
    directory.run("cell-000-seed-1").path.symlink_to(tmp_path / "elsewhere")  # refused by the run
    # 2 runs and the 2 twins they are measured against: 4
    cascade_sweep(spec, directory.path, "1 of 4 runs failed, the others are complete: cell-000-seed-1 (ResultsError")
    assert list((tmp_path / "elsewhere").iterdir()) == []  # nothing written through the link
    directory.run("cell-000-seed-1").path.unlink()
    assert CliRunner().invoke(app, ["sweep", str(spec), "--out", str(directory.path)]).exit_code == 0
    assert_same_results(directory.path, undisturbed_sweep)


@pytest.mark.usefixtures("ray_cluster")
def test_a_full_disk_during_a_sweep_is_one_line_and_a_rerun_gives_the_same_results(
    small_disk, undisturbed_sweep, tmp_path
) -> None:
    disk, grow = small_disk
    spec = write_sweep(tmp_path)
    cascade_sweep(spec, disk / "out", "No space left on device")
    grow()
    assert CliRunner().invoke(app, ["sweep", str(spec), "--out", str(disk / "out")]).exit_code == 0
    assert_same_results(disk / "out", undisturbed_sweep)
