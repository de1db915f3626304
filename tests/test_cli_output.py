"""What `cascade` prints for a user to read: its version, its help, its progress where there is no
terminal (a pipe, nohup), and what a run or a sweep leaves on screen at the end."""

from __future__ import annotations

import importlib.metadata
import re
import subprocess
import sys
from pathlib import Path

import polars as pl
import pytest
from rich.console import Console
from typer.testing import CliRunner

from ecosystem.cli import _cells_table, app
from ecosystem.progress import Stage, stage_count
from ecosystem.results import RunDirectory, git_commit
from tests.helpers import TINY, as_options, refused_in_a_fresh_process


def cascade(*arguments: str) -> subprocess.CompletedProcess:
    """`cascade` as a process of its own, its output to pipes (no terminal)."""
    return subprocess.run(
        [sys.executable, "-m", "ecosystem.cli", *arguments], capture_output=True, text=True, timeout=300
    )


@pytest.fixture(scope="module")
def piped_run(tmp_path_factory) -> tuple[Path, str]:
    """A tiny run whose output goes to a pipe, with top-level keys set by --set; its directory and output."""
    out = tmp_path_factory.mktemp("piped") / "run"
    done = cascade("run", "--out", str(out), *as_options([*TINY, "seed=3"]))
    assert done.returncode == 0, done.stderr[-2000:]
    return out, done.stdout


def test_the_version_names_the_package_and_the_commit() -> None:
    result = CliRunner().invoke(app, ["--version"])
    assert result.exit_code == 0
    commit, _ = git_commit()  # None outside a git checkout
    checkout = f" (git commit {commit}" if commit else "\n"
    assert result.stdout.startswith(f"cascade {importlib.metadata.version('ecosystem-cascade')}{checkout}")


def test_help_is_printed_literally() -> None:
    """Square brackets are text, not Rich markup."""
    result = CliRunner().invoke(app, ["sweep", "--help"])
    assert result.exit_code == 0
    assert "[grid] and [[zip]]" in " ".join(result.stdout.split())


def test_a_run_without_a_terminal_prints_a_line_per_stage(piped_run) -> None:
    _, stdout = piped_run
    stages = [line for line in stdout.splitlines() if re.match(r"\[ *\d+\.\d s\] stage \d+/\d+, cycle", line)]
    total = stage_count(1, companions=(Stage.twin_run,))  # the default attack: the run has a twin
    assert [re.search(r"stage (\d+)/(\d+)", line).groups() for line in stages] == [
        (str(number), str(total)) for number in range(1, total + 1)
    ]
    assert stages[0].endswith("cycle 0/1: base model") and stages[-1].endswith("cycle 1/1: twin run")
    assert "cascade, per cycle" in stdout  # the table stays


def test_a_run_ends_with_its_stage_seconds_and_the_next_steps(piped_run) -> None:
    out, stdout = piped_run
    seconds = RunDirectory(out).read_manifest().seconds
    assert f"seconds per stage: base model {seconds['base_model']:.1f}, " in stdout
    assert f"; total {seconds['total']:.1f} s" in stdout
    assert f"next: cascade report {out} " in stdout
    assert f"streamlit run app.py -- --runs {out.resolve().parent} " in stdout


def test_set_takes_top_level_keys(piped_run) -> None:
    out, _ = piped_run
    config = RunDirectory(out).read_config()
    assert (config.seed, config.cycles) == (3, 1)


def test_resuming_a_complete_run_is_refused_before_torch_or_ray_load(piped_run) -> None:
    out, _ = piped_run
    ended, stderr = refused_in_a_fresh_process(["run", "--resume", str(out)])
    assert ended == ["2", "False", "False"]
    assert stderr == f"error: the run in {out} is already complete\n"


def test_a_sweep_ends_with_a_table_of_its_cells() -> None:
    cells = pl.DataFrame(
        {
            "cell": [0, 0, 1, 1],
            "seed": [0, 1, 0, 1],
            "attack.0.examples": [10, 10, 50, 50],
            "final_unattacked_refusal": [0.9, 0.7, 0.4, 0.2],
            "infected_share_final": [0.0, 0.5, 1.0, None],
        }
    )
    console = Console(record=True, width=200)
    console.print(_cells_table(cells, ["attack.0.examples"]))
    rows = [line.split("│")[1:-1] for line in console.export_text().splitlines() if line.startswith("│")]
    assert [[cell.strip() for cell in row] for row in rows] == [
        ["10", "2", "0.80", "0.25"],
        ["50", "2", "0.30", "1.00"],
    ]
