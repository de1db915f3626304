"""The `midtraining` rule (v2) gives each of its verdicts on synthetic cells."""

from __future__ import annotations

import polars as pl
import pytest

from ecosystem.experiments import load_experiment
from experiments import midtraining
from tests.rules import cells

PARAMETERS = load_experiment("midtraining").parameters
SIZES = (250, 1000, 4000)
MODEL_SEEDS = (1, 2, 4)
SWING = {1: 1, 2: -1, 4: 0}  # how base K departs from its arm's mean (mean 0 over the bases)


def midtraining_cells(ood: dict[str, float | dict[int, float]], excess: dict[str, float], spread: float, swing=0.0):
    """Both parts, one row per run with each leaf base's figures: refusal 1.0 on covered topics, `ood[arm]` on the
    others at cycle 0 (per alignment-data size where a dict) and `excess[arm]` over the twin at the end; base K of
    the midtrained and story arms gets `swing * SWING[K]` added to them, the others as much subtracted."""

    def figures(arms: tuple[str, ...], size: int) -> dict[str, float]:
        sign = {arm: 1 if arm in ("mid", "evil", "ethical") else -1 for arm in arms}
        values = {}
        for arm in arms:
            out = ood[arm][size] if isinstance(ood[arm], dict) else ood[arm]
            for k in MODEL_SEEDS:
                shift = sign[arm] * swing * SWING[k]
                values |= {
                    f"{arm}_id0_{k}": 1.0,
                    f"{arm}_ood0_{k}": out + shift,
                    f"{arm}_excess_{k}": excess[arm] + shift,
                }
        return values

    sizes = cells([({"model.align_examples": size}, figures(("align", "mid"), size)) for size in SIZES], spread)
    stories = cells([({"model.align_examples": 4000}, figures(("plain", "evil", "ethical"), 4000))], spread)
    return pl.concat(
        [sizes.with_columns(sweep=pl.lit("midtraining")), stories.with_columns(sweep=pl.lit("stories"))],
        how="diagonal",
    )


AS_CLAIMED = (
    {"align": {250: 0.3, 1000: 0.4, 4000: 0.5}, "mid": 0.9, "plain": 0.5, "evil": 0.2, "ethical": 0.8},
    {"align": 0.5, "mid": 0.1, "plain": 0.3, "evil": 0.3, "ethical": 0.3},
)
ARMS = ("align", "mid", "plain", "evil", "ethical")
NOTHING = (dict.fromkeys(ARMS, 1.0), dict.fromkeys(ARMS, 0.3))
REVERSED = (
    {"align": 0.6, "mid": 0.2, "plain": 0.5, "evil": 0.8, "ethical": 0.2},
    {"align": 0.1, "mid": 0.5, "plain": 0.3, "evil": 0.3, "ethical": 0.3},
)


@pytest.mark.parametrize(
    ("ood", "excess", "spread", "swing", "expected"),
    [
        (*AS_CLAIMED, 0.05, 0.0, ["holds"] * 6),
        # nothing differs: midtrained with little data is as good as aligned with much, but so is aligned alone
        (*NOTHING, 0.02, 0.0, ["does not hold", "does not hold", "inconclusive", *["does not hold"] * 3]),
        (*REVERSED, 0.05, 0.0, ["holds", *["does not hold"] * 5]),
        (*AS_CLAIMED, 0.05, 0.05, ["holds"] * 6),  # bases that differ a little
        (*AS_CLAIMED, 10.0, 0.5, ["inconclusive"] * 6),  # bases and runs that differ far more than the effects
    ],
)
def test_the_midtraining_rules(ood, excess, spread, swing, expected) -> None:
    findings = midtraining.analyse(midtraining_cells(ood, excess, spread, swing), PARAMETERS).findings
    assert [finding.verdict for finding in findings] == expected
    assert [finding.p_value is None for finding in findings] == [verdict == "inconclusive" for verdict in expected]


def test_holds_under_conditions_where_some_sizes_are_undecided() -> None:
    certain = midtraining_cells(*AS_CLAIMED, spread=0.05).filter(pl.col("model.align_examples") != 1000)
    undecided = midtraining_cells(*AS_CLAIMED, spread=10.0).filter(pl.col("model.align_examples") == 1000)
    findings = midtraining.analyse(pl.concat([certain, undecided], how="diagonal"), PARAMETERS).findings
    per_size = [findings[0], findings[1], findings[3]]
    assert [finding.verdict for finding in per_size] == ["holds under conditions"] * 3
    assert all(finding.p_value is not None for finding in per_size)


def test_sparing_data_does_not_hold_when_the_midtrained_base_with_little_data_falls_short() -> None:
    ood = {"align": {250: 0.2, 1000: 0.6, 4000: 0.9}, "mid": 0.4, "plain": 0.5, "evil": 0.5, "ethical": 0.5}
    sparing = midtraining.analyse(midtraining_cells(ood, AS_CLAIMED[1], 0.05), PARAMETERS).findings[2]
    assert sparing.verdict == "does not hold" and sparing.p_value < 0.05
    assert sparing.figures["ood0, midtrained 250 \N{MINUS SIGN} aligned only 4000"].mean == pytest.approx(
        -0.5, abs=0.02
    )


def test_per_base_gives_one_row_per_run_and_base_with_its_model_seed() -> None:
    frame = midtraining.per_base(midtraining_cells(*AS_CLAIMED, spread=0.0), ["model.align_examples"])
    assert frame.height == (len(SIZES) * 2 + 3) * 15 * len(MODEL_SEEDS)
    assert sorted(frame["model_seed"].unique()) == list(MODEL_SEEDS)
    mid = frame.filter((pl.col("arm") == "mid") & (pl.col("seed") == 0) & (pl.col("model_seed") == 2))
    assert mid["ood0"].to_list() == [0.9] * len(SIZES) and mid["excess"].to_list() == [0.1] * len(SIZES)
