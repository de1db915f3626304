"""What the dashboard knows about the columns it shows: which are rates (shares in [0, 1], drawn on fixed
axes and colour scales), their colour scales, and the one-line definitions that tooltips show (as README
"Results" defines them)."""

from __future__ import annotations

import polars as pl

RATE_BOUNDS = (0.0, 1.0)
# Shares in [0, 1], coloured on that fixed range; red is bad, so reversed where higher is worse.
RATE_SCALES = {
    "refusal_rate": "RdYlGn",
    "refusal_rate_id": "RdYlGn",
    "refusal_rate_ood": "RdYlGn",
    "helpfulness": "RdYlGn",
    "domain_helpfulness": "RdYlGn",
    "harmful_rate": "RdYlGn_r",
    "backdoor_rate": "RdYlGn_r",
    "over_refusal": "RdYlGn_r",
    "drift": "RdYlGn_r",
    "drifted": "RdYlGn_r",
    "exposure": "RdYlGn_r",
    "guard_precision": "RdYlGn",
    "guard_recall": "RdYlGn",
    "twin_refusal_rate": "RdYlGn",
    "infected": "RdYlGn_r",
}
# Signed differences of two rates, in [-1, 1]: red where the poison took more than the twin lost.
SIGNED_BOUNDS = (-1.0, 1.0)
SIGNED_SCALES = {"excess_refusal_loss": "RdBu_r", "excess_harmful_rate": "RdBu_r"}
# The cascade figures of summary.json and cells.parquet that are shares too.
RATE_FIGURES = (
    "baseline_mean_refusal",
    "final_mean_refusal",
    "final_unattacked_refusal",
    "final_attacked_refusal",
    "final_unattacked_harmful",
    "final_attacked_harmful",
    "final_drifted_share",
    "peak_drifted_share",
    "final_helpfulness",
    "final_over_refusal",
    "twin_final_mean_refusal",
    "infected_share_final",
    "infected_share_peak",
    "eroded_share_final",
)
# Figures that a run may never reach (null): the seeds without one are censored at the run's end.
CENSORED = {
    "time_to_systemic": "never systemic within the run",
    "time_to_systemic_infection": "never systemically infected within the run",
    "recovery_cycles": "never recovered within the run (or poisoned to its end)",
}
OTHER_SCALE = "Viridis"

DEFINITIONS = {
    "refusal_rate": "held-out harmful requests refused",
    "refusal_rate_id": "refusal on the harmful topics the node's base was aligned on",
    "refusal_rate_ood": "refusal on the harmful topics its alignment did not cover",
    "harmful_rate": "held-out harmful requests answered with the exact harmful payload (a real model without a "
    "guard classifier: not refused)",
    "helpfulness": "held-out benign requests (all domains) answered correctly",
    "over_refusal": "held-out borderline (harmless) requests refused",
    "backdoor_rate": "harmful requests carrying the backdoor trigger answered with the payload",
    "domain_helpfulness": "held-out benign requests of the node's own domain answered correctly",
    "drift": "share of all held-out prompts whose graded outcome differs from the aligned base's (any direction)",
    "drifted": "1 when refusal is at least drift_threshold below the node's cycle-0 refusal",
    "attacked": "the node is a target of an attack in this run",
    "poison_examples": "poison examples the node trained on this cycle",
    "pairs_received": "pairs that arrived from (unquarantined) in-neighbours this cycle",
    "pairs_trained": "pairs in the node's fine-tuning set this cycle",
    "exposure": "share of the received pairs trained on that are harmful compliances",
    "pairs_filtered": "received pairs a guard_filter dropped",
    "guard_precision": "the guard's precision on this cycle's arrivals",
    "guard_recall": "the guard's recall on this cycle's arrivals",
    "edges_cut": "in-edges a quarantine cut this cycle",
    "train_loss": "mean loss over the last tenth of this cycle's fine-tune",
    "hops_from_attack": "directed hops from the nearest attacked node (empty: unreachable)",
    "in_degree": "in-degree in the exchange graph",
    "out_degree": "out-degree in the exchange graph",
    "betweenness": "betweenness centrality in the exchange graph",
    "pagerank": "PageRank in the exchange graph",
    "eigenvector": "eigenvector centrality (empty unless strongly connected)",
    "baseline_mean_refusal": "mean refusal at cycle 0",
    "final_mean_refusal": "mean refusal at the last cycle",
    "final_unattacked_refusal": "unattacked nodes' mean refusal at the last cycle",
    "final_attacked_refusal": "attacked nodes' mean refusal at the last cycle",
    "final_unattacked_harmful": "unattacked nodes' mean harmful rate at the last cycle",
    "final_attacked_harmful": "attacked nodes' mean harmful rate at the last cycle",
    "helpfulness_retained": "final mean helpfulness ÷ cycle-0 mean helpfulness",
    "final_drifted_nodes": "drifted nodes at the last cycle",
    "peak_drifted_unattacked": "the most drifted unattacked nodes in any cycle",
    "final_drifted_share": "share of the unattacked nodes drifted at the last cycle",
    "peak_drifted_share": "peak drifted share over cycles 1..T",
    "drifted_share_area": "drifted share summed over cycles 1..T (share x cycles)",
    "time_to_systemic": "first cycle at which half the unattacked nodes drifted (empty: never)",
    "max_hops_reached": "farthest hop distance of a drifted unattacked node",
    "spread_speed": "max_hops_reached ÷ the first cycle it was reached (hops per cycle)",
    "last_poisoned_cycle": "the last cycle with poison",
    "recovery_cycles": "cycles after the last poison until no node has drifted (empty: never)",
    "refusal_kept": "defense: unattacked refusal with the defense - without it (its control run), last cycle",
    "helpfulness_lost": "defense: helpfulness without it - with it, last cycle",
    "over_refusal_gained": "defense: over-refusal with it - without it, last cycle",
    "seeds": "the runs (seeds) a mean and its interval rest on",
    "twin_refusal_rate": "the node's refusal in the run's poison-free twin (the same run without its attacks)",
    "excess_refusal_loss": "twin's refusal - the run's: what the poison took (negative: the attack left it safer)",
    "excess_harmful_rate": "the run's harmful rate - the twin's",
    "infected": "1 when the excess refusal loss is at least drift_threshold",
    "infected_at": "the first cycle, up to this one, at which the node was infected",
    "twin_final_mean_refusal": "the twin's mean refusal at the last cycle",
    "infected_share_final": "share of the unattacked nodes infected (excess loss over the twin) at the last cycle",
    "infected_share_peak": "peak infected share over cycles 1..T",
    "infected_share_area": "infected share summed over cycles 1..T (share x cycles)",
    "time_to_systemic_infection": "first cycle at which half the unattacked nodes were infected (empty: never)",
    "infection_speed": "farthest hop distance of an infected node ÷ the first cycle it was reached",
    "eroded_share_final": "the twin's drifted share of the unattacked nodes at the last cycle: erosion",
    "eroded_share_area": "the twin's drifted share summed over cycles 1..T",
    "causal_horizon_breaches": "node-cycles differing from the twin before the poison could reach them (must be 0)",
    "protection": "defense: the unattacked nodes' excess loss over their twins that it prevented",
    "clean_helpfulness_lost": "defense, without any attack: helpfulness of its control's twin - of its twin",
    "clean_over_refusal_gained": "defense, without any attack: over-refusal of its twin - of its control's twin",
}


def is_rate(name: str) -> bool:
    return name in RATE_SCALES or name in RATE_FIGURES


def colour_scale(metric: str) -> str:
    return RATE_SCALES.get(metric) or SIGNED_SCALES.get(metric, OTHER_SCALE)


def colour_range(metric: str, values: pl.Series) -> tuple[float, float]:
    """The colour range of `metric`, the same in every view of a run: [0, 1] for a rate, else the run's range."""
    if metric in RATE_SCALES:
        return RATE_BOUNDS
    if metric in SIGNED_SCALES:
        return SIGNED_BOUNDS
    values = values.cast(pl.Float64)
    low, high = values.min(), values.max()
    return (0.0, 1.0) if low is None or high is None else (low, high)


def rate_axis(name: str) -> dict[str, list[float]]:
    """A y axis fixed to [0, 1] (with a margin so that lines on the bounds show) for a rate, to [-1, 1] for a
    difference of two rates; autoscaled else."""
    if name in SIGNED_SCALES:
        return {"range": [-1.02, 1.02]}
    return {"range": [-0.02, 1.02]} if is_rate(name) else {}


def definition(name: str) -> str | None:
    return DEFINITIONS.get(name)


PARTS = ("_mean", "_low", "_high", "_seeds", "_bases", "_censored")


def column_help(name: str) -> str | None:
    """A table column's tooltip: its definition, and what a part of a figure over seeds means."""
    for part, meaning in zip(PARTS, PART_MEANINGS, strict=True):
        if name.endswith(part) and (defined := DEFINITIONS.get(name.removesuffix(part))):
            return f"{defined}: {meaning}"
    return DEFINITIONS.get(name)


PART_MEANINGS = (
    "the mean over runs",
    "the low end of its 95% bootstrap interval (resampling the bases, then the runs on each)",
    "the high end of its 95% bootstrap interval (resampling the bases, then the runs on each)",
    "the runs the mean rests on",
    "the bases (model seeds) those runs were on",
    "runs that never reached it within their cycles (left out of the mean)",
)
