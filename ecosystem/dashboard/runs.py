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

from ecosystem.analysis import BASE, CURVE_RESAMPLES, mean_per_cycle, over_seeds, summarize
from ecosystem.config import Config
from ecosystem.dashboard.launch import LAUNCHED, listing, log_tail
from ecosystem.results import EXPERIMENT_RECORD, Manifest, ResultsError, RunDirectory, Status
from ecosystem.sweeps import SweepDirectory

STARTING = "starting"
COUNTERFACTUALS = ("control", "twin")  # runs inside a run: without its defenses, without its attacks
VERDICT = "verdict.json"  # an experiment directory's verdict
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
    name: str

    @property
    def path(self) -> Path:
        return self.directory.path


@dataclass(frozen=True)
class Run(Listed):
    """A run directory as read from disk; `manifest` and `config` are None when missing or unreadable.
    Its name is its path in the runs directory: `ring`, `ring/control` for a defended run's control
    run, `doses/cell-000-seed-0` for a sweep's run (`sweep` names the sweep)."""

    directory: RunDirectory
    name: str
    manifest: Manifest | None
    config: Config | None
    status: str
    note: str
    sweep: str | None = None

    @property
    def started(self) -> str:
        if self.manifest is not None:
            return self.manifest.started
        return datetime.datetime.fromtimestamp(self.path.stat().st_mtime, datetime.UTC).isoformat(timespec="seconds")


def read_run(path: Path, name: str | None = None, sweep: str | None = None) -> Run:
    directory = RunDirectory(path.resolve())
    problems: list[str] = []
    manifest = _read(directory.read_manifest, problems)
    config = _read(directory.read_config, problems)
    status = _status(directory, manifest, problems)
    note = _note(directory, manifest, status, problems)
    return Run(directory, name or path.name, manifest, config, status, note, sweep)


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


def list_runs(runs_dir: Path, with_sweeps: bool = False) -> list[Run]:
    """The run directories in `runs_dir` (its subdirectories but hidden ones, sweeps and experiments),
    newest first, each followed by its counterfactual runs (`control/`, `twin/`); `with_sweeps`, then
    the runs of its sweeps, by sweep and run."""
    runs, swept = [], []
    for path in subdirectories(runs_dir):
        if holds_sweep(path):
            swept += sweep_runs(path) if with_sweeps else []
        elif not holds_study(path):
            runs.append(read_run(path))
    runs.sort(key=lambda run: (run.started, run.name), reverse=True)
    return [*with_counterfactuals(runs), *with_counterfactuals(sorted(swept, key=lambda run: run.name))]


def sweep_runs(path: Path) -> list[Run]:
    """The runs of the sweep in `path` that have started (none when its record is unreadable: the
    sweeps table says why)."""
    directory = SweepDirectory(path)
    try:
        recorded = directory.read_runs()
    except ResultsError:
        return []
    started = [directory.run(run["run"]) for run in recorded]
    twins = sorted((directory.path / SweepDirectory.TWINS).glob("*"))  # the twins its runs share
    named = [(run.path, run.path.name) for run in started] + [
        (twin, f"{SweepDirectory.TWINS}/{twin.name}") for twin in twins
    ]
    return [
        read_run(run, f"{path.name}/{name}", sweep=path.name)
        for run, name in named
        if RunDirectory(run).manifest_path.is_file()
    ]


def with_counterfactuals(runs: list[Run]) -> list[Run]:
    """Each run followed by the runs it holds: its control run (without its defenses, and that one's twin)
    and its twin (without its attacks): a defended study's four arms."""
    listed = []
    for run in runs:
        listed.append(run)
        held = [
            read_run(run.path / kind, f"{run.name}/{kind}", run.sweep)
            for kind in COUNTERFACTUALS
            # a link is a sweep's shared twin: listed once, among the sweep's runs
            if (run.path / kind / RunDirectory.CONFIG).is_file() and not (run.path / kind).is_symlink()
        ]
        listed += with_counterfactuals(held)
    return listed


def holds_study(path: Path) -> bool:
    """An experiment's or a calibration's directory, finished (a verdict) or not (its record): not a run."""
    return holds_experiment(path) or (path / EXPERIMENT_RECORD).is_file()


def holds_experiment(path: Path) -> bool:
    """An experiment directory, holding a verdict: the experiments view shows it."""
    return (path / VERDICT).is_file()


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


DESCRIBED = (
    "run",
    "sweep",
    "started (UTC)",
    "status",
    "topology",
    "nodes",
    "cycles",
    "attacks",
    "defenses",
    "note",
    "tags",
    "notes",
)


def runs_table(runs: list[Run]) -> pl.DataFrame:
    """A row per run: how the runs table describes it (DESCRIBED), its summary's figures (a defended
    run's defense effect as `refusal_kept`, `helpfulness_lost`, `over_refusal_gained`) and every
    setting of its configuration as a dotted key; a number stays a number, so that it sorts, filters
    and groups as one."""
    rows = [_table_row(run) for run in runs]
    keys = list(dict.fromkeys(key for row in rows for key in row))
    return pl.DataFrame([_column(key, [row.get(key) for row in rows]) for key in keys])


def _column(key: str, values: list[Any]) -> pl.Series:
    """A column of the runs table: as read where the values share a type, else as text."""
    try:
        return pl.Series(key, values, strict=True)
    except (TypeError, pl.exceptions.PolarsError):
        return pl.Series(key, [None if value is None else _setting(value) for value in values], dtype=pl.String)


def _table_row(run: Run) -> dict[str, Any]:
    config = run.config
    described: dict[str, Any] = dict.fromkeys(("topology", "nodes", "cycles", "attacks", "defenses"))
    settings: dict[str, Any] = {}
    if config is not None:
        described = {
            "topology": config.topology.name,
            "nodes": config.topology.nodes,
            "cycles": config.cycles,
            "attacks": describe_attacks(config),
            "defenses": ", ".join(defense.kind_name() for defense in config.defense) or "none",
        }
        settings = {key: _cell(value) for key, value in config.settings().items()}
    return {
        "run": run.name,
        "sweep": run.sweep,
        "started (UTC)": run.started[:16].replace("T", " "),
        "status": run.status,
        **described,
        "note": run.note,
        **annotation(run.directory),
        **summary_figures(run.directory),
        **settings,
    }


def annotation(directory: RunDirectory) -> dict[str, str]:
    """A run's tags (comma-separated) and the researcher's note, as table cells ("" where none or unreadable)."""
    try:
        said = directory.read_annotation()
    except ResultsError:
        return {"tags": "", "notes": ""}
    return {"tags": ", ".join(said.tags), "notes": said.note}


def _cell(value: Any) -> Any:
    """A setting as a table cell: a number or text as it is, anything else (a list) as JSON."""
    return value if isinstance(value, (bool, int, float, str)) or value is None else json.dumps(value)


def summary_figures(directory: RunDirectory) -> dict[str, Any]:
    """A finished run's summary.json figures that are numbers, and its defense effect's; none before it ends."""
    try:
        summary = directory.read_summary()
    except ResultsError:
        return {}
    numbers = {**summary, **summary.get("defense", {})}
    return {key: value for key, value in numbers.items() if isinstance(value, (int, float)) and key != "systemic_share"}


def numeric_columns(table: pl.DataFrame) -> list[str]:
    return [name for name, dtype in table.schema.items() if dtype.is_numeric()]


def filter_runs(table: pl.DataFrame, kept: dict[str, Any]) -> pl.DataFrame:
    """The rows whose value in each column of `kept` is kept: in a (low, high) range for a number
    column, among a list of values for any other; a run without a value is left out."""
    for column, chosen in kept.items():
        if table.schema[column].is_numeric():
            low, high = chosen
            table = table.filter(pl.col(column).is_between(low, high))
        else:
            table = table.filter(pl.col(column).cast(pl.String).is_in([str(value) for value in chosen]))
    return table


def sort_runs(table: pl.DataFrame, column: str, descending: bool) -> pl.DataFrame:
    return table.sort(column, descending=descending, nulls_last=True, maintain_order=True)


def group_runs(table: pl.DataFrame, key: str, figures: list[str]) -> pl.DataFrame:
    """A row per value of `key`: its runs counted, and each figure's mean over them with its 95% interval
    (`over_seeds`: the runs grouped by their base, `model_seed`, where the table has it)."""
    grouped = over_seeds(table, [key], figures)
    counts = table.group_by(key).agg(runs=pl.len())
    joined = grouped.join(counts, on=key, how="left", nulls_equal=True)
    return joined.select(key, "runs", pl.exclude(key, "runs"))


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


def transmission_file(run: Path) -> ResultsFile:
    return _results_file(run, RunDirectory(run).transmission_path, "only an attacked run with a twin has one")


def read_transmission(file: ResultsFile) -> pl.DataFrame:
    return RunDirectory(file.run).read_transmission()


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


def common_cycle(frames: dict[str, pl.DataFrame]) -> int:
    """The last cycle that every run has reached: where their figures compare."""
    return min(frame["cycle"].max() for frame in frames.values())


def final_figures(frames: dict[str, pl.DataFrame]) -> pl.DataFrame:
    """A row per run with its cascade-level figures at the last cycle all runs reached (`common_cycle`),
    and the last cycle it wrote."""
    cycle = common_cycle(frames)
    rows = []
    for name, frame in frames.items():
        figures = summarize(frame.filter(pl.col("cycle") <= cycle))
        rows.append(
            {"run": name, "last cycle written": frame["cycle"].max(), **{key: figures[key] for key in FINAL_FIGURES}}
        )
    return pl.DataFrame(rows, infer_schema_length=None)


def stage(run: Run) -> str:
    """What a live run is doing, from what it has written: no metrics until the base model is built
    and evaluated, a cycle more each time the engine rewrites them."""
    cycle = last_cycle(run.path)
    total = run.config.cycles if run.config is not None else None
    if cycle is None:
        return "building or loading the base model, then evaluating it (cycle 0)"
    if total is not None and cycle >= total:
        if run.config is not None and run.config.defense and run.config.evaluation.defense_control:
            return f"cycles done; the control run (the same run without its defenses): {stage_of_control(run)}"
        return "cycles done; writing the summary"
    return f"cycle {cycle + 1}/{total}: generate, train, evaluate"


def stage_of_control(run: Run) -> str:
    cycle = last_cycle(run.path / COUNTERFACTUALS[0])
    return "starting" if cycle is None else f"cycle {cycle}/{run.config.cycles} written"


def control_of(run: Run) -> RunDirectory | None:
    """A defended run's control run (the same run without its defenses), once it exists."""
    control = RunDirectory(run.path / COUNTERFACTUALS[0])
    return control if control.config_path.is_file() else None


def defense_cost(manifest: Manifest | None) -> tuple[float, float] | None:
    """The seconds the control run took and the run's total, from the manifest; None before they are known."""
    seconds = manifest.seconds if manifest is not None else {}
    if "control_run" not in seconds or not seconds.get("total"):
        return None
    return seconds["control_run"], seconds["total"]


def base_of(run: Run) -> int | None:
    """The model seed of a run's own base, from its summary: None before the run ends, or with a real model."""
    return summary_figures(run.directory).get(BASE)


def over_runs(
    frames: dict[str, pl.DataFrame], metric: str, key: str, values: dict[str, Any], bases: dict[str, int | None]
) -> tuple[pl.DataFrame, pl.DataFrame]:
    """Runs grouped by their value of `key` (`values`, by run): per group and cycle the mean of `metric`
    over its runs with its interval (as `sweeps.metric_over_seeds`, the runs grouped by their base: `bases`,
    by run, as `base_of` gives them), and each run's own line (`run`, the key, `cycle`, `value`). A run's
    line is its mean over nodes."""
    per_run = pl.concat(
        [
            mean_per_cycle(frame, metric).select(
                "cycle",
                value=pl.col(metric),
                run=pl.lit(name),
                **{key: pl.lit(_setting(values.get(name))), BASE: pl.lit(bases.get(name), pl.Int64)},
            )
            for name, frame in frames.items()
        ]
    )
    curves = over_seeds(per_run.rename({"value": metric}), [key, "cycle"], [metric], resamples=CURVE_RESAMPLES)
    return curves, per_run
