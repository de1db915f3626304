"""The `accumulate` rule (v2) gives each of its verdicts on synthetic cells."""

from __future__ import annotations

import pytest

from ecosystem.experiments import load_experiment
from experiments import accumulate
from tests.rules import cells

PARAMETERS = load_experiment("accumulate").parameters


def arm_cells(area: dict[str, float], excess: dict[str, float], spread: float):
    """Both arms: each arm's infected-share area and final excess refusal loss over its twin (twin at 0.9)."""
    groups = [
        (
            {"training.received": mode},
            {
                "infected_share_area": area[mode],
                "infected_share_peak": 0.5,
                "infected_share_final": 0.2,
                "twin_final_mean_refusal": 0.9,
                "final_mean_refusal": 0.9 - excess[mode],
                "eroded_share_final": 0.1,
                "helpfulness_retained": 1.0,
            },
        )
        for mode in ("replace", "accumulate")
    ]
    return cells(groups, spread)


def both(accumulate_value: float, replace_value: float) -> dict[str, float]:
    return {"accumulate": accumulate_value, "replace": replace_value}


@pytest.mark.parametrize(
    ("area", "spread", "expected"),
    [
        (both(0.5, 2.0), 0.2, "holds"),
        (both(3.0, 1.0), 0.2, "does not hold"),  # accumulation spreads infection further
        (both(1.0, 1.05), 0.1, "does not hold"),  # within ±0.5
        (both(1.0, 1.5), 2.0, "inconclusive"),
    ],
)
def test_the_bounding_rule(area, spread, expected) -> None:
    finding = accumulate.analyse(arm_cells(area, both(0.1, 0.1), spread), PARAMETERS).findings[0]
    assert finding.verdict == expected
    assert (finding.p_value is None) == (expected == "inconclusive")
    [difference] = finding.figures.values()
    assert difference.bases == 3


@pytest.mark.parametrize(
    ("excess", "spread", "expected"),
    [
        (both(0.3, 0.05), 0.02, "holds"),
        (both(0.0, 0.3), 0.02, "does not hold"),  # accumulation recovers better
        (both(0.1, 0.1), 0.01, "does not hold"),  # within ±0.05
        (both(0.2, 0.25), 0.5, "inconclusive"),
    ],
)
def test_the_entrenching_rule(excess, spread, expected) -> None:
    finding = accumulate.analyse(arm_cells(both(1.0, 1.0), excess, spread), PARAMETERS).findings[1]
    assert finding.verdict == expected
    assert (finding.p_value is None) == (expected == "inconclusive")
    [difference] = finding.figures.values()
    assert difference.mean == pytest.approx(excess["accumulate"] - excess["replace"], abs=spread)
