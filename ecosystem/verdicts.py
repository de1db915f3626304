"""The vocabulary of an experiment's verdict: what `analyse(cells, parameters)` in `experiments/NAME.py`
returns (`Analysis`: its `Finding`s, `Table`s and `Chart`s) and the helpers its rule is written with
(intervals over seeds, differences, the comparisons that decide a verdict, charts). The runner
(`ecosystem.experiments`) applies the rule; the report (`ecosystem.reporting`) shows what it returned."""

from __future__ import annotations

import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Literal

import numpy as np
import polars as pl
from scipy import stats

from ecosystem.analysis import Interval, mean_interval
from ecosystem.drawings import draw_bars, draw_lines

if TYPE_CHECKING:
    from matplotlib.figure import Figure

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


# ---- helpers for the rules


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
    return Chart(name, caption, lambda: draw_bars(bars, ylabel))


def line_chart(
    name: str,
    caption: str,
    lines: dict[str, tuple[Sequence[float], Sequence[Interval]]],
    xlabel: str,
    ylabel: str,
    log_x: bool = False,
) -> Chart:
    """A line per label through its (x, mean) points, with its 95% interval as a band."""
    return Chart(name, caption, lambda: draw_lines(lines, xlabel, ylabel, log_x))
