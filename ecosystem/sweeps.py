"""Parameter sweeps: every combination of some settings, for several seeds, each (cell, seed) an
ordinary run directory, computed in parallel as Ray tasks and gathered into two Parquet files.

A sweep directory holds `sweep.json` (the resolved sweep: seeds, axes, every run's configuration and
their fingerprint), `sweep.toml` (a copy of the sweep file), `runs/cell-<NNN>-seed-<S>/` (the run
directories), `cells.parquet` and `metrics.parquet` (the results, once every run is complete) and
`.lock` (held by the live sweep). This module loads neither torch nor Ray until a sweep is checked.
"""

from __future__ import annotations

import contextlib
import hashlib
import itertools
import json
import math
import os
import shutil
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import polars as pl
import tomli_w

import poisoning
from ecosystem.bases.cache import check_cache
from ecosystem.config import MAX_SEED, BaseGroup, Config, ConfigError, flatten, load_config, read_toml
from ecosystem.gate import BaseRefused
from ecosystem.results import (
    METRICS_COLUMNS,
    ResultsError,
    RunDirectory,
    Status,
    changed_settings,
    fingerprint,
    require_columns,
    write_atomic,
    write_json,
    write_parquet,
)
from poisoning import TargetingError
from topologies import TopologyError

SWEEP_KEYS = ("base", "seeds", "grid", "zip")
POLL_SECONDS = 0.5  # how often the driver looks for finished and running runs
MAX_RUNS = 10_000  # runs of one sweep (cells times seeds): every one is checked before any starts


@dataclass(frozen=True)
class SweepRun:
    """One (cell, seed): the cell's axis values and the configuration its run directory gets."""

    cell: int
    seed: int
    values: dict[str, Any]
    config: Config

    @property
    def name(self) -> str:
        return f"cell-{self.cell:03d}-seed-{self.seed}"


@dataclass(frozen=True)
class Sweep:
    """A sweep file, resolved: its seeds and axes, and every run with its validated configuration."""

    text: str  # the sweep file, copied into the sweep directory
    seeds: list[int]
    grid: dict[str, list[Any]]
    zipped: list[dict[str, list[Any]]]
    runs: list[SweepRun]

    @property
    def axes(self) -> list[str]:
        return [*self.grid, *(key for group in self.zipped for key in group)]

    def record(self) -> dict[str, Any]:
        """What `sweep.json` holds; the fingerprint covers every run's name, values and configuration."""
        runs = [
            {
                "run": run.name,
                "cell": run.cell,
                "seed": run.seed,
                "values": run.values,
                "config": run.config.model_dump(mode="json", exclude_none=True),
            }
            for run in self.runs
        ]
        fingerprint = hashlib.sha256(json.dumps(runs, sort_keys=True).encode()).hexdigest()
        return {"fingerprint": fingerprint, "seeds": self.seeds, "grid": self.grid, "zip": self.zipped, "runs": runs}


@dataclass
class SweepResult:
    path: Path
    cells: pl.DataFrame  # one row per (cell, seed): axis values and the run's summary figures
    metrics: pl.DataFrame  # every run's metrics rows, with cell, seed and axis values


@dataclass(frozen=True)
class SweepProgress:
    """Where a sweep is: runs finished (complete before it started, or since) and those in progress."""

    done: int
    total: int
    running: list[str]


def read_sweep_file(path: str | Path) -> Sweep:
    """The sweep file at `path`, resolved and checked: every run's configuration is valid, its graph
    builds and its attacks find their targets; else a `ConfigError` saying which cell and values."""
    path = Path(path)
    text, spec = read_toml(path, "sweep")
    return resolve_sweep(text, spec, path, f"sweep file {path}")


def resolve_sweep(text: str, spec: dict[str, Any], path: Path, where: str) -> Sweep:
    """The sweep `spec` (a sweep file's data, `text` its TOML), resolved and checked as `read_sweep_file`
    says; a base file is taken relative to `path`, and errors begin with `where`."""
    if unknown := sorted(set(spec) - set(SWEEP_KEYS)):
        raise ConfigError(f"{where}: unknown key '{unknown[0]}'; valid keys: {', '.join(SWEEP_KEYS)}")
    base_file, base_overrides = _base(path, where, spec.get("base", {}))
    seeds = _seeds(where, spec.get("seeds"))
    grid = _axes(where, "grid", spec.get("grid", {}))
    zip_tables = spec.get("zip", [])
    if not isinstance(zip_tables, list):
        raise ConfigError(f"{where}: write zipped axes as [[zip]] tables")
    zipped = [_axes(where, f"zip {index}", table) for index, table in enumerate(zip_tables)]
    _check_axes(where, grid, zipped)
    _check_size(where, grid, zipped, seeds)
    runs = []
    for cell, values in enumerate(_cells(grid, zipped)):
        overrides = [*base_overrides, *(_override(key, value) for key, value in values.items())]
        for seed in seeds:
            try:
                runs.append(SweepRun(cell, seed, values, _run_config(base_file, overrides, seed)))
            except ConfigError as error:
                described = ", ".join(f"{key} = {json.dumps(value)}" for key, value in values.items())
                raise ConfigError(f"{where}: cell {cell} ({described or 'the base'}): {error}") from None
    return Sweep(text, seeds, grid, zipped, runs)


def _base(path: Path, where: str, base: Any) -> tuple[Path | None, list[str]]:
    """The base configuration: a config file (relative to the sweep file), or a table of its keys as overrides."""
    if isinstance(base, dict):
        return None, [_override(key, value) for key, value in flatten(base).items()]
    if not isinstance(base, str):
        raise ConfigError(f"{where}: base must be a config file's path or a [base] table")
    base_file = path.parent / base
    if not base_file.is_file():
        raise ConfigError(f"{where}: base config {base_file} is not a file")
    return base_file, []


def _seeds(where: str, seeds: Any) -> list[int]:
    """`seeds = 3` means 0, 1, 2; a list gives them one by one."""
    if isinstance(seeds, int) and not isinstance(seeds, bool) and seeds > 0:
        if seeds > MAX_RUNS:  # before the list is built
            raise ConfigError(f"{where}: seeds = {seeds}: a sweep holds at most {MAX_RUNS} runs")
        return list(range(seeds))
    if not seeds:
        raise ConfigError(f"{where}: no seeds; set seeds = 3 (0, 1, 2) or a list, seeds = [0, 1, 2]")
    if (
        not isinstance(seeds, list)
        or not all(isinstance(seed, int) and not isinstance(seed, bool) and 0 <= seed <= MAX_SEED for seed in seeds)
        or len(set(seeds)) < len(seeds)
    ):
        raise ConfigError(
            f"{where}: seeds must be a count or a list of distinct seeds in 0..{MAX_SEED} (got {seeds!r})"
        )
    return seeds


def _axes(where: str, table_name: str, table: Any) -> dict[str, list[Any]]:
    """A [grid] or [[zip]] table: dotted config keys, each with a non-empty list of values."""
    if not isinstance(table, dict):
        raise ConfigError(f"{where}: {table_name} must be a table of config keys and lists of values")
    for key, values in table.items():
        if isinstance(values, dict) and values:  # an unquoted dotted key, which TOML reads as a table
            raise ConfigError(f'{where}: {table_name}: quote dotted keys, as "{key}.{next(iter(values))}" = [...]')
        if not isinstance(values, list) or not values:
            raise ConfigError(f"{where}: {table_name}: '{key}' must be a non-empty list of values")
        if key == "seed":
            raise ConfigError(f"{where}: {table_name}: set the seeds with seeds = [...], not a 'seed' axis")
    return table


def _check_axes(where: str, grid: dict[str, list[Any]], zipped: list[dict[str, list[Any]]]) -> None:
    """Zipped axes vary together, so their lists have one length; and every axis appears once."""
    for index, group in enumerate(zipped):
        lengths = {key: len(values) for key, values in group.items()}
        if len(set(lengths.values())) > 1:
            described = ", ".join(f"'{key}' has {length}" for key, length in lengths.items())
            raise ConfigError(f"{where}: zip {index}: zipped axes need lists of one length ({described})")
    keys = [*grid, *(key for group in zipped for key in group)]
    if repeated := sorted({key for key in keys if keys.count(key) > 1}):
        raise ConfigError(f"{where}: axis '{repeated[0]}' appears more than once")


def _check_size(where: str, grid: dict[str, list[Any]], zipped: list[dict[str, list[Any]]], seeds: list[int]) -> None:
    """Refuse more than `MAX_RUNS` runs, counted from the axes before any cell is built."""
    cells = math.prod(len(values) for values in grid.values())
    cells *= math.prod(min(map(len, group.values()), default=0) for group in zipped)
    if cells * len(seeds) > MAX_RUNS:
        raise ConfigError(
            f"{where}: {cells} cells by {len(seeds)} seeds make {cells * len(seeds)} runs; "
            f"a sweep holds at most {MAX_RUNS}"
        )


def _cells(grid: dict[str, list[Any]], zipped: list[dict[str, list[Any]]]) -> list[dict[str, Any]]:
    """Every combination: each grid axis and each zip group is one dimension of the product."""
    dimensions = [[{key: value} for value in values] for key, values in grid.items()]
    dimensions += [
        [dict(zip(group, row, strict=True)) for row in zip(*group.values(), strict=True)] for group in zipped
    ]
    return [
        {key: value for part in combination for key, value in part.items()}
        for combination in itertools.product(*dimensions)
    ]


def _override(key: str, value: Any) -> str:
    """`key=value` as `--set` takes it. tomli_w writes a table inline only inside an array: write the
    value as an array's one item and take that item's text."""
    array = tomli_w.dumps({"v": [value]})  # 'v = [\n    ITEM,\n]\n'
    return f"{key}={array[array.index('[') + 1 : array.rindex(']')].strip().removesuffix(',')}"


def _run_config(base_file: Path | None, overrides: list[str], seed: int) -> Config:
    """The run's configuration, its nodes computed in the Ray task's own process (hosting.mode =
    in_process); checked as `run` checks it before starting (its graph and attack targets)."""
    config = load_config(base_file, [*overrides, "hosting.mode=in_process"], seed)
    try:
        poisoning.resolve(config.attack, config.topology.graph(config.seed), config.seed)
    except (TopologyError, TargetingError) as error:
        raise ConfigError(str(error)) from None
    return config


class SweepDirectory:
    """A sweep's directory: the resolved sweep, a run directory per (cell, seed), the gathered results."""

    RECORD = "sweep.json"
    SPEC = "sweep.toml"
    RUNS = "runs"
    TWINS = "twins"  # the poison-free twins its runs share, one per configuration without attacks
    CELLS = "cells.parquet"
    METRICS = "metrics.parquet"

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        self.record_path = self.path / self.RECORD
        self.spec_path = self.path / self.SPEC
        self.runs = self.path / self.RUNS
        self.cells_path = self.path / self.CELLS
        self.metrics_path = self.path / self.METRICS

    def run(self, name: str) -> RunDirectory:
        return RunDirectory(self.runs / name)

    def twin(self, config: Config) -> RunDirectory:
        """The twin shared by every run whose configuration without attacks is `config`."""
        return RunDirectory(self.path / self.TWINS / fingerprint(config)[:16])

    def check(self, sweep: Sweep) -> None:
        """Refuse a directory that holds anything but this sweep: a new sweep needs an empty one."""
        if self.record_path.is_file():
            recorded = self._read_record()
            if recorded.get("fingerprint") != sweep.record()["fingerprint"]:
                raise ResultsError(
                    f"{self.path} holds a sweep of another sweep file ({_changes(recorded, sweep)}); "
                    "restore the sweep file, or choose another --out"
                )
            return
        try:
            names = set(os.listdir(self.path)) - {RunDirectory.LOCK}
        except FileNotFoundError:
            return
        except OSError as error:
            raise ResultsError(f"cannot use {self.path} as a sweep directory: {error.strerror}") from None
        if names:
            raise ResultsError(f"{self.path} is not empty and holds no sweep ({self.RECORD}); choose a new --out")

    def _read_record(self) -> dict[str, Any]:
        try:
            return json.loads(self.record_path.read_text())
        except (OSError, ValueError) as error:
            raise ResultsError(f"{self.path}: {self.RECORD} is unreadable ({error})") from None

    def read_runs(self) -> list[dict[str, Any]]:
        """The recorded runs: each one's directory name (`run`), `cell`, `seed` and axis `values`."""
        try:
            runs = self._read_record()["runs"]
            return [{key: run[key] for key in ("run", "cell", "seed", "values")} for run in runs]
        except (KeyError, TypeError) as error:
            raise ResultsError(f"{self.path}: {self.RECORD} lacks its runs ({error!r})") from None

    def read_axes(self) -> list[str]:
        """The settings the sweep varies (dotted keys)."""
        runs = self.read_runs()
        return list(runs[0]["values"]) if runs else []

    def write_record(self, sweep: Sweep) -> None:
        write_atomic(self.spec_path, sweep.text.encode())
        write_json(self.record_path, sweep.record())

    def write_results(self, sweep: Sweep) -> SweepResult:
        """Gather every run's summary figures and metrics, with the cell, seed and axis values of each."""
        keys = pl.DataFrame(
            [
                pl.Series("cell", [run.cell for run in sweep.runs]),
                pl.Series("seed", [run.seed for run in sweep.runs]),
                *(_axis_column(axis, [run.values[axis] for run in sweep.runs]) for axis in sweep.axes),
            ]
        )
        summaries, metrics = [], []
        for run in sweep.runs:
            run_directory = self.run(run.name)
            result = run_directory.read_result()
            summaries.append({"run": run_directory.path.relative_to(self.path).as_posix(), **_figures(result.summary)})
            metrics.append(
                result.metrics.with_columns(cell=pl.lit(run.cell, pl.Int64), seed=pl.lit(run.seed, pl.Int64))
            )
        # A figure null in every run (say time_to_systemic) is typed as a number: not every reader
        # knows Parquet's null type.
        figures = pl.DataFrame(summaries, infer_schema_length=None).with_columns(pl.col(pl.Null).cast(pl.Float64))
        # An axis named like a figure (`cycles`) holds the same value: its column stays, once.
        cells = pl.concat([keys, figures.select(pl.exclude(keys.columns))], how="horizontal")
        rows = pl.concat(metrics).join(keys, on=["cell", "seed"], maintain_order="left")
        rows = rows.select(*keys.columns, pl.exclude(keys.columns))
        write_parquet(self.cells_path, cells)
        write_parquet(self.metrics_path, rows)
        return SweepResult(self.path, cells, rows)

    def read_results(self) -> SweepResult:
        try:
            cells, metrics = pl.read_parquet(self.cells_path), pl.read_parquet(self.metrics_path)
        except (OSError, pl.exceptions.PolarsError) as error:
            raise ResultsError(f"{self.path} holds no finished sweep ({error})") from None
        require_columns(cells, ("cell", "seed", "run"), self.cells_path)
        require_columns(metrics, ("cell", "seed", *METRICS_COLUMNS), self.metrics_path)
        if cells.is_empty() or metrics.is_empty():
            raise ResultsError(f"{self.path} holds no finished sweep (its tables hold no rows)")
        return SweepResult(self.path, cells, metrics)


def _changes(recorded: dict[str, Any], sweep: Sweep) -> str:
    """What differs between the recorded sweep and this one: its seeds or axes, else the first run's
    configuration that differs (the base file changed, say)."""
    record = sweep.record()
    if changes := [
        f"{part}: {json.dumps(recorded.get(part))} → {json.dumps(record[part])}"
        for part in ("seeds", "grid", "zip")
        if recorded.get(part) != record[part]
    ]:
        return "; ".join(changes)
    configs = {run.get("run"): run.get("config", {}) for run in recorded.get("runs", [])}
    for run in sweep.runs:
        if settings := changed_settings(configs.get(run.name, {}), run.config):
            return f"{run.name}: {'; '.join(settings)}"
    return "its runs"


def _axis_column(key: str, values: list[Any]) -> pl.Series:
    """An axis's values as given: whole numbers mixed with fractions as floats; tables, and values of
    different kinds (say "all" and [1, 2]), as JSON text."""
    # Tables ({} or a list of them, as `defense` takes): Parquet cannot write a struct without fields.
    if any(
        isinstance(value, dict) or (isinstance(value, list) and any(isinstance(v, dict) for v in value))
        for value in values
    ):
        return pl.Series(key, [json.dumps(value, sort_keys=True) for value in values])
    try:
        return pl.Series(key, values, strict=True)
    except TypeError:
        if all(isinstance(value, int | float) for value in values):
            return pl.Series(key, values, dtype=pl.Float64)
        return pl.Series(key, [json.dumps(value) for value in values])


def _figures(summary: dict[str, Any]) -> dict[str, Any]:
    """A summary's scalar figures; a defense's as `defense_<key>`; the per-cycle table and graph left out."""
    figures = {key: value for key, value in summary.items() if not isinstance(value, dict | list)}
    return figures | {f"defense_{key}": value for key, value in summary.get("defense", {}).items()}


def sweep(
    spec_path: str | Path,
    out: str | Path,
    progress: Callable[[SweepProgress], None] | None = None,
    ray_address: str | None = None,
) -> SweepResult:
    """Run every (cell, seed) of the sweep file `spec_path` into the sweep directory `out`, as Ray tasks
    (on an embedded Ray, the one already initialized, or the cluster at `ray_address`), then gather
    the results. Run again, it skips complete runs and resumes the others."""
    return run_sweeps([(read_sweep_file(spec_path), SweepDirectory(out))], progress, ray_address)[0]


def run_sweeps(
    sweeps: list[tuple[Sweep, SweepDirectory]],
    progress: Callable[[SweepProgress], None] | None = None,
    ray_address: str | None = None,
) -> list[SweepResult]:
    """Run several resolved sweeps, each into its directory, their runs all in one pool of Ray tasks."""
    for resolved, directory in sweeps:
        directory.check(resolved)  # before anything is written
    check_cache()
    jobs = [job for resolved, directory in sweeps for job in _jobs(resolved, directory, several=len(sweeps) > 1)]
    waiting = [job for job in jobs if not _complete(job.directory)]
    with _cluster(waiting, ray_address), contextlib.ExitStack() as locks:
        for resolved, directory in sweeps:
            locks.enter_context(RunDirectory(directory.path).lock())
            directory.check(resolved)  # again, under the lock: another sweep may have started meanwhile
            directory.write_record(resolved)
        if waiting:  # else no Ray: its first call would start, or join, a cluster of its own accord
            _build_bases(waiting)
            _compute(waiting, len(jobs), progress)
        return [directory.write_results(resolved) for resolved, directory in sweeps]


def load_sweep(path: str | Path) -> SweepResult:
    """The results of the finished sweep in the directory `path`."""
    return SweepDirectory(path).read_results()


@dataclass(frozen=True)
class Job:
    """A run to compute for a sweep: one (cell, seed), or a twin its runs share."""

    name: str
    config: Config
    directory: RunDirectory
    twin: RunDirectory | None = None  # the shared twin a (cell, seed) is measured against


def _jobs(sweep: Sweep, directory: SweepDirectory, several: bool) -> list[Job]:
    """The sweep's twins, then its runs. Runs whose configurations without attacks are the same (every dose
    of a dose sweep at one seed) share one twin, computed once. Named by their directory, within the
    sweep's parent when there are several sweeps."""
    prefix = f"{directory.path.name}/" if several else ""
    twins: dict[Path, Job] = {}
    runs = []
    for run in sweep.runs:
        twin = None
        if run.config.has_twin:
            clean = run.config.poison_free()
            twin = directory.twin(clean)
            name = twin.path.relative_to(directory.path).as_posix()
            twins.setdefault(twin.path, Job(prefix + name, clean, twin))
        runs.append(Job(prefix + run.name, run.config, directory.run(run.name), twin))
    return [*twins.values(), *runs]


def _complete(directory: RunDirectory) -> bool:
    try:
        return directory.read_manifest().status is Status.complete
    except ResultsError:  # no manifest yet, or a damaged one: the run is computed (again)
        return False


@contextlib.contextmanager
def _cluster(runs: list[Job], ray_address: str | None) -> Iterator[None]:
    """The Ray cluster, checked to hold each of `runs`; none when there is no run to compute."""
    if not runs:
        yield
        return
    from ecosystem.hosting import ray_session  # Ray and torch: only once the sweep is known to be good

    with ray_session(ray_address):
        _check_fit(runs)
        yield


def _check_fit(runs: list[Job]) -> None:
    """A task that no machine of the cluster can hold would wait forever: refuse it first."""
    import ray

    machines = [node["Resources"] for node in ray.nodes() if node["Alive"]]
    cpus, gpus = (max((machine.get(kind, 0) for machine in machines), default=0) for kind in ("CPU", "GPU"))
    for run in runs:
        hosting = run.config.hosting
        if hosting.num_cpus > cpus or hosting.num_gpus > gpus:
            raise ConfigError(
                f"{run.name}: hosting.num_cpus = {hosting.num_cpus:g} and hosting.num_gpus = {hosting.num_gpus:g} "
                f"do not fit on any machine of the Ray cluster (at most {cpus:g} CPU, {gpus:g} GPU)"
            )


def _build_bases(jobs: list[Job]) -> None:
    """Every base the runs start from, built once each, in parallel as Ray tasks, before any run starts:
    the runs then find them in the cache, where runs of one base would each wait for the first to build it."""
    import ray
    from ray.exceptions import RayTaskError

    from ecosystem.bases import base_checkpoint

    needed: dict[str, tuple[Config, BaseGroup]] = {}
    for job in jobs:
        config = job.config
        for index in sorted(set(config.node_bases(config.topology.graph(config.seed)).values())):
            base = config.bases[index]
            world, model = config.world.model_dump(mode="json"), base.model.model_dump(mode="json")
            recipe = json.dumps([world, model, base.stage], sort_keys=True)
            needed.setdefault(recipe, (config, base))
    task = ray.remote(base_checkpoint)
    builds = [
        task.options(num_cpus=config.hosting.num_cpus, num_gpus=config.hosting.num_gpus).remote(config, base)
        for config, base in needed.values()
    ]
    try:
        ray.get(builds)
    except RayTaskError as error:
        raise ResultsError(f"a base failed to build ({type(error.cause).__name__}: {error.cause})") from None


def _compute(jobs: list[Job], total: int, progress: Callable[[SweepProgress], None] | None) -> None:
    """Each run as a Ray task declaring its run's CPUs and GPUs: Ray runs as many at once as the
    cluster holds; a run whose shared twin is still to compute waits for it. A failed run does not stop
    the others; the sweep fails once they are done."""
    import ray
    from ray.exceptions import RayError, RayTaskError

    task = ray.remote(_compute_run)
    pending: dict[Any, Job] = {}
    twins: dict[Path, Any] = {}  # the task computing each twin
    for job in jobs:  # twins first
        hosting = job.config.hosting
        twin = None if job.twin is None else job.twin.path
        reference = task.options(num_cpus=hosting.num_cpus, num_gpus=hosting.num_gpus).remote(
            job.config, job.directory.path, twin, twins.get(twin)
        )
        twins[job.directory.path], pending[reference] = reference, job
    failures = []
    try:
        while pending:
            if progress is not None:
                running = [job.name for job in pending.values() if job.directory.is_live()]
                progress(SweepProgress(total - len(pending), total, running))
            finished, _ = ray.wait(list(pending), num_returns=len(pending), timeout=POLL_SECONDS)
            for reference in finished:
                job = pending.pop(reference)
                try:
                    ray.get(reference)
                except RayError as error:
                    cause = error.cause if isinstance(error, RayTaskError) else error
                    if isinstance(cause, BaseRefused):  # a sweep stops at its first refused base (see ecosystem.gate)
                        raise BaseRefused(f"{job.name}: {cause}") from None
                    failures.append(f"{job.name} ({type(cause).__name__}: {cause})")
    finally:
        for reference in pending:  # the driver was interrupted: stop the runs still going; a rerun resumes them
            ray.cancel(reference, force=True)
    if failures:
        others = ", the others are complete" if len(failures) < total else ""
        raise ResultsError(
            f"{len(failures)} of {total} runs failed{others}: {'; '.join(failures)}; "
            "the same command again retries them"
        )


def _compute_run(config: Config, path: Path, twin: Path | None = None, _twin_done: None = None) -> None:
    """A Ray task: one run, computed in this worker's process; resumed from its checkpoint if it has
    one, else started (again) from the beginning; measured against the shared `twin` (which Ray has
    finished computing first: `_twin_done` is its task's result)."""
    from ecosystem.engine import resume, run  # torch: in the worker only

    directory = RunDirectory(path)
    if directory.holds_run() and _resumable(directory):
        resume(path)
    else:
        shutil.rmtree(path, ignore_errors=True)  # a run stopped before its first checkpoint has nothing to keep
        run(config, path, twin=twin)


def _resumable(directory: RunDirectory) -> bool:
    try:
        directory.read_checkpoint()
    except ResultsError:
        return False
    return True
