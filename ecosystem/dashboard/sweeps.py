"""Finding sweep directories in a runs directory, their progress, and their results over seeds, all
through `SweepDirectory` and `RunDirectory`.

A sweep's `cells.parquet` and `metrics.parquet` exist once every run is complete; until then the
sweep shows how many of its runs are complete. A sweep whose record cannot be read shows as
unreadable, with the reason, and never hides the others.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any, NamedTuple

import polars as pl

from ecosystem.analysis import BASE, CURVE_RESAMPLES, over_seeds, with_bases
from ecosystem.dashboard.columns import CENSORED
from ecosystem.dashboard.runs import (
    FINAL_FIGURES,
    LABELS,
    UNREADABLE,
    Listed,
    holds_sweep,
    metric_columns,
    subdirectories,
)
from ecosystem.results import ResultsError, RunDirectory, Status
from ecosystem.sweeps import SweepDirectory, SweepResult

INCOMPLETE = "incomplete"
KEYS = ("cell", "seed")  # the columns of cells.parquet and metrics.parquet before the axes
CELL_FIGURES = tuple(figure for figure in FINAL_FIGURES if figure not in ("cycles", "nodes"))  # shown at first


@dataclass(frozen=True)
class Sweep(Listed):
    """A sweep directory as read from disk: its record's runs, and how many of them are complete."""

    directory: SweepDirectory
    name: str
    runs: list[dict[str, Any]]  # sweep.json's runs: name ("run"), cell, seed and axis values
    complete: int
    status: str
    note: str

    @property
    def total(self) -> int:
        return len(self.runs)

    @property
    def axes(self) -> list[str]:
        """The swept config keys, in the sweep's order (every run's values name them all)."""
        return list(self.runs[0]["values"]) if self.runs else []

    @property
    def live(self) -> bool:
        return self.status == LABELS[Status.running]

    @property
    def unfinished(self) -> bool:
        """Running, or stopped with runs still to compute: either way its results are not all there."""
        return self.live or self.status == INCOMPLETE


def read_sweep(path: Path) -> Sweep:
    directory = SweepDirectory(path.resolve())
    try:
        runs = directory.read_runs()
    except ResultsError as error:
        return Sweep(directory, directory.path.name, [], 0, UNREADABLE, str(error).removeprefix(f"{directory.path}: "))
    complete = sum(_complete(directory.run(run["run"])) for run in runs)
    if RunDirectory(directory.path).is_live():  # a live sweep holds its directory's lock
        return Sweep(directory, directory.path.name, runs, complete, LABELS[Status.running], "")
    if complete < len(runs):
        note = f"it stopped before its end; run the same `cascade sweep SPEC --out {directory.path}` to finish it"
        return Sweep(directory, directory.path.name, runs, complete, INCOMPLETE, note)
    return Sweep(directory, directory.path.name, runs, complete, Status.complete.value, "")


def _complete(directory: RunDirectory) -> bool:
    try:
        return directory.read_manifest().status is Status.complete
    except ResultsError:  # not started yet, or a damaged manifest
        return False


def list_sweeps(runs_dir: Path) -> list[Sweep]:
    """The sweep directories in `runs_dir`, by name."""
    return sorted((read_sweep(path) for path in subdirectories(runs_dir) if holds_sweep(path)), key=lambda s: s.name)


def sweeps_table(sweeps: list[Sweep]) -> pl.DataFrame:
    rows = [
        {
            "sweep": sweep.name,
            "axes": ", ".join(sweep.axes),
            "cells": len({run["cell"] for run in sweep.runs}),
            "seeds": len({run["seed"] for run in sweep.runs}),
            "runs complete": f"{sweep.complete}/{sweep.total}",
            "status": sweep.status,
            "note": sweep.note,
        }
        for sweep in sweeps
    ]
    return pl.DataFrame(rows, infer_schema_length=None)


class ResultsFiles(NamedTuple):
    """A sweep's two results files as they are now (modification time and size of each): a rerun of
    the sweep rewrites them, so they key a cache of their contents."""

    sweep: Path
    stamps: tuple[tuple[int, int], ...]


def results_files(sweep: Path) -> ResultsFiles:
    directory = SweepDirectory(sweep)
    try:
        stats = [path.stat() for path in (directory.cells_path, directory.metrics_path)]
    except FileNotFoundError:
        raise ResultsError("its results are gathered once every run is complete") from None
    return ResultsFiles(sweep, tuple((stat.st_mtime_ns, stat.st_size) for stat in stats))


def read_results(files: ResultsFiles) -> SweepResult:
    return SweepDirectory(files.sweep).read_results()


def sweep_metric_columns(metrics: pl.DataFrame, axes: list[str]) -> list[str]:
    """The run metrics that make a curve: `metric_columns` but the cell, seed and axis columns."""
    return [column for column in metric_columns(metrics) if column not in (*KEYS, *axes)]


def figure_columns(cells: pl.DataFrame, axes: list[str]) -> list[str]:
    """The cascade figures of cells.parquet: its numeric columns but the cell, seed, axis and base columns."""
    return [name for name, dtype in cells.schema.items() if dtype.is_numeric() and name not in (*KEYS, *axes, BASE)]


def metric_per_run(metrics: pl.DataFrame, metric: str, keys: list[str]) -> pl.DataFrame:
    """Each run's mean of `metric` over its nodes per cycle: the `keys` columns (axes, or `cell`), `run`
    (its cell and seed), `cycle` and `value`."""
    return (
        metrics.group_by(*dict.fromkeys([*KEYS, *keys]), "cycle")
        .agg(value=pl.col(metric).cast(pl.Float64).mean())
        .with_columns(run=pl.format("cell {} seed {}", "cell", "seed"))
    )


def metric_over_seeds(metrics: pl.DataFrame, cells: pl.DataFrame, metric: str, keys: list[str]) -> pl.DataFrame:
    """Per group (a combination of the `keys` columns: axes, or `cell`) and cycle, the mean of `metric`
    with its interval over the runs, from each run's mean over its nodes, the runs grouped by their base
    (from `cells`). Columns: the keys, `cycle`, and `{metric}_mean`, `_low`, `_high`, `_seeds`, `_bases`
    as `over_seeds` gives them; cells that differ only in other axes are pooled, so `_seeds` counts their runs."""
    per_run = with_bases(metric_per_run(metrics, metric, keys).rename({"value": metric}), cells)
    return over_seeds(per_run, [*keys, "cycle"], [metric], resamples=CURVE_RESAMPLES)


def cells_table(cells: pl.DataFrame, axes: list[str], figures: list[str]) -> pl.DataFrame:
    """A row per cell: its axis values and, for each figure, the mean over seeds with its 95% interval and the
    seeds and bases it rests on; for a figure a run may never reach (time_to_systemic), `_censored` counts
    the seeds that did not, within the run: the mean is over the others."""
    table = over_seeds(cells, ["cell", *axes], figures)
    censored = [pl.col(figure).null_count().alias(f"{figure}_censored") for figure in figures if figure in CENSORED]
    if not censored:
        return table
    return table.join(cells.group_by("cell").agg(censored), on="cell", how="left", maintain_order="left")


def figure_over_axis(cells: pl.DataFrame, axis: str, figure: str, groups: list[str]) -> pl.DataFrame:
    """`figure`'s mean over runs with its 95% interval per value of `axis` and of the `groups` axes."""
    return over_seeds(cells, [*groups, axis], [figure])
