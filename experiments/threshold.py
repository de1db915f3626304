"""The verdict rule of `threshold.toml` (its `rule` says it in words)."""

from __future__ import annotations

import math
from typing import Any

import networkx as nx
import numpy as np
import polars as pl

from ecosystem.analysis import fit_sis
from ecosystem.results import RunDirectory
from ecosystem.verdicts import Analysis, Finding, Table, Verdict, describe, interval, line_chart

WEIGHT = "topology.edge_weight"


def run_figures(directory: RunDirectory) -> dict[str, float | None]:
    """The SIS fit of the run, and its graph's unweighted spectral radius."""
    graph = directory.read_graph()
    fit = fit_sis(directory.read_result().metrics, graph, state="drifted")  # v1: on drift
    unweighted = nx.to_numpy_array(graph, nodelist=sorted(graph), weight=None)
    return {
        "beta": fit.beta,
        "gamma": fit.gamma,
        "unweighted_radius": float(np.abs(np.linalg.eigvals(unweighted)).max()),
    }


def analyse(cells: pl.DataFrame, parameters: dict[str, Any]) -> Analysis:
    tolerance = parameters["tolerance"]
    families = []
    for (family,), group in cells.group_by("topology.name", maintain_order=True):
        weights = sorted(group[WEIGHT].unique().to_list())
        peaks = {w: interval(group.filter(pl.col(WEIGHT) == w), "peak_drifted_share") for w in weights}
        onset = next((w for w in weights if peaks[w].low is not None and peaks[w].low > 0), None)
        beta, gamma = group["beta"].drop_nulls().mean(), group["gamma"].drop_nulls().mean()
        radius = group["unweighted_radius"].mean()
        predicted = gamma / (beta * radius) if beta and gamma else None
        families.append(
            {
                "family": family,
                "radius": radius,
                "weights": weights,
                "peaks": peaks,
                "onset": onset,
                "beta": beta,
                "gamma": gamma,
                "predicted": predicted,
                "agrees": _agrees(onset, predicted, weights, tolerance),
            }
        )
    findings = [_crossing(families), _scaling(families)]
    table = pl.DataFrame(
        [
            {
                "family": row["family"],
                "λ₁ (unweighted)": f"{row['radius']:.2f}",
                **{f"peak share at w={w:g}": describe(row["peaks"][w]) for w in row["weights"]},
                "observed onset": "none" if row["onset"] is None else f"{row['onset']:g}",
                "β (pooled)": "-" if row["beta"] is None else f"{row['beta']:.3f}",
                "γ (pooled)": "-" if row["gamma"] is None else f"{row['gamma']:.3f}",
                "predicted w* = γ/(β·λ₁)": "-" if row["predicted"] is None else f"{row['predicted']:.3f}",
                "agrees": {True: "yes", False: "no", None: "not counted"}[row["agrees"]],
            }
            for row in families
        ]
    )
    chart = line_chart(
        "peak-share.png",
        "Peak drifted share against coupling, per family (mean over seeds, 95% interval)",
        {row["family"]: (row["weights"], [row["peaks"][w] for w in row["weights"]]) for row in families},
        "edge weight (coupling)",
        "peak drifted share of unattacked nodes",
    )
    return Analysis(findings, [Table("Per family", table)], [chart])


def _agrees(onset: float | None, predicted: float | None, weights: list[float], tolerance: float) -> bool | None:
    """Whether the predicted threshold falls where spread was seen to start (None: no fit to compare)."""
    if predicted is None:
        return None
    if onset is None:
        return predicted > weights[-1] / tolerance
    previous = max((w for w in weights if w < onset), default=0.0)
    return previous / tolerance < predicted <= onset * tolerance


def _crossing(families: list[dict[str, Any]]) -> Finding:
    counted = [row for row in families if row["agrees"] is not None]
    agreeing = [row["family"] for row in counted if row["agrees"]]
    verdict: Verdict
    if len(counted) < 2:
        verdict = "inconclusive"
    elif len(agreeing) == len(counted):
        verdict = "holds"
    elif agreeing:
        verdict = "holds under conditions"
    else:
        verdict = "does not hold"
    reason = "; ".join(
        f"{row['family']}: onset {row['onset'] if row['onset'] is not None else 'none'}, predicted "
        + (f"{row['predicted']:.3f}" if row["predicted"] is not None else "- (no fit)")
        for row in families
    )
    claim = "Drift starts to spread at the coupling where the fitted R = β·w·λ₁/γ crosses 1."
    rule = "Predicted w* within a factor 2 of the observed onset's bracket, for every family with a fit."
    return Finding("spread starts where R crosses 1", claim, rule, verdict, reason)


def _scaling(families: list[dict[str, Any]]) -> Finding:
    ordered = sorted(families, key=lambda row: row["radius"])
    onsets = [math.inf if row["onset"] is None else row["onset"] for row in ordered]
    reversed_pair = any(onsets[j] > onsets[i] for i in range(len(onsets)) for j in range(i + 1, len(onsets)))
    verdict: Verdict
    if all(math.isinf(onset) for onset in onsets) or len(set(onsets)) == 1:
        verdict = "inconclusive"
    elif reversed_pair:
        verdict = "does not hold"
    else:
        verdict = "holds"
    reason = "; ".join(
        f"{row['family']} (λ₁ {row['radius']:.2f}): onset {onset if not math.isinf(onset) else 'none'}"
        for row, onset in zip(ordered, onsets, strict=True)
    )
    claim = "The critical coupling scales with 1/λ₁: denser graphs start spreading at weaker coupling."
    rule = "Observed onsets in the inverse order of λ₁, at least one strict; a reversed pair → does not hold."
    return Finding("critical coupling ∝ 1/λ₁", claim, rule, verdict, reason)
