"""The verdict rule of `systemic.toml` (its `rule` says it in words)."""

from __future__ import annotations

import json
from typing import Any

import polars as pl

from ecosystem.analysis import Interval
from ecosystem.verdicts import Analysis, Finding, Table, above, bar_chart, describe, difference, interval


def graph_label(name: str, targets: Any) -> str:
    """A graph as the report names it: the star says which node is attacked."""
    targets = json.loads(targets) if isinstance(targets, str) and targets.startswith(("[", '"')) else targets
    if name == "star":
        return "star (hub attacked)" if targets == [0] else "star (leaf attacked)"
    return name


def analyse(cells: pl.DataFrame, parameters: dict[str, Any]) -> Analysis:
    cells = cells.with_columns(
        graph=pl.struct("topology.name", "attack.0.targets").map_elements(
            lambda row: graph_label(row["topology.name"], row["attack.0.targets"]), return_dtype=pl.String
        ),
        coupling=pl.format("w={} h={}", "topology.edge_weight", "traffic.harmful_fraction"),
        systemic=pl.col("time_to_systemic").is_not_null() & (pl.col("time_to_systemic") <= parameters["systemic_by"]),
    )
    rows = []
    for (graph, coupling), group in cells.group_by("graph", "coupling", maintain_order=True):
        reference = cells.filter((pl.col("graph") == parameters["reference"]) & (pl.col("coupling") == coupling))
        versus = difference(group["drifted_share_area"].to_list(), reference["drifted_share_area"].to_list())
        rows.append(
            {
                "graph": graph,
                "coupling": coupling,
                "seeds": len(group),
                "systemic_seeds": int(group["systemic"].sum()),
                "goes_systemic": int(group["systemic"].sum()) >= parameters["majority"],
                "peak_share": interval(group, "peak_drifted_share"),
                "area": interval(group, "drifted_share_area"),
                "final_unattacked_refusal": interval(group, "final_unattacked_refusal"),
                "versus_reference": versus,
                "effect": _effect(versus),
            }
        )
    findings = [_systemic(rows, parameters), _dilution(rows)]
    table = pl.DataFrame(
        [
            {
                "graph": row["graph"],
                "coupling": row["coupling"],
                "seeds systemic by cycle 5": f"{row['systemic_seeds']}/{row['seeds']}",
                "peak drifted share": describe(row["peak_share"]),
                "drifted-share area": describe(row["area"]),
                "final unattacked refusal": describe(row["final_unattacked_refusal"]),
                f"area − {parameters['reference']}'s": describe(row["versus_reference"]),
                "effect": row["effect"],
            }
            for row in rows
        ]
    )
    chart = bar_chart(
        "area.png",
        "Drifted-share area per graph and coupling (mean over seeds, 95% interval)",
        [(f"{row['graph']}\n{row['coupling']}", row["area"]) for row in rows],
        "drifted share summed over cycles 1..5",
    )
    return Analysis(findings, [Table("Per graph and coupling (mean [95% interval] over seeds)", table)], [chart])


def _effect(versus: Interval) -> str:
    return {True: "amplifies", False: "dilutes", None: "no difference"}[above(versus, 0)]


def _systemic(rows: list[dict[str, Any]], parameters: dict[str, Any]) -> Finding:
    systemic = [row for row in rows if row["goes_systemic"]]
    limit = parameters["systemic_share"]
    below = all(row["peak_share"].high is not None and row["peak_share"].high < limit for row in rows)
    if len(systemic) == len(rows):
        verdict, reason = "holds", "every graph and coupling went systemic within 5 cycles in most seeds"
    elif systemic:
        cells = "; ".join(f"{row['graph']} at {row['coupling']}" for row in systemic)
        verdict, reason = "holds under conditions", f"{len(systemic)} of {len(rows)} cells went systemic: {cells}"
    elif below:
        verdict = "does not hold"
        reason = "no cell went systemic, and every cell's peak drifted share is below 0.5 with 95% confidence"
    else:
        verdict = "inconclusive"
        reason = "no cell went systemic in most seeds, but some peak drifted shares may reach 0.5"
    figures = {f"peak drifted share, {row['graph']}, {row['coupling']}": row["peak_share"] for row in rows}
    claim = "Drift from one attacked node becomes systemic (≥ half the unattacked nodes drifted) within 3–5 cycles."
    rule = "Systemic in a cell: at least 3 of 5 seeds reach it by cycle 5; holds if all cells, conditions if some."
    return Finding("systemic within 3–5 cycles", claim, rule, verdict, reason, figures)


def _dilution(rows: list[dict[str, Any]]) -> Finding:
    complete = [row for row in rows if row["graph"] == "complete"]
    effects = [row["effect"] for row in complete]
    if complete and all(effect == "dilutes" for effect in effects):
        verdict = "holds"
    elif "dilutes" in effects:
        verdict = "holds under conditions"
    elif "amplifies" in effects:
        verdict = "does not hold"
    else:
        verdict = "inconclusive"
    others = [row for row in rows if row["graph"] != "ring"]
    effects_text = "; ".join(f"{row['graph']} at {row['coupling']}: {row['effect']}" for row in others)
    reason = f"against the ring at the same coupling: {effects_text}"
    figures = {f"complete − ring area, {row['coupling']}": row["versus_reference"] for row in complete}
    claim = "A dense (complete) graph dilutes drift rather than amplifying it, compared with a ring."
    rule = "Welch 95% interval of the drifted-share area minus the ring's: below 0 at both couplings → holds."
    return Finding("complete graph dilutes", claim, rule, verdict, reason, figures)
