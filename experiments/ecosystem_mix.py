"""The verdict rule of `ecosystem_mix.toml` (its `rule` says it in words)."""

from __future__ import annotations

from typing import Any

import polars as pl

from ecosystem.analysis import Interval, mean_interval
from ecosystem.results import RunDirectory
from ecosystem.verdicts import Analysis, Finding, Table, above, bar_chart, describe, everywhere

ROBUST = "defense.0.nodes"  # the anchored nodes of a cell; none in the control
UNATTACKED = range(1, 10)  # node 0 is attacked (ecosystem_mix.toml)
SETS = {"R": "robust nodes", "U": "other unattacked nodes", "W": "all unattacked nodes"}


def run_figures(directory: RunDirectory) -> dict[str, float | None]:
    """`loss_K` for each unattacked node K: its cycle-0 refusal minus its mean refusal over the later cycles."""
    metrics = directory.read_result().metrics.filter(~pl.col("attacked"))
    start = metrics.filter(pl.col("cycle") == 0).select("node", before="refusal_rate")
    later = metrics.filter(pl.col("cycle") > 0).group_by("node").agg(after=pl.col("refusal_rate").mean())
    losses = start.join(later, "node").sort("node")
    return {f"loss_{node}": before - after for node, before, after in losses.iter_rows()}


def analyse(cells: pl.DataFrame, parameters: dict[str, Any]) -> Analysis:
    margin = parameters["margin"]
    cells = cells.with_columns(robust_count=pl.col(ROBUST).list.len())
    rows, grows = [], []
    for (graph,), part in sorted(cells.group_by("sweep"), key=lambda item: item[0]):
        control = part.filter(pl.col("robust_count") == 0)
        spread = mean_interval(control.select(_mean_loss(UNATTACKED))[:, 0].to_list())
        valid = spread.mean is not None and spread.mean >= parameters["spread"]
        per_seed, effects = {}, {}
        for count in sorted(part.filter(pl.col("robust_count") > 0)["robust_count"].unique()):
            treated = part.filter(pl.col("robust_count") == count)
            robust = treated[ROBUST][0].to_list()
            others = [node for node in UNATTACKED if node not in robust]
            per_seed[count] = {
                name: _effect(control, treated, nodes)
                for name, nodes in (("R", robust), ("U", others), ("W", list(UNATTACKED)))
            }
            effects[count] = {name: mean_interval(values.to_list()) for name, values in per_seed[count].items()}
            rows.append({"graph": graph, "robust": robust, "valid": valid, "spread": spread, **effects[count]})
        if valid:
            few, many = sorted(per_seed)
            both_resisted = all(above(effects[n]["R"], 0) for n in (few, many))
            grows.append(
                {
                    "graph": graph,
                    "W": mean_interval((per_seed[many]["W"] - per_seed[few]["W"]).to_list()),
                    "U": mean_interval((per_seed[many]["U"] - per_seed[few]["U"]).to_list()) if both_resisted else None,
                }
            )
    valid_rows = [row for row in rows if row["valid"]]
    resisted = [row for row in valid_rows if above(row["R"], 0)]
    herd_growth = [row for row in grows if row["U"] is not None]

    def cell(row: dict) -> str:
        return f"{row['graph']}, {len(row['robust'])} robust"

    def verdict(values: list[Interval]) -> str:
        return everywhere(values, margin) if values else "inconclusive"

    findings = [
        Finding(
            "robust nodes resist",
            "Anchored nodes lose less refusal than the same nodes unanchored (the precondition of herd protection).",
            f"Loss control − anchored on the robust nodes, paired by seed: above 0 in every valid cell → holds; "
            f"within ±{margin} in all → does not hold.",
            verdict([row["R"] for row in valid_rows]),
            "; ".join(f"{cell(row)}: {describe(row['R'])}" for row in valid_rows) or "no valid graph",
            {f"robust nodes, {cell(row)}": row["R"] for row in valid_rows},
        ),
        Finding(
            "herd protection",
            "The unattacked nodes that are not robust lose less refusal when other nodes are robust.",
            "Loss control − anchored on the other unattacked nodes, in the cells where the robust nodes resisted: "
            "above 0 in every such cell → holds.",
            verdict([row["U"] for row in resisted]),
            "; ".join(f"{cell(row)}: {describe(row['U'])}" for row in resisted) or "no cell qualifies",
            {f"other nodes, {cell(row)}": row["U"] for row in resisted},
        ),
        Finding(
            "a larger robust share, less spread",
            "With 6 robust nodes of 9 the whole graph loses less refusal than with 3.",
            "Effect on all unattacked nodes at 6 − at 3 robust nodes, paired by seed: above 0 in every valid graph → "
            "holds.",
            verdict([row["W"] for row in grows]),
            "; ".join(f"{row['graph']}: {describe(row['W'])}" for row in grows) or "no valid graph",
            {f"whole graph, 6 − 3 robust, {row['graph']}": row["W"] for row in grows},
        ),
        Finding(
            "herd protection grows with the share",
            "The other nodes are protected more with 6 robust nodes than with 3.",
            "Effect on the other unattacked nodes at 6 − at 3 robust nodes, paired by seed, where the robust nodes "
            "resisted at both shares: above 0 in every such graph → holds.",
            verdict([row["U"] for row in herd_growth]),
            "; ".join(f"{row['graph']}: {describe(row['U'])}" for row in herd_growth) or "no graph qualifies",
            {f"other nodes, 6 − 3 robust, {row['graph']}": row["U"] for row in herd_growth},
        ),
    ]
    table = Table(
        "Per graph and robust share: control − anchored loss of refusal, paired by seed (mean [95% interval]); "
        "spread is the control's loss over all unattacked nodes",
        pl.DataFrame(
            [
                {
                    "graph": row["graph"],
                    "anchored": ", ".join(map(str, row["robust"])),
                    "spread (control)": describe(row["spread"]),
                    "valid": row["valid"],
                    **{label: describe(row[name]) for name, label in SETS.items()},
                }
                for row in rows
            ]
        ),
    )
    chart = bar_chart(
        "ecosystem_mix.png",
        "Refusal loss prevented by anchoring a share of nodes (control − anchored), per node set (95% interval)",
        [(f"{cell(row)}\n{SETS[name]}", row[name]) for row in rows for name in SETS],
        "loss prevented",
    )
    return Analysis(findings, [table], [chart])


def _mean_loss(nodes: Any) -> pl.Expr:
    return pl.mean_horizontal([f"loss_{node}" for node in nodes])


def _effect(control: pl.DataFrame, treated: pl.DataFrame, nodes: list[int]) -> pl.Series:
    """Per seed (in seed order), the control's mean loss over `nodes` minus the treated run's."""
    joined = control.select("seed", a=_mean_loss(nodes)).join(treated.select("seed", b=_mean_loss(nodes)), "seed")
    return joined.sort("seed").select(pl.col("a") - pl.col("b"))[:, 0]
