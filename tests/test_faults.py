"""Faults that are not the user's input: a full disk leaves a directory that resumes to the same results."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest
from typer.testing import CliRunner

from ecosystem import run
from ecosystem.cli import app
from ecosystem.results import Status
from tests.helpers import SMALL, as_options, read_manifest, read_metrics, small_config

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
    assert len(result.stderr.strip().splitlines()) == 1
    assert read_manifest(out).status is Status.failed
    assert [path.name for path in (out / "checkpoints").iterdir() if path.name.startswith(".")] == []  # no staging
    grow()
    resumed = CliRunner().invoke(app, ["run", "--resume", str(out)])
    assert resumed.exit_code == 0, resumed.output
    assert read_metrics(out).equals(run(config, tmp_path / "undisturbed").metrics)
