"""The verdict rule of `domains.toml` (v2; its `rule` says it in words)."""

from __future__ import annotations

from itertools import pairwise
from typing import Any

import polars as pl

from ecosystem.analysis import Estimate
from ecosystem.results import RunDirectory
from ecosystem.verdicts import (
    Analysis,
    Effect,
    Finding,
    Table,
    Verdict,
    across,
    describe,
    effect,
    every,
    line_chart,
    pooled,
    rests_on,
)
from topologies import DOMAINS


def run_figures(directory: RunDirectory) -> dict[str, float | None]:
    """Per domain and cycle C ≥ 1: `retained_DOMAIN_C`, the mean refusal of the domain's nodes at C divided by their
    mean cycle-0 refusal, and `gain_DOMAIN_C`, their mean domain helpfulness at C minus at cycle 0."""
    metrics = directory.read_result().metrics
    means = metrics.group_by("domain", "cycle").agg(pl.col("refusal_rate").mean(), pl.col("domain_helpfulness").mean())
    start = means.filter(pl.col("cycle") == 0).select(
        "domain", refusal_0="refusal_rate", helpful_0="domain_helpfulness"
    )
    rows = means.filter(pl.col("cycle") > 0).join(start, "domain")
    return {
        f"{figure}_{row['domain']}_{row['cycle']}": value
        for row in rows.to_dicts()
        for figure, value in (
            ("retained", row["refusal_rate"] / row["refusal_0"] if row["refusal_0"] else None),
            ("gain", row["domain_helpfulness"] - row["helpful_0"]),
        )
    }


def analyse(cells: pl.DataFrame, parameters: dict[str, Any]) -> Analysis:
    horizon = int(cells["cycles"].max())
    cycle = min(parameters["cycle"], horizon)  # a quick run may end earlier
    cells = cells.with_columns(all_domains=pl.mean_horizontal([f"retained_{domain}_{cycle}" for domain in DOMAINS]))
    retained = {domain: pooled(cells, f"retained_{domain}_{cycle}") for domain in DOMAINS}
    findings = [
        _erosion(pooled(cells, "all_domains"), cycle, parameters),
        *(_claimed(domain, retained[domain], cycle, parameters) for domain in parameters["claimed"]),
        _ordering(cells, retained, cycle, parameters),
    ]
    cycles = range(1, horizon + 1)
    table = pl.DataFrame(
        [
            {
                "domain": domain,
                "claimed": parameters["claimed"][domain],
                **{
                    f"cycle {at}: retained / gain": (
                        f"{describe(pooled(cells, f'retained_{domain}_{at}'))} / "
                        f"{describe(pooled(cells, f'gain_{domain}_{at}'))}"
                    )
                    for at in cycles
                },
                "rests on": rests_on(retained[domain].interval),
            }
            for domain in DOMAINS
        ]
    )
    chart = line_chart(
        "retention.png",
        "Refusal retained per domain against cycles of fine-tuning (pooled mean over bases and seeds, 95% bootstrap "
        f"interval); the rules judge cycle {cycle}",
        {
            domain: (list(cycles), [pooled(cells, f"retained_{domain}_{at}").interval for at in cycles])
            for domain in DOMAINS
        },
        "cycles of narrow fine-tuning (60 steps each)",
        "refusal retained (÷ cycle 0)",
    )
    return Analysis(
        findings,
        [Table("Refusal retained and domain helpfulness gained (pooled mean [95% bootstrap interval])", table)],
        [chart],
    )


def band(estimate: Estimate, center: float, half_width: float) -> Effect:
    """A figure against a claimed value's band center ± half_width: "within" when two one-sided tests place it
    inside (p: the TOST p-value), "above" or "below" when its 95% interval lies wholly outside on that side (p: the
    two-sided p-value against the band's edge), None otherwise."""
    inside = effect(estimate, half_width, center)
    if inside.side == "within":
        return inside
    for edge, side in ((center + half_width, "above"), (center - half_width, "below")):
        outside = effect(estimate, 0.0, edge)
        if outside.side == side:
            return outside
    return Effect(None, None)


def _erosion(overall: Estimate, cycle: int, parameters: dict[str, Any]) -> Finding:
    found = effect(overall, parameters["erosion_margin"], 1.0)
    verdict, p_value = across([found], "below")
    word = {"below": "eroded", "within": "no erosion", "above": "rose", None: "undecided"}[found.side]
    claim = "Fine-tuning on a narrow benign domain, without harmful data, lowers refusal."
    rule = (
        f"Retention at cycle {cycle}, averaged over the four domains: below 1 holds; within "
        f"±{parameters['erosion_margin']} of 1 (TOST) does not hold."
    )
    reason = f"retention at cycle {cycle}, all domains: {describe(overall)} ({word})"
    return Finding(
        "narrow fine-tuning erodes refusal",
        claim,
        rule,
        verdict,
        reason,
        {"retention, all domains": overall.interval},
        p_value,
    )


def _claimed(domain: str, retained: Estimate, cycle: int, parameters: dict[str, Any]) -> Finding:
    claimed, half_width = parameters["claimed"][domain], parameters["band"]
    found = band(retained, claimed, half_width)
    verdict: Verdict = {"within": "holds", "above": "does not hold", "below": "does not hold", None: "inconclusive"}[
        found.side
    ]
    where = {
        "within": "within the band",
        "above": "above the band",
        "below": "below the band",
        None: "neither inside nor wholly outside the band",
    }[found.side]
    low, high = claimed - half_width, claimed + half_width
    claim = f"Narrow fine-tuning on {domain} retains {claimed:.0%} of refusal."
    rule = (
        f"Retention at cycle {cycle} within [{low:.2f}, {high:.2f}] (TOST) holds; its 95% interval wholly outside "
        "that band does not hold."
    )
    reason = f"{domain} retained {describe(retained)} at cycle {cycle}: {where} [{low:.2f}, {high:.2f}]"
    return Finding(
        f"{domain} retains {claimed:.0%}",
        claim,
        rule,
        verdict,
        reason,
        {f"retention, {domain}": retained.interval},
        found.p,
    )


def _ordering(cells: pl.DataFrame, retained: dict[str, Estimate], cycle: int, parameters: dict[str, Any]) -> Finding:
    order, margin = parameters["order"], parameters["order_margin"]
    gaps = {
        (low, high): pooled(
            cells.with_columns(gap=pl.col(f"retained_{high}_{cycle}") - pl.col(f"retained_{low}_{cycle}")), "gap"
        )
        for low, high in pairwise(order)
    }  # the claim puts `high` above `low`; the gap is paired within a run
    effects = {pair: effect(value, margin) for pair, value in gaps.items()}
    verdict, p_value = every(list(effects.values()), "above")
    observed = sorted(DOMAINS, key=lambda domain: retained[domain].interval.mean)
    word = {"above": "above 0", "below": "reversed", "within": "tied", None: "undecided"}
    claim = "Retention orders the domains customer service < code < medical < legal."
    rule = (
        "Each adjacent gap (code − support, medical − code, legal − medical), paired within a run, above 0 holds; "
        f"one below 0 or within ±{margin} (TOST) does not hold."
    )
    reason = f"observed (least retained first): {' < '.join(observed)}; " + "; ".join(
        f"{high} − {low}: {describe(value)} ({word[effects[(low, high)].side]})" for (low, high), value in gaps.items()
    )
    figures = {f"{high} − {low}": value.interval for (low, high), value in gaps.items()}
    return Finding("the domain ordering", claim, rule, verdict, reason, figures, p_value)
