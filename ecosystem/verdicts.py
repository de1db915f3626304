"""The vocabulary of an experiment's verdict: what `analyse(cells, parameters)` in `experiments/NAME.py`
returns (`Analysis`: its `Finding`s, `Table`s and `Chart`s) and the helpers its rule is written with
(intervals over seeds, differences, the comparisons that decide a verdict, charts). The runner
(`ecosystem.experiments`) applies the rule; the report (`ecosystem.reporting`) shows what it returned."""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Literal

import numpy as np
import polars as pl

from ecosystem.analysis import ALPHA, Censored, Estimate, Interval, bootstrap, holm
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
    equivalent = estimate.p_equivalent(margin, threshold)
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
