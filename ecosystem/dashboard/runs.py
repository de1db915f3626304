"""Finding run directories and their status, and reading their results, all through `RunDirectory`.

A run directory may be in progress, failed, interrupted or damaged: each is read on its own, so
one that cannot be read shows as unreadable, with the reason, and never hides the others.
"""

from __future__ import annotations

import datetime
import json
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, NamedTuple, TypeVar

import polars as pl

from ecosystem.analysis import summarize
from ecosystem.config import Config
from ecosystem.dashboard.launch import LAUNCHED, listing, log_tail
from ecosystem.results import Manifest, ResultsError, RunDirectory, Status
from ecosystem.sweeps import SweepDirectory

STARTING = "starting"
UNREADABLE = "unreadable"
LABELS = {Status.running: "in progress"}  # how a status recorded in a manifest shows, where not as it is
LIVE = (LABELS[Status.running], STARTING)
FINAL_FIGURES = (
    "cycles",
    "nodes",
    "final_mean_refusal",
    "final_unattacked_refusal",
    "final_attacked_refusal",
    "final_drifted_nodes",
    "peak_drifted_unattacked",
    "time_to_systemic",
    "max_hops_reached",
)

T = TypeVar("T")


class Listed:
    """A directory as the runs and sweeps tables list it: by its name."""

    directory: RunDirectory | SweepDirectory

    @property
    def path(self) -> Path:
        return self.directory.path

    @property
    def name(self) -> str:
        return self.path.name


@dataclass(frozen=True)
class Run(Listed):
    """A run directory as read from disk; `manifest` and `config` are None when missing or unreadable."""

    directory: RunDirectory
    manifest: Manifest | None
    config: Config | None
    status: str
    note: str

    @property
    def started(self) -> str:
        if self.manifest is not None:
            return self.manifest.started
        return datetime.datetime.fromtimestamp(self.path.stat().st_mtime, datetime.UTC).isoformat(timespec="seconds")


def read_run(path: Path) -> Run:
    directory = RunDirectory(path.resolve())
    problems: list[str] = []
    manifest = _read(directory.read_manifest, problems)
    config = _read(directory.read_config, problems)
    status = _status(directory, manifest, problems)
    return Run(directory, manifest, config, status, _note(directory, manifest, status, problems))


def _read(read: Callable[[], T], problems: list[str]) -> T | None:
    """What `read` returns, or None with the reason added to `problems`."""
    try:
        return read()
    except ResultsError as error:
        problems.append(str(error))
        return None


def _status(directory: RunDirectory, manifest: Manifest | None, problems: list[str]) -> str:
    """The manifest's status, but interrupted when a running run's process is gone; for a run that
    this server launched, starting before its manifest exists and stopped once its process exited
    without finishing the run."""
    process = LAUNCHED.get(directory.path)
    if process is not None and (manifest is None or manifest.status is Status.running):
        if process.poll() is not None:
            return f"stopped (exit code {process.returncode})"
        if manifest is None:
            return STARTING
    if problems:
        return UNREADABLE
    if manifest.status is Status.running and not directory.is_live():
        return Status.interrupted.value
    return LABELS.get(manifest.status, manifest.status.value)


def _note(directory: RunDirectory, manifest: Manifest | None, status: str, problems: list[str]) -> str:
    if status == UNREADABLE:
        return "; ".join(problem.removeprefix(f"{directory.path}: ") for problem in problems)
    if status.startswith("stopped"):
        return log_tail(directory.path, lines=1)
    if status == Status.interrupted:
        return f"it stopped before its end; continue it with: cascade run --resume {directory.path}"
    if manifest is None or manifest.error is None:
        return ""
    return manifest.error


def list_runs(runs_dir: Path) -> list[Run]:
    """The run directories in `runs_dir` (its subdirectories but hidden ones and sweeps), newest first."""
    runs = [read_run(path) for path in subdirectories(runs_dir) if not holds_sweep(path)]
    return sorted(runs, key=lambda run: (run.started, run.name), reverse=True)


def subdirectories(runs_dir: Path) -> list[Path]:
    """The runs directory's subdirectories but hidden ones (such as the launch logs)."""
    if not runs_dir.is_dir():
        raise ResultsError(f"{runs_dir} is not a directory: choose another in the sidebar, or launch a run into it")
    return [path for path in runs_dir.iterdir() if path.is_dir() and not path.name.startswith(".")]


def holds_sweep(path: Path) -> bool:
    """A sweep directory, holding a sweep record: the sweep view shows it and its runs."""
    return SweepDirectory(path).record_path.is_file()


def describe_attacks(config: Config) -> str:
    attacks = [
        f"nodes {listing(attack.targets)}: {attack.examples} examples at cycles {listing(attack.cycles)}"
        for attack in config.attack
    ]
    return "; ".join(attacks) or "none"


def runs_table(runs: list[Run]) -> pl.DataFrame:
    return pl.DataFrame([_table_row(run) for run in runs], infer_schema_length=None)


def _table_row(run: Run) -> dict[str, Any]:
    config = run.config
    described = dict.fromkeys(("topology", "nodes", "cycles", "attacks"))  # empty for a run without a config
    if config is not None:
        described = {
            "topology": config.topology.name,
            "nodes": config.topology.nodes,
            "cycles": config.cycles,
            "attacks": describe_attacks(config),
        }
    return {
        "run": run.name,
        "started (UTC)": run.started[:16].replace("T", " "),
        **described,
        "status": run.status,
        "note": run.note,
    }


class ResultsFile(NamedTuple):
    """A run's results file as it is now: its modification time and size change when the engine
    rewrites it after a cycle, so they key a cache of its contents."""

    run: Path
    mtime_ns: int
    size: int


def metrics_file(run: Path) -> ResultsFile:
    return _results_file(run, RunDirectory(run).metrics_path, "it is written after the baseline evaluation")


def edges_file(run: Path) -> ResultsFile:
    return _results_file(run, RunDirectory(run).edges_path, "the run predates it, or has not exchanged yet")


def _results_file(run: Path, path: Path, why_missing: str) -> ResultsFile:
    try:
        stat = path.stat()
    except FileNotFoundError:
        raise ResultsError(f"no {path.name}: {why_missing}") from None
    return ResultsFile(run, stat.st_mtime_ns, stat.st_size)


def read_metrics(file: ResultsFile) -> pl.DataFrame:
    return RunDirectory(file.run).read_metrics()


def read_edges(file: ResultsFile) -> pl.DataFrame:
    return RunDirectory(file.run).read_edges()


def last_cycle(run: Path) -> int | None:
    """The last cycle written to a run's metrics (reading one column), or None when there is none."""
    try:
        return pl.scan_parquet(RunDirectory(run).metrics_path).select(pl.col("cycle").max()).collect().item()
    except (pl.exceptions.PolarsError, OSError):
        return None


def metric_columns(frame: pl.DataFrame) -> list[str]:
    """The columns that can colour a node or make a curve: numbers and booleans, bar cycle and node."""
    return [
        name
        for name, dtype in frame.schema.items()
        if name not in ("cycle", "node") and (dtype.is_numeric() or dtype == pl.Boolean)
    ]


def _setting(value: Any) -> str:
    """A value as a table shows it, exactly: "-" where there is none."""
    if value is None:
        return "-"
    return value if isinstance(value, str) else json.dumps(value)


def config_differences(configs: dict[str, Config]) -> pl.DataFrame:
    """The settings that differ between runs: a row per setting, a column per run ("-" where unset)."""
    flat = {name: config.settings() for name, config in configs.items()}
    keys = sorted(set().union(*flat.values()))
    differing = [key for key in keys if len({_setting(settings.get(key)) for settings in flat.values()}) > 1]
    columns = {name: [_setting(settings.get(key)) for key in differing] for name, settings in flat.items()}
    return pl.DataFrame({"setting": differing, **columns}, schema=dict.fromkeys(["setting", *columns], pl.String))


def final_figures(frames: dict[str, pl.DataFrame]) -> pl.DataFrame:
    """A row per run with its cascade-level figures at the last cycle written."""
    rows = []
    for name, frame in frames.items():
        figures = summarize(frame)
        rows.append({"run": name, **{key: figures[key] for key in FINAL_FIGURES}})
    return pl.DataFrame(rows, infer_schema_length=None)
