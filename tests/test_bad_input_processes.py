"""Bad input to every command (`run`, `sweep`, `report`, `experiment`), each case a `cascade` process of
its own, as a user meets it: exit code 2, exactly one line on stderr starting with `error:` and holding
no control character, no traceback, and the case's folder (the results directory, its manifest and
`.lock`, and any file the case uses) unchanged byte for byte. The in-process table of `cascade run`'s
settings is `tests/test_bad_input.py`."""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import sys
import unicodedata
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from ecosystem import load_config
from ecosystem.results import RunDirectory, Status
from tests.helpers import TINY, error_lines
from tests.test_bad_input import copy_of_finished_run, snapshot

Arguments = Callable[[Path], list[str]]


@dataclass(frozen=True)
class Case:
    arguments: Arguments  # given the case's folder
    expected: str  # what the error line holds
    prepare: Callable[[Path, Path], None] = field(default=lambda _folder, _run: None)  # (folder, a finished run)
    environment: Callable[[Path], dict[str, str]] = field(default=lambda _folder: {})


def run_with(*overrides: str) -> Arguments:
    return lambda folder: ["run", "--out", str(folder / "out"), *(a for o in overrides for a in ("--set", o))]


def resume(folder: Path) -> list[str]:
    return ["run", "--resume", str(folder / "out")]


def sweep(folder: Path) -> list[str]:
    return ["sweep", str(folder / "sweep.toml"), "--out", str(folder / "out")]


def sweep_file(text: str) -> Callable[[Path, Path], None]:
    """A sweep file and beside it base.toml, the tiny run of tests.helpers.TINY."""

    def write(folder: Path, _: Path) -> None:
        (folder / "base.toml").write_text(load_config(overrides=TINY).to_toml())
        (folder / "sweep.toml").write_text(f'base = "base.toml"\n{text}')

    return write


def report(folder: Path) -> list[str]:
    return ["report", str(folder / "out")]


def finished_run(edit: Callable[[Path], None]) -> Callable[[Path, Path], None]:
    """The session's small run copied to `out` as it finished (complete), then edited."""

    def prepare(folder: Path, small_run: Path) -> None:
        edit(Path(shutil.copytree(small_run, folder / "out")))

    return prepare


def cache_in(path: str) -> Callable[[Path], dict[str, str]]:
    """ECOSYSTEM_CACHE at `path`, relative to the case's folder (or absolute)."""
    return lambda folder: {"ECOSYSTEM_CACHE": str(folder / path)}


def a_file(name: str) -> Callable[[Path, Path], None]:
    return lambda folder, _: (folder / name).write_text("mine")


def set_running(run: Path) -> None:
    """The manifest says running, and the lock names no process: the run was killed (SIGKILL)."""
    RunDirectory(run).write_manifest(RunDirectory(run).read_manifest().model_copy(update={"status": Status.running}))


def both(*steps: Callable[[Path, Path], None]) -> Callable[[Path, Path], None]:
    def prepare(folder: Path, small_run: Path) -> None:
        for step in steps:
            step(folder, small_run)

    return prepare


DEEP = "[" * 5000
ESCAPES = "\x1b]0;pwned\x07\x1b[2J"  # sets the terminal's title, clears its screen
STALE_LOCK = f"pid {2**22 + 1} on {socket.gethostname()}"  # a dead process: no pid is above 2^22 on Linux

CASES = {
    # Text a terminal would act on, and lines that forge an error line
    "escape sequences in a key": Case(run_with(f"{ESCAPES}red=1"), "unknown key '\\x1b]0;pwned\\x07\\x1b[2Jred'"),
    "a newline in a path to resume": Case(
        lambda folder: ["run", "--resume", f"{folder}/nope\nerror: fine"], "nope\\nerror: fine holds no run"
    ),
    "a newline in a report path": Case(lambda _: ["report", "/nope\nerror: fine"], "/nope\\nerror: fine is missing"),
    "escape sequences in a sweep axis": Case(
        sweep, "unknown key '\\x1b[2Jtopology'", sweep_file('seeds = 1\n[grid]\n"\\u001b[2Jtopology.nodez" = [4]\n')
    ),
    "escape sequences in an experiment's name": Case(
        lambda folder: ["experiment", f"{ESCAPES}x", "--out", str(folder / "out")], "no experiment '\\x1b]0;pwned"
    ),
    # Nesting and integers that Python's parser cannot take
    "deeply nested --set value": Case(run_with(f"cycles={DEEP}"), "nested more than 32 levels deep"),
    "deeply nested config file": Case(
        lambda folder: ["run", "--config", str(folder / "deep.toml"), "--out", str(folder / "out")],
        "is not valid TOML: nested more than 32 levels deep",
        lambda folder, _: (folder / "deep.toml").write_text(f"cycles = {DEEP}\n"),
    ),
    "deeply nested sweep file": Case(sweep, "nested more than 32 levels deep", sweep_file(f"seeds = {DEEP}\n")),
    "an integer of 5,000 digits": Case(run_with(f"seed={'1' * 5000}"), "override 'seed': Exceeds the limit"),
    # Sizes, checked from their parameters before anything is built
    "a seed past int64": Case(lambda folder: [*run_with()(folder), "--seed", str(2**63)], "seed: Input should be"),
    "prompts per node past the cap": Case(
        run_with("traffic.prompts_per_node=1000000000"), "traffic.prompts_per_node: Input should be less than"
    ),
    "an enormous lineage tree": Case(
        run_with("topology.name=lineage_tree", "topology.params.branching=1000000", "topology.params.depth=1000000000"),
        "lineage_tree would have more than 100000 nodes",
    ),
    "a lineage chain of a trillion levels": Case(
        run_with("topology.name=lineage_tree", "topology.params.branching=1", "topology.params.depth=1000000000000"),
        "lineage_tree would have more than 100000 nodes",
    ),
    "max_nodes past the limit": Case(
        run_with("topology.name=complete", "topology.nodes=200000", "topology.max_nodes=200000"),
        "topology.max_nodes: Input should be less than or equal to 100000",
    ),
    "a complete graph of too many edges": Case(
        run_with("topology.name=complete", "topology.nodes=5000", "topology.max_nodes=5000"),
        "complete could have 24995000 edges, more than 2000000",
    ),
    "a sweep of a billion seeds": Case(sweep, "a sweep holds at most 10000 runs", sweep_file("seeds = 1000000000\n")),
    "a 1000 by 1000 grid": Case(
        sweep,
        "1000000 cells by 1 seeds make 1000000 runs",
        sweep_file(
            f'seeds = 1\n[grid]\n"traffic.prompts_per_node" = {list(range(1, 1001))}\n'
            f'"training.own_examples" = {list(range(1000))}\n'
        ),
    ),
    "a sweep seed past int64": Case(
        sweep, "distinct seeds in 0..9223372036854775807", sweep_file(f"seeds = [{2**63}]\n")
    ),
    # Refusals that must not touch the lock or the manifest
    "resume a run whose edges are gone": Case(
        resume, "edges.parquet is unreadable", copy_of_finished_run(lambda run: (run / "edges.parquet").unlink())
    ),
    "resume a complete run without its lock": Case(
        resume, "already complete", finished_run(lambda run: (run / RunDirectory.LOCK).unlink())
    ),
    "resume a complete run with a stale lock": Case(
        resume, "already complete", finished_run(lambda run: (run / RunDirectory.LOCK).write_text(STALE_LOCK))
    ),
    # The model cache, refused before a results directory is created
    "a run with a cache that is a file": Case(
        run_with(*TINY), "(ECOSYSTEM_CACHE) is not a writable", a_file("cache"), cache_in("cache")
    ),
    "a run with a cache inside a file": Case(
        run_with(*TINY), "(ECOSYSTEM_CACHE) is not a writable", a_file("cache"), cache_in("cache/models")
    ),
    "a run with a cache that cannot be written": Case(
        run_with(*TINY), "(ECOSYSTEM_CACHE) is not a writable", environment=cache_in("/sys/ecosystem-cache")
    ),
    "a sweep with a cache that is a file": Case(
        sweep,
        "(ECOSYSTEM_CACHE) is not a writable",
        both(sweep_file("seeds = 1\n"), a_file("cache")),
        cache_in("cache"),
    ),
    "an experiment with a cache that is a file": Case(
        lambda folder: ["experiment", "accumulate", "--quick", "--out", str(folder / "out")],
        "(ECOSYSTEM_CACHE) is not a writable",
        a_file("cache"),
        cache_in("cache"),
    ),
    "an experiment into a file": Case(
        lambda folder: ["experiment", "accumulate", "--quick", "--out", str(folder / "out")], "is a file", a_file("out")
    ),
    # Reports
    "a report path that is a file": Case(
        report, "is not a report directory", finished_run(lambda run: (run / "report").write_text("mine"))
    ),
    "a report path that is a link": Case(
        report,
        "is not a report directory",
        finished_run(lambda run: (run / "report").symlink_to(run.parent / "elsewhere", target_is_directory=True)),
    ),
    "a report on metrics of another table": Case(
        report,
        "metrics.parquet is not a run's table (no column 'node')",
        finished_run(lambda run: shutil.copy(run / "edges.parquet", run / "metrics.parquet")),
    ),
    "a report on metrics without rows": Case(
        report,
        "metrics.parquet holds no rows",
        finished_run(lambda run: RunDirectory(run).write_metrics(RunDirectory(run).read_metrics().head(0))),
    ),
    "a report on a summary that is a list": Case(
        report, "summary.json is not a run's summary", finished_run(lambda run: (run / "summary.json").write_text("[]"))
    ),
    "a report on a run that was killed": Case(report, "was interrupted (its process died)", finished_run(set_running)),
}


def test_each_command_has_cases() -> None:
    commands = {case.arguments(Path("f"))[0] for case in CASES.values()}
    assert commands == {"run", "sweep", "report", "experiment"}


@pytest.mark.parametrize("name", CASES)
def test_bad_input_to_a_process_gets_one_clean_line_and_changes_nothing(name, small_run, tmp_path) -> None:
    case = CASES[name]
    (tmp_path / "elsewhere").mkdir()
    case.prepare(tmp_path, small_run)
    before = snapshot(tmp_path)
    done = subprocess.run(
        [sys.executable, "-m", "ecosystem.cli", *case.arguments(tmp_path)],
        capture_output=True,
        env={**os.environ, **case.environment(tmp_path)},
        timeout=300,
    )
    stderr = done.stderr.decode()
    assert done.returncode == 2, stderr
    lines = error_lines(stderr)
    assert len(lines) == 1 and lines[0].startswith("error:") and stderr.endswith("\n"), stderr
    assert case.expected in lines[0], lines[0]
    assert not [c for c in lines[0] if unicodedata.category(c) in ("Cc", "Cf", "Zl", "Zp", "Cs")], lines[0]
    assert b"Traceback" not in done.stdout + done.stderr
    assert snapshot(tmp_path) == before  # the results directory, its manifest and .lock included
