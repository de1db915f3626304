"""What several test files read from runs: a run's files, a node's figures at the last cycle."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import polars as pl

from ecosystem import load_config
from ecosystem.config import Config
from ecosystem.results import Manifest, RunDirectory

# The run seed of the behavioural tests. Their thresholds must hold for other seeds too: check with
# ECOSYSTEM_TEST_SEED=1 python -m pytest tests/test_cascade.py tests/test_poisoning.py (and 2, 3).
SEED = int(os.environ.get("ECOSYSTEM_TEST_SEED", "0"))

# A run small enough for a test: 4 nodes, 2 cycles, a few seconds on two cores, computed in this
# process (the hosting tests choose Ray explicitly, with hosting.mode=ray).
SMALL = [
    f"seed={SEED}",
    "topology.nodes=4",
    "cycles=2",
    "traffic.prompts_per_node=64",
    "evaluation.prompts_per_set=50",
    "hosting.mode=in_process",
    "hosting.group_size=2",  # two groups: two Ray hosts can share the nodes
    "evaluation.poison_control=false",  # no twin: tests/test_twins.py asks for one where it needs it
]
# Smaller still, for runs that only need to complete (CLI and dashboard launches).
TINY = [
    "topology.nodes=4",
    "cycles=1",
    "traffic.prompts_per_node=16",
    "training.own_examples=32",
    "training.steps=5",
    "evaluation.prompts_per_set=20",
    "hosting.mode=in_process",
]


def refused_in_a_fresh_process(arguments: list[str]) -> tuple[list[str], str]:
    """`cascade ARGUMENTS` in a fresh interpreter: its exit code and whether torch and Ray had loaded when it
    ended (as printed: ["2", "False", "False"] for a refusal that needed neither), and its standard error."""
    script = (
        "import sys\nfrom ecosystem.cli import app\n"
        f"try:\n    app({arguments!r})\n"
        "except SystemExit as stop:\n    print(stop.code, 'torch' in sys.modules, 'ray' in sys.modules)\n"
    )
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=120)
    return done.stdout.split(), done.stderr


def error_lines(stderr: str) -> list[str]:
    """The lines a command wrote to standard error, less Ray's own warnings about the machine (its raylet
    forwards them to every driver, e.g. a nearly full disk): those are the machine's, not the command's."""
    return [line for line in stderr.strip().splitlines() if "(raylet)" not in line.split(" ", 1)[0]]


def small_config(*overrides: str) -> Config:
    return load_config(overrides=[*SMALL, *overrides])


def as_options(overrides: list[str]) -> list[str]:
    """Overrides as `cascade run` options."""
    return [argument for override in overrides for argument in ("--set", override)]


def read_metrics(path: Path) -> pl.DataFrame:
    return RunDirectory(path).read_metrics()


def read_edges(path: Path) -> pl.DataFrame:
    return RunDirectory(path).read_edges()


def read_manifest(path: Path) -> Manifest:
    return RunDirectory(path).read_manifest()


def last(metrics: pl.DataFrame, node: int | None = None) -> pl.DataFrame:
    """The rows of the last cycle (of one node)."""
    rows = metrics.filter(pl.col("cycle") == metrics["cycle"].max())
    return rows if node is None else rows.filter(pl.col("node") == node)


def final(metrics: pl.DataFrame, node: int) -> dict:
    """A node's row at the last cycle."""
    return last(metrics, node).row(0, named=True)


def node_figure(metrics: pl.DataFrame, node: int, column: str) -> float:
    return final(metrics, node)[column]


def node_series(metrics: pl.DataFrame, node: int, column: str) -> list[float]:
    """A node's figure at every cycle, from cycle 0."""
    return metrics.filter(pl.col("node") == node).sort("cycle")[column].to_list()


def unattacked_refusal(metrics: pl.DataFrame) -> float:
    """The unattacked nodes' mean refusal at the last cycle."""
    return last(metrics).filter(~pl.col("attacked"))["refusal_rate"].mean()
