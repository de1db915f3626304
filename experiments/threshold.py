"""The verdict rule of `threshold.toml` (v2; its `rule` says it in words)."""

from __future__ import annotations

import math
from typing import Any

import networkx as nx
import numpy as np
import polars as pl

from ecosystem.analysis import Estimate, Interval, censored, fit_sis
from ecosystem.results import RunDirectory
from ecosystem.verdicts import (
    BASE,
    Analysis,
    Effect,
    Finding,
    Table,
    across,
    describe,
    effect,
    line_chart,
    pooled,
    rests_on,
)

GRAPH, WEIGHT = "topology.name", "topology.edge_weight"
FIT = ("beta", "recoveries", "infected_steps")  # a run's figures that the predicted threshold pools
RESAMPLES = 10_000
# Agreement plays `across`'s expected side, disagreement its opposite
AGREES, DISAGREES = "above", "below"


def run_figures(directory: RunDirectory) -> dict[str, float | None]:
    """The SIS fit to the run's infected states, and its graph's unweighted spectral radius."""
    graph = directory.read_graph()
    fit = fit_sis(directory.read_result().metrics, graph, state="infected")
    unweighted = nx.to_numpy_array(graph, nodelist=sorted(graph), weight=None)
    return {
        "beta": fit.beta,
        "recoveries": fit.recoveries,
        "infected_steps": fit.infected_steps,
        "unweighted_radius": float(np.abs(np.linalg.eigvals(unweighted)).max()),
    }


def analyse(cells: pl.DataFrame, parameters: dict[str, Any]) -> Analysis:
    weights = sorted(cells[WEIGHT].unique())
    cells = cells.with_columns(infected_any=(pl.col("infected_share_peak") > 0).cast(pl.Float64))
    series = _onsets(cells, weights)
    graphs = [_graph(name, group, series, weights, parameters) for (name,), group in cells.group_by(GRAPH)]
    graphs.sort(key=lambda row: row["radius"])
    findings = [_crossing(graphs), _scaling(series, weights, parameters)]
    table = pl.DataFrame(
        [
            {
                "graph": row["graph"],
                "λ₁ (unweighted)": f"{row['radius']:.2f}",
                **{f"runs infected at w={w:g}": describe(row["infected"][w]) for w in weights},
                "observed onset m": row["onset_text"],
                "β (mean over runs)": describe(row["beta"]),
                "γ (recoveries ÷ infected node-steps)": "-" if row["gamma"] is None else f"{row['gamma']:.3f}",
                "predicted w* = γ/(β·λ₁)": describe(row["predicted"]),
                "agrees": {AGREES: "yes", DISAGREES: "no", None: "undecided"}[row["agreement"].side],
                "rests on (per weight)": rests_on(row["infected"][weights[0]].interval),
            }
            for row in graphs
        ]
    )
    chart = line_chart(
        "infected-runs.png",
        "Share of runs with some unattacked node infected, against coupling (pooled mean, 95% bootstrap interval)",
        {row["graph"]: (weights, [row["infected"][w].interval for w in weights]) for row in graphs},
        "edge weight (coupling)",
        "share of runs infected",
        log_x=True,
    )
    return Analysis(findings, [Table("Per graph (pooled mean [95% bootstrap interval])", table)], [chart])


def _onsets(cells: pl.DataFrame, weights: list[float]) -> pl.DataFrame:
    """One row per series (graph, base, seed): `onset`, the step (1 for the smallest weight) of the smallest weight
    at which infection appeared; null where it never did."""
    step = pl.col(WEIGHT).replace_strict(weights, range(1, len(weights) + 1), return_dtype=pl.Int64)
    return (
        cells.group_by(GRAPH, BASE, "seed")
        .agg(onset=step.filter(pl.col("infected_any") > 0).min())
        .sort(GRAPH, BASE, "seed")
    )


def _graph(
    name: str, group: pl.DataFrame, series: pl.DataFrame, weights: list[float], parameters: dict[str, Any]
) -> dict[str, Any]:
    radius = float(group["unweighted_radius"].mean())
    onsets = censored(series.filter(pl.col(GRAPH) == name)["onset"].to_list(), len(weights))
    # the onset m: the median step (the censored counting as later than every weight)
    onset = None if onsets.median is None else weights[math.ceil(onsets.median) - 1]
    predicted = _predicted(group, radius)
    tolerance = parameters["tolerance"]
    if onset is None:
        low, high = weights[-1] / tolerance, None
        onset_text = f"none: median beyond {weights[-1]:g}"
    else:
        previous = max((w for w in weights if w < onset), default=0.0)
        low, high = previous / tolerance, onset * tolerance
        onset_text = f"{onset:g}"
    totals = group.drop_nulls(list(FIT)).select(FIT).sum()
    return {
        "graph": name,
        "radius": radius,
        "infected": {w: pooled(group.filter(pl.col(WEIGHT) == w), "infected_any") for w in weights},
        "onset_text": f"{onset_text} ({onsets.reached} of {onsets.runs} series infected by w={weights[-1]:g})",
        "range": (low, high),
        "beta": pooled(group, "beta"),
        "gamma": totals["recoveries"][0] / totals["infected_steps"][0] if totals["infected_steps"][0] else None,
        "predicted": predicted,
        "agreement": _agreement(predicted, low, high),
    }


def _predicted(group: pl.DataFrame, radius: float) -> Estimate:
    """The predicted threshold w* = gamma / (beta·λ₁) of a graph: gamma its recoveries over its infected
    node-steps, beta the mean of its runs' fitted beta, with a hierarchical bootstrap (bases, then runs within a
    base) that draws a run's figures together. A resample with no infected node-step has no gamma and is left out;
    one with beta = 0 gives w* = ∞ (nothing transmits). No figure (mean None) without any infected node-step."""
    runs = group.drop_nulls(list(FIT)).sort(BASE)
    clusters = [
        np.column_stack([base.select(FIT).to_numpy(), np.ones(base.height)])  # β, recoveries, infected steps, 1
        for _, base in runs.group_by(BASE, maintain_order=True)
    ]

    def threshold(sums: np.ndarray) -> np.ndarray:
        with np.errstate(invalid="ignore", divide="ignore"):
            return (sums[..., 1] / sums[..., 2]) / (sums[..., 0] / sums[..., 3] * radius)

    count = runs.height
    if not count or not runs["infected_steps"].sum():
        return Estimate(Interval(None, None, None, count, len(clusters)))
    mean = float(threshold(np.vstack(clusters).sum(axis=0)))
    if count < 2:
        return Estimate(Interval(mean, None, None, count, len(clusters)))
    draw = np.random.default_rng(0)
    chosen = draw.integers(0, len(clusters), size=(RESAMPLES, len(clusters)))
    sums = np.zeros((RESAMPLES, 4))
    for slot in range(len(clusters)):
        for index, cluster in enumerate(clusters):
            drawn = chosen[:, slot] == index
            picks = draw.integers(0, len(cluster), size=(drawn.sum(), len(cluster)))
            sums[drawn] += cluster[picks].sum(axis=1)
    draws = threshold(sums)
    draws = draws[~np.isnan(draws)]
    # the interval's ends are drawn values (no interpolation, which an infinite w* would turn into nan)
    low, high = np.quantile(draws, [0.025, 0.975], method="inverted_cdf")
    return Estimate(Interval(mean, float(low), float(high), count, len(clusters)), draws)


def _agreement(predicted: Estimate, low: float, high: float | None) -> Effect:
    """Whether w*'s interval lies inside (low, high] (AGREES, p: twice the larger one-sided p-value) or wholly
    outside it (DISAGREES, p: twice the one-sided p-value of that side); side None when neither. `high` None: no
    upper end."""
    if predicted.draws is None:
        return Effect(None, None)
    above_low, below_high = 2 * predicted.p_above(low), 2 * predicted.p_below(high) if high is not None else 0.0
    if max(above_low, below_high) < 0.05:
        return Effect(AGREES, max(above_low, below_high))
    outside = [2 * predicted.p_below(low)] + ([2 * predicted.p_above(high)] if high is not None else [])
    if min(outside) < 0.05:
        return Effect(DISAGREES, min(outside))
    return Effect(None, None)


def _crossing(graphs: list[dict[str, Any]]) -> Finding:
    verdict, p_value = across([row["agreement"] for row in graphs], AGREES)
    reason = "; ".join(
        f"{row['graph']}: onset {row['onset_text']}, predicted w* {describe(row['predicted'])}, range "
        f"({row['range'][0]:g}, {'∞)' if row['range'][1] is None else format(row['range'][1], 'g') + ']'}: "
        + {AGREES: "agrees", DISAGREES: "disagrees", None: "undecided"}[row["agreement"].side]
        for row in graphs
    )
    claim = "Infection starts to spread at the coupling where the fitted R = β·w·λ₁/γ crosses 1."
    rule = (
        "Per graph, w*'s interval inside (previous weight ÷ 2, 2 × onset] agrees, wholly outside disagrees; both "
        "graphs agree holds, both disagree does not hold."
    )
    figures = {f"{row['graph']}: predicted w*": row["predicted"].interval for row in graphs}
    return Finding("spread starts where R crosses 1", claim, rule, verdict, reason, figures, p_value)


def _scaling(series: pl.DataFrame, weights: list[float], parameters: dict[str, Any]) -> Finding:
    later = len(weights) + 1  # a censored onset: after every weight
    pairs = (
        series.with_columns(pl.col("onset").fill_null(later))
        .pivot(on=GRAPH, index=[BASE, "seed"], values="onset")
        .rename({parameters["denser"]: "denser", parameters["sparser"]: "sparser"})
    )
    unknown = (pl.col("denser") == pl.col("sparser")) & pl.col("denser").is_in([1, later])
    pairs = pairs.with_columns(
        earlier=pl.when(unknown).then(None).otherwise((pl.col("sparser") - pl.col("denser")).sign().cast(pl.Float64))
    )
    order = pooled(pairs, "earlier")
    found = effect(order, parameters["order_margin"])
    verdict, p_value = across([found], "above")
    side = {"above": "earlier", "below": "later", "within": "the same", None: "undecided"}[found.side]
    reason = (
        f"{parameters['denser']} − {parameters['sparser']} onset order (+1: {parameters['denser']} earlier) "
        f"{describe(order)} over the series whose order is known: {side}"
    )
    claim = "The critical coupling scales with 1/λ₁: the denser graph starts spreading at a weaker coupling."
    rule = (
        "Mean onset order per base and seed (+1 denser earlier, −1 later, 0 equal): above 0 holds; below 0, or within "
        f"±{parameters['order_margin']:g} (TOST), does not hold."
    )
    figures = {f"onset order, {parameters['denser']} earlier than {parameters['sparser']}": order.interval}
    return Finding("critical coupling ∝ 1/λ₁", claim, rule, verdict, reason, figures, p_value)
