"""The v2 vocabulary of verdict rules: a figure pooled over bases and seeds, effects decided by bootstrap
p-values, no effect only by equivalence within a margin, and Holm's correction across findings."""

from __future__ import annotations

import polars as pl
import pytest

from ecosystem.analysis import cluster_bootstrap
from ecosystem.verdicts import Effect, Finding, across, apart, effect, every, gap, pooled, with_holm
from tests.rules import cells


def test_a_pooled_figure_resamples_the_bases_of_its_runs():
    runs = cells([({"arm": "a"}, {"refusal": 0.5})], spread=0.0, base_shift=0.2)
    estimate = pooled(runs, "refusal")
    by_base = [runs.filter(pl.col("model_seed") == base)["refusal"].to_list() for base in range(3)]
    assert estimate.interval == cluster_bootstrap(by_base)
    assert (estimate.interval.seeds, estimate.interval.bases) == (15, 3)
    assert estimate.interval.low == pytest.approx(0.3) and estimate.interval.high == pytest.approx(0.7)


def test_a_gap_pairs_each_run_with_the_control_of_its_base_and_seed():
    runs = cells([({"arm": "a"}, {"refusal": 0.8}), ({"arm": "b"}, {"refusal": 0.5})], spread=0.05, base_shift=0.2)
    estimate = gap(runs, "refusal", pl.col("arm") == "a", pl.col("arm") == "b")
    a, b = (runs.filter(pl.col("arm") == arm).sort("seed") for arm in "ab")
    differences = (a["refusal"] - b["refusal"]).to_list()
    assert estimate.interval == cluster_bootstrap([differences[base::3] for base in range(3)])
    # the bases' shift is common to both arms: paired, it cancels, and the interval is narrow
    assert 0.2 < estimate.interval.low < estimate.interval.high < 0.4


@pytest.mark.parametrize(
    ("value", "spread", "side"),
    [(0.3, 0.05, "above"), (-0.3, 0.05, "below"), (0.0, 0.02, "within"), (0.0, 0.4, None), (0.12, 0.6, None)],
)
def test_an_effect_is_above_below_within_the_margin_or_undecided(value, spread, side):
    found = effect(pooled(cells([({}, {"x": value})], spread=spread), "x"), margin=0.1)
    assert found.side == side
    assert (found.p is not None and found.p < 0.05) == (side is not None)


def test_an_effect_smaller_than_the_margin_is_no_effect_even_when_certain():
    assert effect(pooled(cells([({}, {"x": 0.03})], spread=0.001), "x"), margin=0.1).side == "within"
    assert effect(pooled(cells([({}, {"x": 0.03})], spread=0.001), "x"), margin=0.01).side == "above"


ABOVE, BELOW, WITHIN, NONE = Effect("above", 0.01), Effect("below", 0.02), Effect("within", 0.03), Effect(None, None)


@pytest.mark.parametrize(
    ("effects", "verdict", "p"),
    [
        ([ABOVE, Effect("above", 0.004)], "holds", 0.01),
        ([ABOVE, NONE, NONE], "holds under conditions", 0.03),
        ([WITHIN, BELOW], "does not hold", 0.03),
        ([ABOVE, BELOW], "inconclusive", None),
        ([ABOVE, WITHIN], "inconclusive", None),
        ([WITHIN, NONE], "inconclusive", None),
        ([], "inconclusive", None),
    ],
)
def test_a_claim_across_cells(effects, verdict, p):
    assert across(effects, "above") == (verdict, pytest.approx(p) if p else None)


def finding(verdict: str, p_value: float | None) -> Finding:
    return Finding("f", "claim", "rule", verdict, "reason", {}, p_value)


def test_holm_makes_a_verdict_inconclusive_when_its_adjusted_p_value_is_not_below_0_05():
    judged = with_holm([finding("holds", 0.01), finding("does not hold", 0.03), finding("holds", 0.001)])
    assert [f.p_holm for f in judged] == pytest.approx([0.02, 0.03, 0.003])
    assert [f.verdict for f in judged] == ["holds", "does not hold", "holds"]
    judged = with_holm([finding("holds", 0.02), finding("holds", 0.04), finding("inconclusive", None)])
    assert [f.p_holm for f in judged] == pytest.approx([0.04, 0.04, None])
    assert [f.verdict for f in judged] == ["holds", "holds", "inconclusive"]
    judged = with_holm([finding("holds", 0.03), finding("holds under conditions", 0.04), finding("holds", 0.2)])
    assert [f.verdict for f in judged] == ["inconclusive"] * 3
    assert "Holm" in judged[0].reason and "was holds" in judged[0].reason


def test_two_independent_arms_differ_draw_by_draw():
    a = pooled(cells([({}, {"x": 0.7})], spread=0.1), "x", seed=0)
    b = pooled(cells([({}, {"x": 0.4})], spread=0.1), "x", seed=1)
    difference = apart(a, b)
    assert difference.interval.mean == pytest.approx(a.interval.mean - b.interval.mean)
    assert list(difference.draws) == pytest.approx(list(a.draws - b.draws))
    # independent: the difference's interval is wider than either arm's, narrower than their sum
    widths = [estimate.interval.high - estimate.interval.low for estimate in (a, b)]
    assert max(widths) < difference.interval.high - difference.interval.low < sum(widths)


@pytest.mark.parametrize(
    ("effects", "verdict", "p"),
    [
        ([ABOVE, Effect("above", 0.004)], "holds", 0.01),
        ([ABOVE, WITHIN, NONE], "does not hold", 0.09),  # one cell refutes a claim that needs all of them
        ([ABOVE, NONE], "inconclusive", None),
        ([], "inconclusive", None),
    ],
)
def test_a_claim_needing_every_cell(effects, verdict, p):
    assert every(effects, "above") == (verdict, pytest.approx(p) if p else None)
