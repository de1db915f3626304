"""The verdict rule of `coupling.toml` (v2; its `rule` says it in words)."""

from __future__ import annotations

from typing import Any

import polars as pl

from ecosystem.analysis import Estimate
from ecosystem.verdicts import (
    Analysis,
    Effect,
    Finding,
    Table,
    across,
    bar_chart,
    describe,
    effect,
    gap,
    pooled,
    rests_on,
)

WEIGHT, SHARE, AREA = "topology.edge_weight", "traffic.harmful_fraction", "infected_share_area"
WEAK, STRONG = (0.5, 0.2), (1.0, 0.4)  # (edge weight, harmful share): v1 systemic's two couplings
SIDES = {"below": "below 0", "above": "above 0", "within": "within the margin", None: "undecided"}
FIGURES = {
    "infected_share_area": "infected-share area",
    "infected_share_peak": "peak infected share",
    "infected_share_final": "final infected share",
    "eroded_share_final": "twin's eroded share (final)",
    "twin_final_mean_refusal": "twin's final mean refusal",
}


def analyse(cells: pl.DataFrame, parameters: dict[str, Any]) -> Analysis:
    margin = parameters["area_margin"]
    weights, shares = sorted(cells[WEIGHT].unique()), sorted(cells[SHARE].unique())
    stronger = _versus(cells, STRONG, WEAK)
    share_effects = {f"edge weight {w:g}": _versus(cells, (w, shares[-1]), (w, shares[0])) for w in weights}
    weight_effects = {f"harmful share {h:g}": _versus(cells, (weights[-1], h), (weights[0], h)) for h in shares}
    findings = [
        _finding(
            "stronger exchange protects",
            "Edge weight 1.0 with 40% harmful traffic infects less than 0.5 with 20% (v1 systemic's two couplings).",
            f"Area at {STRONG} minus at {WEAK}, paired",
            {f"{STRONG} − {WEAK}": stronger},
            margin,
        ),
        _finding(
            "more harmful traffic protects",
            "40% harmful traffic infects less than 20%, at either edge weight.",
            "Area at harmful share 0.4 minus at 0.2, paired, at each edge weight",
            share_effects,
            margin,
        ),
        _finding(
            "a larger edge weight protects",
            "Edge weight 1.0 infects less than 0.5, at either harmful share.",
            "Area at edge weight 1.0 minus at 0.5, paired, at each harmful share",
            weight_effects,
            margin,
        ),
    ]
    keys = [(w, h) for w in weights for h in shares]
    table = pl.DataFrame(
        [
            {
                "edge weight": w,
                "harmful share": h,
                **{label: describe(pooled(_cell(cells, (w, h)), figure)) for figure, label in FIGURES.items()},
                "rests on": rests_on(pooled(_cell(cells, (w, h)), AREA).interval),
            }
            for w, h in keys
        ]
    )
    chart = bar_chart(
        "area.png",
        "Infected-share area per cell (pooled mean over bases and seeds, 95% bootstrap interval)",
        [(f"w={w:g} h={h:g}", pooled(_cell(cells, (w, h)), AREA).interval) for w, h in keys],
        "infected share summed over cycles 1..10",
    )
    return Analysis(findings, [Table("Per cell (pooled mean [95% bootstrap interval])", table)], [chart])


def _cell(cells: pl.DataFrame, key: tuple[float, float]) -> pl.DataFrame:
    return cells.filter((pl.col(WEIGHT) == key[0]) & (pl.col(SHARE) == key[1]))


def _versus(cells: pl.DataFrame, treated: tuple[float, float], control: tuple[float, float]) -> Estimate:
    """The infected-share area at `treated` (edge weight, harmful share) minus at `control`, paired."""
    at = {key: (pl.col(WEIGHT) == key[0]) & (pl.col(SHARE) == key[1]) for key in (treated, control)}
    return gap(cells, AREA, at[treated], at[control])


def _finding(name: str, claim: str, compared: str, differences: dict[str, Estimate], margin: float) -> Finding:
    """The claim that each difference lies below 0 (protects), judged across them."""
    effects: dict[str, Effect] = {label: effect(value, margin) for label, value in differences.items()}
    verdict, p_value = across(list(effects.values()), "below")
    reason = "; ".join(
        f"{label}: {describe(differences[label])} ({SIDES[found.side]})" for label, found in effects.items()
    )
    rule = f"{compared}: below 0 everywhere holds; above 0 or within ±{margin:g} (TOST) everywhere does not hold."
    figures = {f"area difference, {label}": value.interval for label, value in differences.items()}
    return Finding(name, claim, rule, verdict, reason, figures, p_value)
