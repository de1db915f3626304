"""The verdict rule of `systemic.toml` (v2; its `rule` says it in words)."""

from __future__ import annotations

from typing import Any

import polars as pl

from ecosystem.analysis import censored
from ecosystem.verdicts import (
    Analysis,
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

GRAPHS = {"barabasi_albert": "scale-free (hub attacked)", "star": "star (hub attacked)"}


def analyse(cells: pl.DataFrame, parameters: dict[str, Any]) -> Analysis:
    parameters = parameters | {"horizon": int(cells["cycles"].max())}  # the censoring time: the runs' last cycle
    cells = cells.with_columns(
        graph=pl.col("topology.name").replace(GRAPHS),
        systemic=pl.col("time_to_systemic_infection").fill_null(parameters["horizon"] + 1) <= parameters["systemic_by"],
    ).with_columns(pl.col("systemic").cast(pl.Float64))
    parts = {part: cells.filter(pl.col("sweep") == part) for part in ("ten", "fifty")}
    findings = [_systemic(parts[part], parameters, nodes) for part, nodes in (("ten", 10), ("fifty", 50))]
    findings.append(_dilution(parts["ten"], parameters))
    rows = [
        _row(group, graph, parameters) for (graph, _), group in cells.group_by("graph", "sweep", maintain_order=True)
    ]
    chart = bar_chart(
        "area.png",
        "Infected-share area per graph (pooled mean over bases and seeds, 95% bootstrap interval)",
        [(f"{row['graph']}\n{row['nodes']} nodes", row["area"]) for row in rows],
        f"infected share summed over cycles 1..{parameters['horizon']}",
    )
    table = pl.DataFrame(
        [
            {
                "graph": row["graph"],
                "nodes": row["nodes"],
                f"runs systemic by cycle {parameters['systemic_by']}": describe(row["systemic"]),
                "time to systemic infection": describe(row["time"]),
                "peak infected share": describe(row["peak"]),
                "infected-share area": describe(row["area"]),
                "final infected share": describe(row["final"]),
                "twin's eroded share (final)": describe(row["eroded"]),
                "rests on": rests_on(row["area"]),
            }
            for row in rows
        ]
    )
    return Analysis(findings, [Table("Per graph (pooled mean [95% bootstrap interval])", table)], [chart])


def _row(group: pl.DataFrame, graph: str, parameters: dict[str, Any]) -> dict[str, Any]:
    return {
        "graph": graph,
        "nodes": int(group["nodes"][0]),
        "systemic": pooled(group, "systemic").interval,
        "time": censored(group["time_to_systemic_infection"].to_list(), parameters["horizon"]),
        "peak": pooled(group, "infected_share_peak").interval,
        "area": pooled(group, "infected_share_area").interval,
        "final": pooled(group, "infected_share_final").interval,
        "eroded": pooled(group, "eroded_share_final").interval,
    }


def _systemic(cells: pl.DataFrame, parameters: dict[str, Any], nodes: int) -> Finding:
    share, by = parameters["systemic_share"], parameters["systemic_by"]
    graphs = [(graph, group) for (graph,), group in cells.group_by("graph", maintain_order=True)]
    reached = {graph: effect(pooled(group, "systemic"), 0.0, share) for graph, group in graphs}
    peaks = {graph: effect(pooled(group, "infected_share_peak"), 0.0, share) for graph, group in graphs}
    shown = [found.p for found in reached.values() if found.side == "above"]
    if len(shown) == len(graphs):
        verdict, p_value = "holds", max(shown)
    elif shown:
        verdict, p_value = "holds under conditions", min(1.0, min(shown) * len(graphs))
    elif all(found.side == "below" for found in peaks.values()):
        verdict, p_value = "does not hold", max(found.p for found in peaks.values())
    else:
        verdict, p_value = "inconclusive", None
    systemic = [graph for graph, found in reached.items() if found.side == "above"]
    reason = f"graphs where most runs went systemic by cycle {by}: {', '.join(systemic) or 'none'}; " + "; ".join(
        f"{graph}: peak infected share {describe(pooled(group, 'infected_share_peak'))}" for graph, group in graphs
    )
    figures = {
        f"{graph}: share of runs systemic by cycle {by}": pooled(group, "systemic").interval for graph, group in graphs
    } | {
        f"{graph}: time to systemic infection": censored(
            group["time_to_systemic_infection"].to_list(), parameters["horizon"]
        )
        for graph, group in graphs
    }
    claim = (
        "Infection from one attacked node becomes systemic (≥ half the unattacked nodes infected) within 3–5 "
        f"cycles, {nodes} nodes."
    )
    rule = (
        f"A graph goes systemic when the share of its runs systemic by cycle {by} lies above 0.5; holds if every graph "
        "does, under conditions if some (those graphs); does not hold if every graph's peak infected share lies "
        "below 0.5."
    )
    return Finding(f"systemic within 3–5 cycles, {nodes} nodes", claim, rule, verdict, reason, figures, p_value)


def _dilution(cells: pl.DataFrame, parameters: dict[str, Any]) -> Finding:
    versus = gap(
        cells,
        "infected_share_area",
        pl.col("topology.name") == "complete",
        pl.col("topology.name") == parameters["reference"],
    )
    found = effect(versus, parameters["area_margin"])
    verdict, p_value = across([found], "below")
    effect_text = {"below": "dilutes", "above": "amplifies", "within": "no difference", None: "undecided"}[found.side]
    reason = f"complete − ring infected-share area {describe(versus)}: {effect_text}"
    claim = "A dense (complete) graph dilutes infection rather than amplifying it, compared with a ring."
    rule = (
        f"Paired complete − ring infected-share area: below 0 holds; above 0, or within ±{parameters['area_margin']} "
        "(TOST), does not hold."
    )
    figures = {"complete − ring infected-share area": versus.interval}
    return Finding("complete graph dilutes", claim, rule, verdict, reason, figures, p_value)
