"""Named experiments: a claim from the source documents, the sweeps that measure it and a verdict rule
written before the data was seen, run by `cascade experiment NAME`.

An experiment is two files in `experiments/`: `NAME.toml` (the claim quoted with its source, the rule in
words, the rule's thresholds under [parameters], the sweeps under [sweeps.PART] in the sweep-file format,
and [quick], merged over the file by `--quick`) and `NAME.py`, whose `analyse(cells, parameters)` applies
the rule to the runs' figures and returns `Analysis`; an optional `run_figures(directory)` adds figures of
each run read from its run directory. The output directory holds `experiment.json` (what was run),
`sweeps/PART/` (sweep directories), `cells.parquet` (every part's cells, with a `sweep` column),
`verdict.json` and `report/report.md`.
"""

from __future__ import annotations

import copy
import datetime
import hashlib
import importlib
import json
import re
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

import numpy as np
import polars as pl
import tomli_w
from scipy import stats

from ecosystem.analysis import Interval, mean_interval
from ecosystem.config import ConfigError, read_toml
from ecosystem.models.cache import check_cache
from ecosystem.results import ResultsError, RunDirectory, package_versions, write_json, write_parquet
from ecosystem.sweeps import Sweep, SweepDirectory, SweepProgress, SweepResult, resolve_sweep, run_sweeps

if TYPE_CHECKING:
    from matplotlib.figure import Figure

EXPERIMENTS = Path(__file__).resolve().parent.parent / "experiments"
KEYS = ("title", "claim", "source", "organism", "rule", "parameters", "sweeps", "quick")
REQUIRED = ("title", "claim", "source", "rule", "sweeps")
Verdict = Literal["holds", "holds under conditions", "does not hold", "inconclusive"]
VERDICTS: tuple[Verdict, ...] = ("holds", "holds under conditions", "does not hold", "inconclusive")


@dataclass(frozen=True)
class Finding:
    """The verdict on one claim of an experiment, with the measured figures it rests on."""

    name: str
    claim: str
    rule: str
    verdict: Verdict
    reason: str  # why this verdict: the comparison that decided it, in words and numbers
    figures: dict[str, Interval] = field(default_factory=dict)  # label → mean and 95% interval over seeds


@dataclass(frozen=True)
class Table:
    title: str
    frame: pl.DataFrame


@dataclass(frozen=True)
class Chart:
    name: str  # the PNG's file name
    caption: str
    draw: Callable[[], Figure]


@dataclass(frozen=True)
class Analysis:
    findings: list[Finding]
    tables: list[Table] = field(default_factory=list)
    charts: list[Chart] = field(default_factory=list)


@dataclass(frozen=True)
class Experiment:
    """An experiment file, resolved (with `--quick`'s changes merged in when quick), and its sweeps by part."""

    name: str
    spec: dict[str, Any]
    quick: bool
    sweeps: dict[str, Sweep]

    @property
    def fingerprint(self) -> str:
        return hashlib.sha256(json.dumps(self.spec, sort_keys=True).encode()).hexdigest()

    @property
    def parameters(self) -> dict[str, Any]:
        return self.spec.get("parameters", {})


@dataclass(frozen=True)
class ExperimentResult:
    path: Path
    verdict: dict[str, Any]  # what verdict.json holds
    cells: pl.DataFrame
    sweeps: dict[str, SweepResult]  # each part's runs, by part name


def names() -> list[str]:
    """The experiments shipped in `experiments/`."""
    return sorted(path.stem for path in EXPERIMENTS.glob("*.toml"))


def load_experiment(name: str, quick: bool = False) -> Experiment:
    """The experiment `name`, checked: its keys, and every sweep's runs (as `cascade sweep` checks them)."""
    path = EXPERIMENTS / f"{name}.toml"
    if name not in names():
        raise ConfigError(f"no experiment {name!r}; available: {', '.join(names())}")
    spec = read_toml(path, "experiment")[1]
    if unknown := sorted(set(spec) - set(KEYS)):
        raise ConfigError(f"experiment file {path}: unknown key '{unknown[0]}'; valid keys: {', '.join(KEYS)}")
    if missing := [key for key in REQUIRED if key not in spec]:
        raise ConfigError(f"experiment file {path}: missing '{missing[0]}'")
    quick_changes = spec.pop("quick", {})
    if quick:
        spec = _merged(spec, quick_changes)
    sweeps = {
        part: resolve_sweep(tomli_w.dumps(table), table, path, f"experiment {name}, sweep {part}")
        for part, table in spec["sweeps"].items()
    }  # every run's configuration checked
    return Experiment(name, spec, quick, sweeps)


def _merged(spec: dict[str, Any], changes: dict[str, Any]) -> dict[str, Any]:
    """`spec` with `changes` put in: tables merge key by key, any other value replaces."""
    merged = copy.deepcopy(spec)
    for key, value in changes.items():
        if isinstance(value, dict) and isinstance(merged.get(key), dict):
            merged[key] = _merged(merged[key], value)
        else:
            merged[key] = value
    return merged


def run_experiment(
    name: str,
    out: str | Path,
    quick: bool = False,
    progress: Callable[[SweepProgress], None] | None = None,
    ray_address: str | None = None,
) -> ExperimentResult:
    """Run the experiment `name` into `out`: its sweeps (resumed where they stopped), then the rule and
    the report. A directory holding another experiment, or another version of this one, is refused."""
    experiment = load_experiment(name, quick)
    out = Path(out)
    record = {"experiment": name, "quick": quick, "fingerprint": experiment.fingerprint, "spec": experiment.spec}
    _check_directory(out, record)
    check_cache()  # before the directory is created
    module = importlib.import_module(f"experiments.{name}")
    started = time.perf_counter()
    with RunDirectory(out).lock():
        _check_directory(out, record)
        write_json(out / "experiment.json", record)
        directories = {part: SweepDirectory(out / "sweeps" / part) for part in experiment.sweeps}
        sweeps = [(sweep, directories[part]) for part, sweep in experiment.sweeps.items()]
        results = run_sweeps(sweeps, progress, ray_address)
        cells = pl.concat(
            [
                _with_run_figures(result.cells, directories[part], module).select(pl.lit(part).alias("sweep"), pl.all())
                for part, result in zip(experiment.sweeps, results, strict=True)
            ],
            how="diagonal_relaxed",
        )
        analysis: Analysis = module.analyse(cells, experiment.parameters)
        verdict = _verdict_record(experiment, analysis, time.perf_counter() - started)
        from ecosystem.reporting import write_experiment_report  # matplotlib: only when drawing

        write_parquet(out / "cells.parquet", cells)
        write_json(out / "verdict.json", verdict)
        write_experiment_report(out, experiment.spec, verdict, analysis)
    return ExperimentResult(out, verdict, cells, dict(zip(experiment.sweeps, results, strict=True)))


def _check_directory(out: Path, record: dict[str, Any]) -> None:
    """`out` is new, empty, or holds this very experiment (then it is resumed)."""
    recorded_path = out / "experiment.json"
    if recorded_path.is_file():
        try:
            recorded = json.loads(recorded_path.read_text())
        except (OSError, ValueError) as error:
            raise ResultsError(f"{out}: experiment.json is unreadable ({error})") from None
        if recorded.get("fingerprint") != record["fingerprint"]:
            what = f"experiment {recorded.get('experiment')!r}" + (" (quick)" if recorded.get("quick") else "")
            raise ResultsError(f"{out} holds a run of {what} that differs from this one; choose another --out")
        return
    if out.exists() and not out.is_dir():
        raise ResultsError(f"{out} is a file: give a directory for the experiment")
    if out.is_dir() and set(p.name for p in out.iterdir()) - {RunDirectory.LOCK}:
        raise ResultsError(f"{out} is not empty and holds no experiment (experiment.json); choose a new --out")


def _with_run_figures(cells: pl.DataFrame, directory: SweepDirectory, module: Any) -> pl.DataFrame:
    """The cells with the experiment's own figures of each run, if it has any (`run_figures`)."""
    if not hasattr(module, "run_figures"):
        return cells
    figures = [module.run_figures(RunDirectory(directory.path / run)) for run in cells["run"]]
    return pl.concat([cells, pl.DataFrame(figures, infer_schema_length=None)], how="horizontal")


def _verdict_record(experiment: Experiment, analysis: Analysis, seconds: float) -> dict[str, Any]:
    spec = experiment.spec
    return {
        "experiment": experiment.name,
        "title": spec["title"],
        "quick": experiment.quick,
        "claim": spec["claim"],
        "source": spec["source"],
        "organism": spec.get("organism"),
        "rule": spec["rule"],
        "parameters": experiment.parameters,
        "findings": [
            {
                "name": finding.name,
                "claim": finding.claim,
                "rule": finding.rule,
                "verdict": finding.verdict,
                "reason": finding.reason,
                "figures": {label: interval._asdict() for label, interval in finding.figures.items()},
            }
            for finding in analysis.findings
        ],
        "seeds": sorted({seed for sweep in experiment.sweeps.values() for seed in sweep.seeds}),
        "seconds": round(seconds, 1),
        "created": datetime.datetime.now(datetime.UTC).isoformat(timespec="seconds"),
        "fingerprint": experiment.fingerprint,
        "versions": package_versions(),
    }


# ---- helpers for the rules in experiments/NAME.py


def interval(cells: pl.DataFrame, figure: str) -> Interval:
    """The mean of `figure` over the rows of `cells` (one per seed) with its 95% Student-t interval."""
    return mean_interval(cells[figure].to_list())


def paired(cells: pl.DataFrame, figure: str, treated: pl.Expr, control: pl.Expr) -> Interval:
    """The mean over seeds of `figure` in the `treated` rows minus the `control` rows of the same seed."""
    joined = cells.filter(treated).select("seed", a=figure).join(cells.filter(control).select("seed", b=figure), "seed")
    return mean_interval((joined["a"] - joined["b"]).to_list())


def difference(treated: Sequence[float | None], control: Sequence[float | None]) -> Interval:
    """The difference of two groups' means (seeds not paired) with its Welch 95% interval; `seeds` counts
    the smaller group. Nones are left out."""
    a = [value for value in treated if value is not None]
    b = [value for value in control if value is not None]
    if len(a) < 2 or len(b) < 2:
        mean = float(np.mean(a) - np.mean(b)) if a and b else None
        return Interval(mean, None, None, min(len(a), len(b)))
    if np.var(a) == 0 and np.var(b) == 0:  # no spread at all: the difference is exact
        gap = float(np.mean(a) - np.mean(b))
        return Interval(gap, gap, gap, min(len(a), len(b)))
    result = stats.ttest_ind(a, b, equal_var=False).confidence_interval(0.95)
    return Interval(float(np.mean(a) - np.mean(b)), float(result.low), float(result.high), min(len(a), len(b)))


def above(value: Interval, threshold: float) -> bool | None:
    """True: the whole interval lies above `threshold`; False: the whole of it below; None: it straddles
    the threshold or cannot be computed (fewer than two seeds)."""
    if value.low is None:
        return None
    if value.low > threshold:
        return True
    if value.high < threshold:
        return False
    return None


def within(value: Interval, margin: float) -> bool:
    """The whole interval lies within ±`margin`: no effect as large as the margin."""
    return value.low is not None and -margin < value.low and value.high < margin


def side(value: Interval, margin: float) -> bool | None:
    """True: the interval lies above 0; False: below 0; None: it straddles 0 or lies within ±margin (no effect)."""
    return None if within(value, margin) else above(value, 0)


def everywhere(values: list[Interval], margin: float) -> Verdict:
    """A rule over cells: does not hold with no effect (`within` ±margin) in every cell, or an effect below 0 in some
    and above 0 in none; holds with an effect above 0 in every cell; holds under conditions with one above 0 in
    some and below 0 in none; inconclusive otherwise."""
    sides = [side(value, margin) for value in values]
    if all(within(value, margin) for value in values) or (False in sides and True not in sides):
        return "does not hold"
    if all(sides):
        return "holds"
    if True in sides and False not in sides:
        return "holds under conditions"
    return "inconclusive"


def somewhere(values: list[Interval], margin: float) -> Verdict:
    """A rule over cells on an effect expected above 0: does not hold with no effect (`within` ±margin) or one below
    0 in every cell; holds with one above 0 in every cell; holds under conditions with one above 0 in some;
    inconclusive otherwise (and with no cell)."""
    sides = [side(value, margin) for value in values]
    if not values:
        return "inconclusive"
    if all(within(value, margin) or found is False for value, found in zip(values, sides, strict=True)):
        return "does not hold"
    if all(sides):
        return "holds"
    return "holds under conditions" if True in sides else "inconclusive"


ARM_BASE = re.compile(r"(?P<arm>[a-z]+)-(?P<seed>\d+)")  # a base named for its arm and model seed, e.g. "mid-3"


def by_run(cell: pl.DataFrame, a: str, b: str) -> Interval:
    """Two arms of bases paired by model seed K (columns `a_K`, `b_K`, one row per run): per run, the mean over K
    of `a_K - b_K`; the interval over runs."""
    seeds = sorted(column.rsplit("_", 1)[1] for column in cell.columns if column.startswith(f"{a}_"))
    return mean_interval(
        cell.select(pl.mean_horizontal([pl.col(f"{a}_{k}") - pl.col(f"{b}_{k}") for k in seeds]))[:, 0]
    )


def below_zero(gap: Interval, tie: Verdict = "inconclusive") -> Verdict:
    """The verdict on "this difference is negative": holds when its interval lies below 0, does not hold when
    above 0, `tie` when it is exactly 0 without any spread, inconclusive otherwise."""
    if gap.high is not None and gap.high < 0:
        return "holds"
    if gap.low is not None and gap.low > 0:
        return "does not hold"
    if gap.low == gap.high == 0:
        return tie
    return "inconclusive"


def describe(value: Interval) -> str:
    """`0.42 [0.30, 0.54]`: a mean and its 95% interval, for reasons."""
    if value.mean is None:
        return "-"
    return f"{value.mean:.2f}" + (f" [{value.low:.2f}, {value.high:.2f}]" if value.low is not None else "")


def bar_chart(name: str, caption: str, bars: Sequence[tuple[str, Interval]], ylabel: str) -> Chart:
    """One bar per label with its 95% interval as an error bar."""

    def draw() -> Figure:
        from matplotlib.figure import Figure

        figure = Figure(figsize=(max(5.0, 0.9 * len(bars) + 2), 4.5), layout="constrained")
        axes = figure.subplots()
        means = [bar.mean or 0.0 for _, bar in bars]
        errors = [
            [(bar.mean - bar.low) if bar.low is not None else 0 for _, bar in bars],
            [(bar.high - bar.mean) if bar.high is not None else 0 for _, bar in bars],
        ]
        axes.bar(range(len(bars)), means, yerr=errors, capsize=4, color="tab:blue", alpha=0.8)
        axes.set_xticks(range(len(bars)), [label for label, _ in bars], rotation=30, ha="right")
        axes.set_ylabel(ylabel)
        axes.grid(axis="y", alpha=0.3)
        return figure

    return Chart(name, caption, draw)


def line_chart(
    name: str,
    caption: str,
    lines: dict[str, tuple[Sequence[float], Sequence[Interval]]],
    xlabel: str,
    ylabel: str,
    log_x: bool = False,
) -> Chart:
    """A line per label through its (x, mean) points, with its 95% interval as a band."""

    def draw() -> Figure:
        from matplotlib.figure import Figure

        figure = Figure(figsize=(7.5, 4.5), layout="constrained")
        axes = figure.subplots()
        for label, (x, values) in lines.items():
            axes.plot(x, [value.mean for value in values], marker="o", label=label)
            if all(value.low is not None for value in values):
                axes.fill_between(x, [v.low for v in values], [v.high for v in values], alpha=0.2)
        if log_x:
            axes.set_xscale("symlog", linthresh=1)
        axes.set_xlabel(xlabel)
        axes.set_ylabel(ylabel)
        axes.grid(alpha=0.3)
        axes.legend()
        return figure

    return Chart(name, caption, draw)
