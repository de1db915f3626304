"""The `dose` rule gives each of its verdicts on synthetic cells."""

from __future__ import annotations

import polars as pl
import pytest

from ecosystem.experiments import load_experiment
from experiments import dose
from tests.rules import cells

PARAMETERS = load_experiment("dose").parameters
ISOLATED, RING, CLEAN = (1, 10, 50, 300, 3000), (10, 300, 3000), (48, 480, 4800)
OTHERS = {"excess_harmful": 0.5, "unattacked_excess": 0.1}  # figures the tables show and no rule reads


def dose_cells(
    isolated: dict[int, float],
    ring: dict[int, float] | None = None,
    clean: tuple[float, float, float] = (0.9, 0.9, 0.9),
    kept: float = 1.0,
    spread: float = 0.02,
) -> pl.DataFrame:
    """The refusal drop per dose of each part (the ring's: the isolated one's unless given), benign kept alike
    everywhere, and the clean part's drop at 1, 10 and 100 times the clean data."""
    ring = ring or {dose: isolated[dose] for dose in RING}
    groups = [
        ({"sweep": part, "attack.0.examples": dose}, {"refusal_drop": drop, "benign_kept": kept} | OTHERS)
        for part, drops in (("isolated", isolated), ("ring", ring))
        for dose, drop in drops.items()
    ]
    groups += [
        (
            {"sweep": "clean", "training.own_examples": own, "training.steps": own * 5 // 4},
            {"refusal_drop": drop, "benign_kept": kept} | OTHERS,
        )
        for own, drop in zip(CLEAN, clean, strict=True)
    ]
    return cells(groups, spread)


SATURATING = {1: 0.1, 10: 0.8, 50: 0.9, 300: 0.95, 3000: 0.95}
GRADUAL = {1: 0.0, 10: 0.1, 50: 0.2, 300: 0.3, 3000: 0.4}
NOTHING = dict.fromkeys(ISOLATED, 0.0)


@pytest.mark.parametrize(
    ("frame", "expected"),
    [
        (dose_cells(SATURATING), ["holds", "holds", "holds"]),
        (dose_cells(SATURATING, kept=0.5), ["does not hold", "holds", "holds"]),
        (dose_cells(GRADUAL, clean=(0.9, 0.9, 0.3)), ["does not hold", "does not hold", "does not hold"]),
        (dose_cells(NOTHING, clean=(0.0, 0.0, 0.0)), ["does not hold", "does not hold", "holds"]),
        (dose_cells(SATURATING, spread=2.0), ["inconclusive"] * 3),
    ],
)
def test_the_dose_rules(frame, expected) -> None:
    findings = dose.analyse(frame, PARAMETERS).findings
    assert [finding.verdict for finding in findings] == expected
    assert all((finding.p_value is None) == (finding.verdict == "inconclusive") for finding in findings)


def test_degradation_holds_under_conditions_where_only_the_isolated_nodes_degrade() -> None:
    frame = dose_cells(SATURATING, ring=dict.fromkeys(RING, 0.3))
    finding = dose.analyse(frame, PARAMETERS).findings[0]
    assert finding.verdict == "holds under conditions" and finding.p_value < 0.05


def test_degradation_is_inconclusive_where_a_dose_straddles_the_claimed_share() -> None:
    frame = dose_cells({**GRADUAL, 3000: 0.6}, ring={10: 0.1, 300: 0.2, 3000: 0.6})
    assert dose.analyse(frame, PARAMETERS).findings[0].verdict == "inconclusive"


def test_a_handful_does_not_suffice_where_ten_examples_lose_less_than_half_the_largest_dose() -> None:
    finding = dose.analyse(dose_cells(GRADUAL), PARAMETERS).findings[1]
    assert finding.verdict == "does not hold"
    assert finding.figures["drop at 10 \N{MINUS SIGN} ½ drop at 3000"].mean == pytest.approx(-0.1, abs=0.02)


@pytest.mark.parametrize(("clean", "expected"), [((0.9, 0.85, 0.8), "holds"), ((0.9, 0.85, 0.7), "inconclusive")])
def test_count_not_fraction_needs_both_larger_clean_sets_above_the_margin(clean, expected) -> None:
    finding = dose.analyse(dose_cells(SATURATING, clean=clean, spread=0.1), PARAMETERS).findings[2]
    assert finding.verdict == expected
