"""The vocabulary of an experiment's verdict: what `analyse(cells, parameters)` in `experiments/NAME.py`
returns (`Analysis`: its `Finding`s, `Table`s and `Chart`s) and the helpers its rule is written with
(intervals over seeds, differences, the comparisons that decide a verdict, charts). The runner
(`ecosystem.experiments`) applies the rule; the report (`ecosystem.reporting`) shows what it returned."""

from __future__ import annotations

import dataclasses
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Literal

import numpy as np
import polars as pl
from scipy import stats

from ecosystem.analysis import ALPHA, Censored, Estimate, Interval, bootstrap, holm, mean_interval
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
    figures: dict[str, Interval | Censored] = field(default_factory=dict)  # label → mean and 95% interval
    p_value: float | None = None  # the p-value of the test that decided the verdict (None: no test decided it)
    p_holm: float | None = None  # that p-value after Holm's correction across the experiment's findings


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


# ---- helpers for the rules (v2): a figure pooled over runs on several bases, its hierarchical bootstrap,
# effects decided by p-values from it, no effect only by equivalence within a pre-registered margin

BASE = "model_seed"  # the column naming a run's base: its runs form one cluster of the bootstrap


def pooled(cells: pl.DataFrame, figure: str, seed: int = 0) -> Estimate:
    """The mean of `figure` over the rows of `cells` (one per run) with its hierarchical bootstrap over
    bases, then runs within a base (its draws from `seed`: figures bootstrapped to be compared as independent
    need different seeds)."""
    return bootstrap(_clusters(cells.select(BASE, value=figure)), seed=seed)


def gap(cells: pl.DataFrame, figure: str, treated: pl.Expr, control: pl.Expr) -> Estimate:
    """The mean over runs of `figure` in the `treated` rows minus the `control` rows of the same base and seed
    (paired: one run seed gives both arms the same base and data streams), bootstrapped over bases, then pairs."""
    keys = [BASE, "seed"]
    joined = cells.filter(treated).select(*keys, a=figure).join(cells.filter(control).select(*keys, b=figure), keys)
    return bootstrap(_clusters(joined.select(BASE, value=pl.col("a") - pl.col("b"))))


def apart(a: Estimate, b: Estimate) -> Estimate:
    """The difference of two independently bootstrapped figures (arms with no run in common, bootstrapped from
    different seeds), `a - b`, draw by draw, with its 95% percentile interval."""
    if a.draws is None or b.draws is None:
        mean = None if None in (a.interval.mean, b.interval.mean) else a.interval.mean - b.interval.mean
        return Estimate(Interval(mean, None, None, min(a.interval.seeds, b.interval.seeds)))
    draws = a.draws[: len(b.draws)] - b.draws[: len(a.draws)]
    low, high = np.quantile(draws, [0.025, 0.975])
    seeds = min(a.interval.seeds, b.interval.seeds)
    return Estimate(Interval(a.interval.mean - b.interval.mean, float(low), float(high), seeds), draws)


def _clusters(frame: pl.DataFrame) -> list[list[float | None]]:
    """The `value` column of (BASE, value) rows as one list per base, in base order."""
    return [group["value"].to_list() for _, group in frame.sort(BASE).group_by(BASE, maintain_order=True)]


Side = Literal["above", "below", "within"]


@dataclass(frozen=True)
class Effect:
    """The outcome of one figure's test against a threshold: `side` is "above" or "below" when its 95%
    interval lies on that side (`p`: the two-sided bootstrap p-value), "within" when two one-sided tests place
    it within ±margin of the threshold (`p`: the TOST p-value; this takes precedence, since an effect smaller
    than the margin is none that the rule counts), None when neither (`p` None)."""

    side: Side | None
    p: float | None


def effect(estimate: Estimate, margin: float, threshold: float = 0.0) -> Effect:
    """The test of a figure against `threshold`, with `margin` the smallest difference the rule counts."""
    if estimate.draws is None:
        return Effect(None, None)
    equivalent = max(estimate.p_above(threshold - margin), estimate.p_below(threshold + margin))
    if equivalent < ALPHA:
        return Effect("within", equivalent)
    above, below = 2 * estimate.p_above(threshold), 2 * estimate.p_below(threshold)
    if above < ALPHA:
        return Effect("above", above)
    if below < ALPHA:
        return Effect("below", below)
    return Effect(None, None)


def across(effects: Sequence[Effect], expected: Literal["above", "below"]) -> tuple[Verdict, float | None]:
    """A claim that an effect lies on the `expected` side, judged in several cells, with the p-value of the
    decision: holds when it does in every cell (p: the largest, an intersection-union test); holds under
    conditions when it does in some and in the others is neither reversed nor excluded (p: the smallest times
    the number of cells, Bonferroni over the union); does not hold when every cell is within the margin or
    reversed (p: the largest); inconclusive otherwise."""
    sides = [found.side for found in effects]
    p_values = [found.p for found in effects]
    if not effects:
        return "inconclusive", None
    if all(side == expected for side in sides):
        return "holds", max(p_values)
    if all(side not in (expected, None) for side in sides):
        return "does not hold", max(p_values)
    if expected in sides and all(side in (expected, None) for side in sides):
        shown = [found.p for found in effects if found.side == expected]
        return "holds under conditions", min(1.0, min(shown) * len(effects))
    return "inconclusive", None


def every(effects: Sequence[Effect], expected: Literal["above", "below"]) -> tuple[Verdict, float | None]:
    """A claim that needs the effect on the `expected` side in every cell at once (an ordering, a combination
    beating each of its parts), with the p-value of the decision: holds when it is there in every cell (p: the
    largest); does not hold when some cell is within the margin or reversed (p: the smallest such times the number
    of cells); inconclusive otherwise."""
    if effects and all(found.side == expected for found in effects):
        return "holds", max(found.p for found in effects)
    refuting = [found.p for found in effects if found.side is not None and found.side != expected]
    if refuting:
        return "does not hold", min(1.0, min(refuting) * len(effects))
    return "inconclusive", None


def with_holm(findings: Sequence[Finding]) -> list[Finding]:
    """The findings with Holm's correction across those decided by a test: each gets `p_holm`, and a verdict
    whose adjusted p-value is not below ALPHA becomes inconclusive (the reason says so)."""
    tested = [index for index, finding in enumerate(findings) if finding.p_value is not None]
    adjusted = dict(zip(tested, holm([findings[index].p_value for index in tested]), strict=True))
    result = []
    for index, finding in enumerate(findings):
        if index not in adjusted:
            result.append(finding)
            continue
        p_holm = adjusted[index]
        verdict, reason = finding.verdict, finding.reason
        if p_holm >= ALPHA and verdict != "inconclusive":
            verdict = "inconclusive"
            reason += (
                f"; but after Holm's correction across the {len(tested)} tested findings its p-value is "
                f"{p_holm:.3f} (unadjusted {finding.p_value:.3f}), not below {ALPHA}: was {finding.verdict}"
            )
        result.append(dataclasses.replace(finding, verdict=verdict, reason=reason, p_holm=p_holm))
    return result


# ---- helpers for the v1 rules (Student-t intervals over the seeds of one base)


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


def describe(value: Interval | Censored | Estimate) -> str:
    """`0.42 [0.30, 0.54]`: a mean and its 95% interval, for reasons; a censored time as the runs that
    reached it by the horizon and their median."""
    if isinstance(value, Estimate):
        value = value.interval
    if isinstance(value, Censored):
        median = f"median {value.median:g}" if value.median is not None else f"median > {value.horizon}"
        return f"{median} (reached by {value.reached} of {value.runs} runs within {value.horizon} cycles)"
    if value.mean is None:
        return "-"
    return f"{value.mean:.2f}" + (f" [{value.low:.2f}, {value.high:.2f}]" if value.low is not None else "")


def rests_on(value: Interval | Censored) -> str:
    """What a figure rests on: `3 bases × 5 seeds` (or `15 runs` where bases hold unequal numbers)."""
    if isinstance(value, Censored):
        return f"{value.runs} runs"
    if not value.bases:
        return f"{value.seeds} seeds"
    if value.seeds % value.bases == 0:
        return f"{value.bases} bases × {value.seeds // value.bases} seeds"
    return f"{value.seeds} runs on {value.bases} bases"


def p_value(value: float | None) -> str:
    """A p-value as reports show it: three decimals, `< 0.001` below that, `-` where no test decided."""
    if value is None:
        return "-"
    return "< 0.001" if value < 0.001 else f"{value:.3f}"


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
