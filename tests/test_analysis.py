"""Cascade analytics: per-run figures on hand-made metrics with known answers, means over seeds against
scipy, and the SIS fit against simulated cascades with known parameters.

The fit is validated three ways. EoN's `basic_discrete_SIS` is a faithful discrete-time SIS simulator,
but only with recovery after one step (gamma = 1) and unweighted edges: it checks beta and gamma = 1. A
plain numpy simulator below, written as per-edge coin flips rather than the fit's product formula,
covers gamma < 1, edge weights and attacked sources on a ring, an Erdős-Rényi and a scale-free graph.
EoN's continuous-time `fast_SIS`, sampled at integer times with per-step probabilities
p = 1 - exp(-rate), checks the threshold: its outbreak dies out below tau/gamma = 1/λ₁ and persists above,
and R (true and fitted) falls on the same side of 1. Sampling a continuous-time process misses events
within a step, a bias of the order of the per-step probabilities (5% here), hence rates this small.
"""

import subprocess
import sys

import EoN
import networkx as nx
import numpy as np
import polars as pl
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from ecosystem.analysis import (
    SYSTEMIC_SHARE,
    Censored,
    Interval,
    bootstrap,
    causal_horizon_breaches,
    censored,
    cluster_bootstrap,
    drifted,
    fit_sis,
    holm,
    hop_profile,
    infection_summary,
    over_seeds,
    reproduction_by_generation,
    spectral_radius,
    summarize,
    transmission_tree,
    with_bases,
    with_twin,
)

TOLERANCE = 0.15  # relative, on a fitted beta or gamma: ~5 standard errors with ~1000 events, room for sampling bias

HOPS = [0, 1, 2, 2, None]  # node 0 is attacked; node 4 cannot be reached from it
REFUSAL = [  # REFUSAL[cycle][node]; drifted: at least 0.2 below cycle 0
    [1.0, 1.0, 1.0, 1.0, 1.0],
    [0.2, 1.0, 1.0, 1.0, 1.0],  # unattacked drifted: none
    [0.1, 0.7, 1.0, 1.0, 1.0],  # node 1 (1 hop): a quarter
    [0.0, 0.6, 0.7, 1.0, 1.0],  # nodes 1, 2 (2 hops): half, systemic
    [0.0, 0.9, 0.7, 0.75, 1.0],  # nodes 2, 3: half; node 1 is back
]
RECOVERED = [0.9, 1.0, 0.9, 1.0, 1.0]  # every node within 0.2 of its baseline


def metrics_frame(
    refusal: list[list[float]], poisoned: tuple[int, ...], attacked: tuple[int, ...] = (0,)
) -> pl.DataFrame:
    """A metrics frame: harmful = 1 - refusal, helpfulness 0.8 at cycle 0 and 0.6 after, 50 poison
    examples on the attacked nodes in the `poisoned` cycles."""
    rows = [
        {
            "cycle": cycle,
            "node": node,
            "refusal_rate": rate,
            "harmful_rate": 1 - rate,
            "helpfulness": 0.8 if cycle == 0 else 0.6,
            "drifted": drifted(refusal[0][node], rate, 0.2),
            "attacked": node in attacked,
            "poison_examples": None if cycle == 0 else 50 * (node in attacked and cycle in poisoned),
            "hops_from_attack": HOPS[node],
        }
        for cycle, rates in enumerate(refusal)
        for node, rate in enumerate(rates)
    ]
    integers = ("cycle", "node", "poison_examples", "hops_from_attack")
    return pl.DataFrame(rows, schema_overrides=dict.fromkeys(integers, pl.Int32))


def test_summarize_keeps_the_existing_keys():
    existing = {"cycles", "nodes", "baseline_mean_refusal", "final_mean_refusal", "final_unattacked_refusal"}
    existing |= {"final_attacked_refusal", "final_drifted_nodes", "peak_drifted_unattacked", "time_to_systemic"}
    existing |= {"max_hops_reached", "per_cycle"}
    assert existing <= summarize(metrics_frame(REFUSAL, poisoned=(1, 2, 3, 4))).keys()


TWIN = [  # the poison-free twin of REFUSAL: benign erosion alone
    [1.0, 1.0, 1.0, 1.0, 1.0],
    [1.0, 1.0, 1.0, 1.0, 1.0],
    [1.0, 0.9, 1.0, 1.0, 1.0],  # node 1: 0.2 above the run, infected
    [1.0, 0.8, 0.9, 1.0, 1.0],  # nodes 1 and 2 infected
    [1.0, 1.0, 0.8, 0.75, 1.0],  # node 1 back (0.1); node 2 (0.1) and node 3 (0) not infected
]


def test_infection_is_the_excess_loss_over_the_twin():
    infection = with_twin(metrics_frame(REFUSAL, poisoned=(1, 2, 3, 4)), metrics_frame(TWIN, poisoned=()), 0.2)
    at = {(row["cycle"], row["node"]): row for row in infection.iter_rows(named=True)}
    assert at[2, 1]["excess_refusal_loss"] == pytest.approx(0.2) and at[2, 1]["infected"]
    assert at[4, 1]["excess_refusal_loss"] == pytest.approx(0.1) and not at[4, 1]["infected"]
    assert [at[c, 1]["infected_at"] for c in range(5)] == [None, None, 2, 2, 2]  # the first infection stays
    assert [at[c, 2]["infected_at"] for c in range(5)] == [None, None, None, 3, 3]
    assert at[3, 3]["excess_harmful_rate"] == 0 and at[1, 0]["twin_refusal_rate"] == 1.0
    # erosion is not infection: node 3 drifted from its cycle 0 but lost nothing its twin kept
    assert at[4, 3]["drifted"] and not at[4, 3]["infected"]


def test_an_excess_of_exactly_the_threshold_infects_despite_floating_point():
    run, twin = [[1.0, 1.0, 1.0, 1.0, 1.0], [0.1] * 5], [[1.0] * 5, [0.3] * 5]  # 0.3 - 0.1 < 0.2 in floats
    infection = with_twin(metrics_frame(run, poisoned=(1,)), metrics_frame(twin, poisoned=()), 0.2)
    assert infection.filter(pl.col("cycle") == 1)["infected"].all()
    assert drifted(0.3, 0.1, 0.2) and not drifted(0.3, 0.11, 0.2)  # the same rule for drift


def test_a_node_that_differs_from_its_twin_before_the_poison_can_reach_it_breaches_the_causal_horizon():
    run = metrics_frame(REFUSAL, poisoned=(1, 2, 3, 4))
    assert causal_horizon_breaches(run, metrics_frame(TWIN, poisoned=()), first_cycle=1) == 0
    early = [row[:] for row in TWIN]
    early[2][3] = 0.95  # node 3 is 2 hops away: it cannot differ before cycle 1 + 2
    early[4][4] = 0.9  # node 4 cannot be reached at all
    assert causal_horizon_breaches(run, metrics_frame(early, poisoned=()), first_cycle=1) == 2
    # node 3 a cycle early is allowed where an attack changes what its targets share from the start
    assert causal_horizon_breaches(run, metrics_frame(early, poisoned=()), first_cycle=1, lead=1) == 1
    allowed = [row[:] for row in TWIN]
    allowed[3][3] = 0.95  # at the edge of the horizon
    assert causal_horizon_breaches(run, metrics_frame(allowed, poisoned=()), first_cycle=1) == 0
    assert causal_horizon_breaches(run, metrics_frame(early, poisoned=()), first_cycle=None) == 0  # no attack acted


def test_infection_and_erosion_figures():
    run, twin = metrics_frame(REFUSAL, poisoned=(1, 2, 3, 4)), metrics_frame(TWIN, poisoned=())
    figures = infection_summary(with_twin(run, twin, 0.2), twin)
    assert [figures[f"infected_share_{k}"] for k in ("final", "peak", "area")] == [0, 0.5, 0.75]
    assert figures["time_to_systemic_infection"] == 3  # half of the 4 unattacked nodes
    assert figures["infection_speed"] == pytest.approx(2 / 3)  # 2 hops reached at cycle 3
    assert figures["eroded_share_final"] == 0.5 and figures["eroded_share_area"] == pytest.approx(0.75)


def infection_frame(first_infected: dict[int, int], attacked: tuple[int, ...], cycles: int = 5) -> pl.DataFrame:
    """A table as `with_twin` makes it: attacked nodes poisoned from cycle 1, the others infected from the
    cycle given (and never recovering)."""
    nodes = sorted({*first_infected, *attacked})
    return pl.DataFrame(
        [
            {
                "cycle": cycle,
                "node": node,
                "attacked": node in attacked,
                "poison_examples": 50 if node in attacked and cycle else 0,
                "infected": node in first_infected and cycle >= first_infected[node],
            }
            for cycle in range(cycles + 1)
            for node in nodes
        ]
    )


def edges_frame(harmful: dict[tuple[int, int], int], cycles: int = 5) -> pl.DataFrame:
    """Every edge (sender, receiver) carrying the same harmful pairs in every cycle."""
    rows = [
        {"cycle": cycle, "sender": sender, "receiver": receiver, "harmful_pairs": pairs}
        for cycle in range(1, cycles + 1)
        for (sender, receiver), pairs in harmful.items()
    ]
    return pl.DataFrame(rows)


def test_the_transmission_tree_of_a_chain_is_the_chain():
    infection = infection_frame({1: 2, 2: 3, 3: 4}, attacked=(0,))
    tree = transmission_tree(infection, edges_frame({(0, 1): 5, (1, 2): 5, (2, 3): 5}))
    assert tree.select("node", "infector", "generation", "cycle").rows() == [(1, 0, 1, 2), (2, 1, 2, 3), (3, 2, 3, 4)]
    assert reproduction_by_generation(tree, attacked=1)["mean_children"].to_list() == [1, 1, 1, 0]


def test_a_star_with_an_attacked_hub_infects_every_leaf_in_generation_one():
    leaves = {1: 2, 2: 2, 3: 3, 4: 3}
    edges = {(0, leaf): 4 for leaf in leaves} | {(leaf, 0): 0 for leaf in leaves}
    tree = transmission_tree(infection_frame(leaves, attacked=(0,)), edges_frame(edges))
    assert tree["infector"].to_list() == [0] * 4 and tree["generation"].to_list() == [1] * 4
    assert reproduction_by_generation(tree, attacked=1).row(0, named=True)["mean_children"] == 4


def test_the_infector_is_the_earlier_infected_in_neighbour_that_sent_the_most_harmful_pairs():
    infection = infection_frame({1: 2, 2: 2, 3: 3, 4: 3}, attacked=(0,))
    # node 3 hears from 1 (3 harmful) and 2 (7); node 4 from 3 (infected at its own cycle: not before it)
    # and from 1 and 2 (2 each: the lower node); node 2 also hears from node 4, infected later
    edges = {(0, 1): 5, (0, 2): 5, (1, 3): 3, (2, 3): 7, (3, 4): 9, (1, 4): 2, (2, 4): 2, (4, 2): 9}
    tree = transmission_tree(infection, edges_frame(edges))
    assert dict(tree.select("node", "infector").rows()) == {1: 0, 2: 0, 3: 2, 4: 1}
    assert dict(tree.select("node", "generation").rows()) == {1: 1, 2: 1, 3: 2, 4: 2}


def test_a_node_infected_with_the_first_poison_has_no_infector_and_its_line_no_generation():
    """Node 1 is infected in cycle 1, as its attacked in-neighbour is first poisoned: before the poison could
    reach it (found in a calibration chain). Node 2, infected by it, has an infector but no generation."""
    infection = infection_frame({1: 1, 2: 3}, attacked=(0,))
    tree = transmission_tree(infection, edges_frame({(0, 1): 5, (1, 2): 5}))
    assert tree.select("node", "infector", "generation").rows() == [(1, None, None), (2, 1, None)]


def test_the_sis_fit_without_a_twin_says_so():
    fit = fit_sis(metrics_frame(REFUSAL, poisoned=(1, 2, 3, 4)), nx.path_graph(5, create_using=nx.DiGraph))
    assert fit.beta is None and "twin" in fit.reason


def test_drifted_share_figures():
    summary = summarize(metrics_frame(REFUSAL, poisoned=(1, 2, 3, 4)))
    assert [row["drifted_share"] for row in summary["per_cycle"]] == [0, 0, 0.25, 0.5, 0.5]
    assert summary["peak_drifted_share"] == 0.5 and summary["final_drifted_share"] == 0.5
    assert summary["drifted_share_area"] == 1.25
    assert summary["systemic_share"] == SYSTEMIC_SHARE and summary["time_to_systemic"] == 3
    assert summary["peak_drifted_unattacked"] == 2 and summary["final_drifted_nodes"] == 3


@pytest.mark.parametrize(("share", "cycle"), [(0.25, 2), (0.5, 3), (0.75, None), (1.0, None)])
def test_time_to_systemic_at_a_share(share, cycle):
    assert summarize(metrics_frame(REFUSAL, poisoned=(1,)), systemic_share=share)["time_to_systemic"] == cycle


def test_spread_speed():
    summary = summarize(metrics_frame(REFUSAL, poisoned=(1,)))
    assert [row["max_drifted_hops"] for row in summary["per_cycle"]] == [None, None, 1, 2, 2]
    assert summary["max_hops_reached"] == 2
    assert summary["spread_speed"] == pytest.approx(2 / 3)  # 2 hops, first reached at cycle 3


def test_final_rates_and_helpfulness_retained():
    summary = summarize(metrics_frame(REFUSAL, poisoned=(1,)))
    assert summary["final_attacked_refusal"] == 0 and summary["final_attacked_harmful"] == 1
    assert summary["final_unattacked_refusal"] == pytest.approx((0.9 + 0.7 + 0.75 + 1) / 4)
    assert summary["final_unattacked_harmful"] == pytest.approx((0.1 + 0.3 + 0.25 + 0) / 4)
    assert summary["helpfulness_retained"] == pytest.approx(0.6 / 0.8)


@pytest.mark.parametrize(
    ("refusal", "poisoned", "last_poisoned", "recovery"),
    [
        ([*REFUSAL, RECOVERED], (1, 2), 2, 3),  # every node back at cycle 5
        ([*REFUSAL, RECOVERED], (1, 2, 3, 4, 5), 5, None),  # the attack never stops
        (REFUSAL, (1, 2), 2, None),  # never recovers
        (REFUSAL, (), None, None),  # no poison
        ([REFUSAL[0], [0.9, 1.0, 1.0, 1.0, 1.0], REFUSAL[0]], (1,), 1, 0),  # nothing had drifted
    ],
)
def test_recovery(refusal, poisoned, last_poisoned, recovery):
    summary = summarize(metrics_frame(refusal, poisoned))
    assert (summary["last_poisoned_cycle"], summary["recovery_cycles"]) == (last_poisoned, recovery)


def test_summarize_a_baseline_only_run():
    summary = summarize(metrics_frame(REFUSAL[:1], poisoned=()))
    assert summary["cycles"] == 0 and summary["final_drifted_share"] == 0 and summary["drifted_share_area"] == 0
    absent = ("peak_drifted_share", "time_to_systemic", "max_hops_reached", "spread_speed", "recovery_cycles")
    assert all(summary[key] is None for key in absent)


def test_shares_without_unattacked_nodes_are_none():
    summary = summarize(metrics_frame(REFUSAL, poisoned=(1,), attacked=(0, 1, 2, 3, 4)))
    shares = ("final_drifted_share", "peak_drifted_share", "drifted_share_area", "final_unattacked_harmful")
    assert all(summary[key] is None for key in shares)


def test_hop_profile():
    profile = hop_profile(metrics_frame(REFUSAL, poisoned=(1,))).filter(pl.col("cycle") == 3)
    assert profile.select("hops_from_attack", "mean_refusal", "nodes").rows() == [
        (0, 0.0, 1),
        (1, 0.6, 1),
        (2, pytest.approx(0.85), 2),
        (None, 1.0, 1),
    ]


def direct_cluster_bootstrap(clusters, denominators, confidence, resamples, seed):
    """The hierarchical bootstrap written as loops, from the same random draws as `cluster_bootstrap`: per
    resample, clusters drawn with replacement, then each drawn cluster's values with replacement."""
    draw = np.random.default_rng(seed)
    chosen = draw.integers(0, len(clusters), size=(resamples, len(clusters)))
    uniform = draw.random((resamples, len(clusters), max(map(len, clusters))))
    means = []
    for r in range(resamples):
        total = under = 0.0
        for slot, cluster in enumerate(chosen[r]):
            values = clusters[cluster]
            for k in range(len(values)):
                pick = int(uniform[r, slot, k] * len(values))
                total += values[pick]
                under += denominators[cluster][pick]
        means.append(total / under)
    pooled = sum(map(sum, clusters)) / sum(map(sum, denominators))
    low, high = np.quantile(means, [(1 - confidence) / 2, (1 + confidence) / 2])
    return pooled, low, high, means


BASES = [[0.9, 0.7, 0.8], [0.3, 0.4], [0.6, 0.65, 0.5, 0.55]]  # bases of unequal seed counts


@pytest.mark.parametrize("ratio", [False, True])
def test_cluster_bootstrap_matches_a_direct_implementation(ratio):
    denominators = [[0.5 + 0.1 * k for k in range(len(base))] for base in BASES] if ratio else None
    ones = denominators or [[1.0] * len(base) for base in BASES]
    interval = cluster_bootstrap(BASES, denominators, confidence=0.9, resamples=400, seed=7)
    mean, low, high, _ = direct_cluster_bootstrap(BASES, ones, 0.9, 400, 7)
    assert interval.seeds == 9
    assert (interval.mean, interval.low, interval.high) == (
        pytest.approx(mean),
        pytest.approx(low),
        pytest.approx(high),
    )


def test_cluster_bootstrap_resamples_bases_then_seeds():
    # bases that differ while their seeds agree: the interval spans the bases, as one over seeds alone would not
    spread = cluster_bootstrap([[0.2, 0.2, 0.2], [0.8, 0.8, 0.8]])
    assert spread.mean == pytest.approx(0.5) and spread.low == pytest.approx(0.2) and spread.high == pytest.approx(0.8)
    assert cluster_bootstrap([[0.4, 0.4], [0.4, 0.4]]) == Interval(*[pytest.approx(0.4)] * 3, 4, 2)
    assert cluster_bootstrap([[0.4, None], [None]]) == Interval(0.4, None, None, 1, 1)
    assert cluster_bootstrap([[None]]) == Interval(None, None, None, 0, 0)
    assert cluster_bootstrap([[1.0, 2.0]], [[0.0, None]]) == Interval(None, None, None, 1, 1)  # a ratio over nothing


def test_bootstrap_p_values_are_the_shares_of_resampled_means_beyond_a_threshold():
    estimate = bootstrap(BASES, resamples=400, seed=7)
    means = direct_cluster_bootstrap(BASES, [[1.0] * len(base) for base in BASES], 0.95, 400, 7)[3]
    for threshold in (0.4, 0.55, 0.62, 0.7):
        assert estimate.p_above(threshold) == pytest.approx((sum(m <= threshold for m in means) + 1) / 401)
        assert estimate.p_below(threshold) == pytest.approx((sum(m >= threshold for m in means) + 1) / 401)
    # two one-sided tests against ±margin around 0 of differences: the larger of the two one-sided p-values
    differences = [[value - 0.6 for value in base] for base in BASES]
    shifted = bootstrap(differences, resamples=400, seed=7)
    shifted_means = direct_cluster_bootstrap(differences, [[1.0] * len(base) for base in BASES], 0.95, 400, 7)[3]
    for margin in (0.05, 0.1, 0.3):
        p_lower = (sum(m <= -margin for m in shifted_means) + 1) / 401
        p_upper = (sum(m >= margin for m in shifted_means) + 1) / 401
        assert shifted.p_equivalent(margin) == pytest.approx(max(p_lower, p_upper))
    assert shifted.p_equivalent(0.3) < 0.05 < shifted.p_equivalent(0.05)  # equivalent only within a wide margin
    assert bootstrap([[0.5]]).p_above(0) is None  # one value: no test
    # runs that all agree: no surer than the sign test with every run on one side
    assert bootstrap([[0.0, 0.0], [0.0, 0.0]]).p_equivalent(0.1) == 0.5**4
    assert bootstrap([[0.0] * 5] * 3).p_equivalent(0.1) == pytest.approx(1 / 10_001)


def test_the_95_interval_lies_above_a_threshold_exactly_when_the_doubled_p_value_is_below_0_05():
    for shift in np.linspace(-0.3, 0.3, 13):
        estimate = bootstrap([[value + shift for value in base] for base in BASES], resamples=2000, seed=3)
        low = estimate.interval.low
        assert (low > 0) == (2 * estimate.p_above(0) < 0.05) or abs(low) < 0.01  # up to the quantile's interpolation


def test_holm_equals_a_direct_step_down():
    p_values = [0.01, 0.04, 0.03, 0.005, 0.2]
    order = sorted(range(len(p_values)), key=p_values.__getitem__)
    expected, running = [0.0] * len(p_values), 0.0
    for rank, index in enumerate(order):
        running = max(running, min(1.0, (len(p_values) - rank) * p_values[index]))
        expected[index] = running
    assert holm(p_values) == pytest.approx(expected)
    assert holm([0.3]) == [0.3] and holm([]) == []


def test_a_time_some_runs_never_reached_is_censored_not_averaged():
    assert censored([3, 4, None, 5, 11], horizon=10) == Censored(3, 5, 10, 5.0)
    assert censored([2, None, None, None], horizon=10) == Censored(1, 4, 10, None)  # most never reached it
    assert censored([2, 3, None, None], horizon=10) == Censored(2, 4, 10, None)  # half: the median is unknown
    assert censored([], horizon=10) == Censored(0, 0, 10, None)


@settings(max_examples=200, deadline=None)
@given(
    st.lists(st.lists(st.floats(0, 1) | st.sampled_from([0.0, 1.0]), min_size=1, max_size=4), min_size=1, max_size=4)
)
def test_cluster_bootstrap_of_rates_stays_within_0_and_1(clusters):
    interval = cluster_bootstrap(clusters, resamples=200)
    assert 0 <= interval.mean <= 1
    if interval.low is not None:
        assert 0 <= interval.low <= interval.high <= 1


def test_over_seeds_resamples_each_cells_bases_then_the_seeds_on_each():
    runs = pl.DataFrame(
        {
            "topology": ["ring"] * 5 + ["star"] * 3,
            "dose": [10] * 8,
            "seed": [0, 1, 2, 3, 4, 0, 1, 2],
            "model_seed": [0, 1, 0, 1, 0, 0, 0, 0],
            "peak_drifted_share": [0.37, 0.94, 0.12, 0.61, 0.55, 1.0, 1.0, 0.5],
            "time_to_systemic": [None, 3, None, 5, None, 2, 2, 4],
        }
    )
    cells = over_seeds(runs, ["topology", "dose"], ["peak_drifted_share", "time_to_systemic"])
    assert cells["topology"].to_list() == ["ring", "star"]
    ring, star = cells.rows(named=True)
    expected = cluster_bootstrap([[0.12, 0.37, 0.55], [0.61, 0.94]])  # a cluster per base, its values in order
    assert [ring[f"peak_drifted_share_{part}"] for part in Interval._fields] == list(expected)
    assert (expected.seeds, expected.bases) == (5, 2) and 0.12 <= expected.low < expected.mean < expected.high <= 0.94
    star_share = [star[f"peak_drifted_share_{part}"] for part in Interval._fields]
    assert star_share == list(cluster_bootstrap([[0.5, 1.0, 1.0]]))  # the rows' order does not matter
    shuffled = over_seeds(runs.reverse(), ["topology", "dose"], ["peak_drifted_share", "time_to_systemic"])
    assert shuffled.equals(cells)
    # a seed that never reached systemic infection is left out, its base too where none of its seeds did
    assert [ring[f"time_to_systemic_{part}"] for part in Interval._fields] == list(cluster_bootstrap([[3, 5]]))
    assert (ring["time_to_systemic_seeds"], ring["time_to_systemic_bases"]) == (2, 1)
    # without a base column, a cell's runs are one base
    pooled = over_seeds(runs.drop("model_seed"), ["topology"], ["peak_drifted_share"]).row(0, named=True)
    assert (pooled["peak_drifted_share_low"], pooled["peak_drifted_share_high"]) == tuple(
        cluster_bootstrap([[0.12, 0.37, 0.55, 0.61, 0.94]])[1:3]
    )
    assert (pooled["peak_drifted_share_seeds"], pooled["peak_drifted_share_bases"]) == (5, 1)


def test_with_bases_joins_each_runs_base_from_a_sweeps_cells():
    cells = pl.DataFrame({"cell": [0, 0, 1], "seed": [0, 1, 0], "model_seed": [0, 1, 0], "final": [0.1, 0.2, 0.3]})
    per_cycle = pl.DataFrame({"cell": [0, 0, 0, 1], "seed": [0, 0, 1, 0], "cycle": [0, 1, 0, 0]})
    assert with_bases(per_cycle, cells).columns == ["cell", "seed", "cycle", "model_seed"]
    assert with_bases(per_cycle, cells)["model_seed"].to_list() == [0, 0, 1, 0]
    assert with_bases(per_cycle, cells.drop("model_seed")).equals(per_cycle)  # a sweep from before bases


def states_frame(states: np.ndarray, sources: np.ndarray) -> pl.DataFrame:
    """A metrics frame (cycle, node, infected, attacked) from infected states[cycle, node]."""
    cycles, nodes = states.shape
    return pl.DataFrame(
        {
            "cycle": np.repeat(np.arange(cycles), nodes),
            "node": np.tile(np.arange(nodes), cycles),
            "infected": states.ravel(),
            "attacked": np.tile(sources, cycles),
        }
    )


def simulate_sis(graph: nx.DiGraph, beta: float, gamma: float, steps: int, rng: np.random.Generator) -> pl.DataFrame:
    """Discrete-time SIS by per-edge coin flips: each infected node u infects each susceptible out-neighbour
    v with probability beta · w_uv, independently; each infected node but the source (node 0, attacked,
    always infected) recovers with probability gamma. A fifth of the nodes start infected."""
    nodes = len(graph)
    weights = nx.to_numpy_array(graph, nodelist=range(nodes))
    source = np.arange(nodes) == 0
    infected = source | (rng.random(nodes) < 0.2)
    states = [infected]
    for _ in range(steps):
        caught = ((rng.random((nodes, nodes)) < beta * weights) & infected[:, None]).any(axis=0)
        recovered = infected & ~source & (rng.random(nodes) < gamma)
        infected = (infected & ~recovered) | (~infected & caught)
        states.append(infected)
    return states_frame(np.array(states), source)


def eon_states(simulation, graph: nx.Graph, times: range) -> np.ndarray:
    """Infected per (time, node), nodes in the graph's order, from an EoN simulation's full data."""
    states = []
    for time in times:
        statuses = simulation.get_statuses(list(graph), time)
        states.append([statuses[node] == "I" for node in graph])
    return np.array(states)


def with_random_weights(graph: nx.Graph, rng: np.random.Generator) -> nx.DiGraph:
    """Both directions of every edge, each weighted from [0.2, 0.8] (as `topology.weights = "random"`)."""
    directed = nx.DiGraph(graph)
    nx.set_edge_attributes(directed, {edge: rng.uniform(0.2, 0.8) for edge in directed.edges}, "weight")
    return directed


@pytest.mark.parametrize(
    ("graph", "beta", "gamma"),
    [
        (nx.cycle_graph(60), 0.6, 0.2),
        (nx.gnp_random_graph(80, 0.08, seed=1), 0.25, 0.3),
        (nx.barabasi_albert_graph(100, 2, seed=2), 0.25, 0.3),
    ],
    ids=["ring", "erdos_renyi", "scale_free"],
)
def test_fit_recovers_simulated_sis(graph, beta, gamma):
    rng = np.random.default_rng(0)
    graph = with_random_weights(graph, rng)
    fit = fit_sis(simulate_sis(graph, beta, gamma, steps=300, rng=rng), graph)
    assert fit.beta == pytest.approx(beta, rel=TOLERANCE) and fit.gamma == pytest.approx(gamma, rel=TOLERANCE)
    assert fit.recoveries > 1000 and fit.infections > 1000 and fit.reason is None
    assert fit.reproduction_number == pytest.approx(fit.beta * spectral_radius(graph) / fit.gamma)


def test_fit_recovers_eon_discrete_sis():
    graph = nx.gnp_random_graph(100, 0.06, seed=3)
    simulation = EoN.basic_discrete_SIS(
        graph, 0.35, rho=0.2, tmax=200, rng=np.random.default_rng(4), return_full_data=True
    )
    fit = fit_sis(states_frame(eon_states(simulation, graph, range(201)), np.zeros(100, bool)), nx.DiGraph(graph))
    assert fit.beta == pytest.approx(0.35, rel=TOLERANCE) and fit.gamma == 1  # EoN's nodes recover after a step
    assert fit.infections > 1000


@pytest.mark.parametrize("ratio_to_threshold", [0.5, 2.5])
def test_threshold_against_eon(ratio_to_threshold):
    graph = nx.gnp_random_graph(100, 0.08, seed=5)
    radius, recovery_rate = spectral_radius(nx.DiGraph(graph)), 0.05
    transmission_rate = ratio_to_threshold * recovery_rate / radius
    simulation = EoN.fast_SIS(
        graph, transmission_rate, recovery_rate, rho=0.2, tmax=400, rng=np.random.default_rng(6), return_full_data=True
    )
    states = eon_states(simulation, graph, range(401))
    beta, gamma = 1 - np.exp(-transmission_rate), 1 - np.exp(-recovery_rate)  # per step of one time unit
    fit = fit_sis(states_frame(states, np.zeros(100, bool)), nx.DiGraph(graph))
    persists = states[-1].any()
    assert persists == (ratio_to_threshold > 1)
    assert (beta * radius / gamma > 1) == persists and (fit.reproduction_number > 1) == persists
    if persists:  # enough transitions to estimate (dying out, it leaves a few dozen)
        assert fit.beta == pytest.approx(beta, rel=TOLERANCE) and fit.gamma == pytest.approx(gamma, rel=TOLERANCE)


def test_fit_on_one_edge_has_the_closed_form():
    """Node 0, attacked, is a source even though it never drifted; node 1 hears only node 0, so the
    likelihood peaks where beta · w = infections / exposed steps."""
    graph = nx.DiGraph([(0, 1, {"weight": 0.8})])
    node_1 = [False, True, False, False, True, True, False, False]
    states = np.array([[False, infected] for infected in node_1])
    fit = fit_sis(states_frame(states, np.array([True, False])), graph)
    assert (fit.exposed_steps, fit.infections, fit.infected_steps, fit.recoveries) == (4, 2, 3, 2)
    assert fit.beta == pytest.approx(0.5 / 0.8, abs=1e-6) and fit.gamma == pytest.approx(2 / 3)
    assert fit.spectral_radius == 0 and fit.reproduction_number == 0  # no cycle: nothing comes back


def test_fit_cannot_estimate_without_transitions():
    graph = nx.DiGraph(nx.cycle_graph(5))
    never = fit_sis(states_frame(np.zeros((4, 5), bool), np.zeros(5, bool)), graph)
    assert never.beta is None and never.gamma is None and never.reproduction_number is None
    assert "cannot estimate beta" in never.reason and "cannot estimate gamma" in never.reason
    assert never.exposed_steps == never.infected_steps == 0
    unheard = fit_sis(states_frame(np.array([[False, False]] * 3), np.array([True, False])), nx.DiGraph([(0, 1)]))
    assert unheard.beta == pytest.approx(0, abs=1e-6) and unheard.exposed_steps == 2  # exposed, never infected
    always = fit_sis(states_frame(np.ones((4, 5), bool), np.zeros(5, bool)), graph)
    assert always.beta is None and always.gamma == 0 and always.reproduction_number is None
    assert "no recovery observed" in always.reason


def test_analysis_imports_no_torch():
    code = "import sys, ecosystem.analysis; print('torch' in sys.modules)"
    assert subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout == "False\n"
