"""Finding experiment directories (each holds a `verdict.json`) and reading what they hold: the
verdict's findings, the report's text and pictures, and the sweeps a local run left in `sweeps/`.

They are read as plain JSON, Markdown and parquet files, so that the experiments page needs none of
the code that computes them. A directory whose verdict cannot be read is listed with the reason."""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import polars as pl

from ecosystem.dashboard.runs import UNREADABLE, VERDICT, holds_experiment, holds_sweep, subdirectories
from ecosystem.results import ResultsError

REPORT = Path("report") / "report.md"
SWEEPS = "sweeps"  # the experiment's sweep directories, one per part, when it was run here
CELLS = "cells.parquet"
IMAGE = re.compile(r"^!\[(?P<caption>[^\]]*)\]\((?P<file>[^)\s]+)\)\s*$", re.MULTILINE)
VERDICTS = ("holds", "holds under conditions", "does not hold", "inconclusive")


@dataclass(frozen=True)
class Experiment:
    """An experiment directory as read from disk; `verdict` is empty when unreadable (`note` says why)."""

    path: Path
    verdict: dict[str, Any]
    note: str

    @property
    def name(self) -> str:
        return self.path.name

    @property
    def findings(self) -> list[dict[str, Any]]:
        return self.verdict.get("findings", [])


def read_experiment(path: Path) -> Experiment:
    try:
        verdict = json.loads((path / VERDICT).read_text())
        if not isinstance(verdict, dict) or not isinstance(verdict.get("findings", []), list):
            raise ValueError("not an object with a list of findings")
    except (OSError, ValueError) as error:
        return Experiment(path.resolve(), {}, f"{VERDICT} is unreadable: {error}")
    return Experiment(path.resolve(), verdict, "")


def list_experiments(folder: Path) -> list[Experiment]:
    """The experiment directories in `folder`, by name."""
    return sorted(
        (read_experiment(path) for path in subdirectories(folder) if holds_experiment(path)), key=lambda e: e.name
    )


def experiments_table(experiments: list[Experiment]) -> pl.DataFrame:
    """A row per experiment: its title, how many claims got each verdict, its seeds and when it was computed."""
    rows = []
    for experiment in experiments:
        verdict = experiment.verdict
        counted = [f.get("verdict") for f in experiment.findings]
        rows.append(
            {
                "experiment": experiment.name,
                "title": verdict.get("title", UNREADABLE if experiment.note else ""),
                **{word: counted.count(word) for word in VERDICTS},
                "quick": verdict.get("quick"),
                "seeds": len(verdict.get("seeds", [])),
                "created": str(verdict.get("created", ""))[:16].replace("T", " "),
                "note": experiment.note,
            }
        )
    return pl.DataFrame(rows, infer_schema_length=None)


FINDING_COLUMNS = {
    "name": pl.String,
    "verdict": pl.String,
    "p_value": pl.Float64,
    "p_holm": pl.Float64,
    "reason": pl.String,
}


def findings_table(experiment: Experiment) -> pl.DataFrame:
    """A row per finding (claim): its name, verdict, the p-value of the test that decided it before and after
    Holm's correction across the experiment (v2 rules; none in earlier records) and the reason the rule gave."""
    rows = [{key: finding.get(key) for key in FINDING_COLUMNS} for finding in experiment.findings]
    return pl.DataFrame(rows, schema=FINDING_COLUMNS)


FIGURE_COLUMNS = {
    "figure": pl.String,
    "mean": pl.Float64,
    "low": pl.Float64,
    "high": pl.Float64,
    "seeds": pl.Int64,
    "bases": pl.Int64,
    "median": pl.Float64,
    "reached": pl.Int64,
    "runs": pl.Int64,
}


def figures_table(finding: dict[str, Any]) -> pl.DataFrame:
    """A finding's figures: a row each with its mean, 95% interval, the seeds and bases it rests on, and
    `past_0_1`: whether the interval runs past [0, 1] (for a share, read such an end as the bound; v2's
    bootstrap intervals never do). A censored time (some runs never reached it) has no mean: its median
    among all runs (`median`, null when half or more never reached it) and how many runs reached it."""
    rows = [
        {"figure": name, **{part: figure.get(part) for part in FIGURE_COLUMNS if part != "figure"}}
        for name, figure in finding.get("figures", {}).items()
        if isinstance(figure, dict)
    ]
    table = pl.DataFrame(rows, schema=FIGURE_COLUMNS)
    # verdict.json does not say which figures are shares: an interval past [0, 1] is flagged for the reader
    return table.with_columns(past_0_1=((pl.col("low") < 0) | (pl.col("high") > 1)).fill_null(False))


def report_parts(experiment: Experiment) -> list[tuple[str, str | Path]]:
    """The report's Markdown cut at its pictures: ("text", markdown) and ("image", PNG path) in order,
    since a page shows a picture beside it only from its file. Nothing without a report."""
    try:
        text = (experiment.path / REPORT).read_text()
    except OSError:
        return []
    parts: list[tuple[str, str | Path]] = []
    position = 0
    for match in IMAGE.finditer(text):
        parts.append(("text", text[position : match.start()]))
        parts.append(("image", experiment.path / REPORT.parent / match["file"]))
        position = match.end()
    parts.append(("text", text[position:]))
    return [(kind, part) for kind, part in parts if kind == "image" or str(part).strip()]


def experiment_sweeps(experiment: Experiment) -> list[str]:
    """The sweeps a run of the experiment here left in its `sweeps/` (committed results have none)."""
    folder = experiment.path / SWEEPS
    try:
        return sorted(path.name for path in subdirectories(folder) if holds_sweep(path))
    except ResultsError:
        return []


def read_cells(experiment: Experiment) -> pl.DataFrame | None:
    """Every run's figures (cells.parquet: a `sweep` column, then cell, seed, the axes, run, figures)."""
    try:
        return pl.read_parquet(experiment.path / CELLS)
    except (OSError, pl.exceptions.PolarsError):
        return None


def cell_axes(cells: pl.DataFrame, sweep: str) -> list[str]:
    """The axes of one sweep of an experiment's cells: the columns between `seed` and `run` with values in it."""
    names = cells.columns
    between = names[names.index("seed") + 1 : names.index("run")] if {"seed", "run"} <= set(names) else []
    rows = cells.filter(pl.col("sweep") == sweep)
    return [axis for axis in between if rows[axis].null_count() < rows.height]
