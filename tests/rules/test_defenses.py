"""The `defenses` rule gives each of its verdicts on synthetic cells."""

from __future__ import annotations

import json

import pytest

from ecosystem.experiments import load_experiment
from experiments import defenses
from tests.rules import cells

PARAMETERS = load_experiment("defenses").parameters
DEFENSES = {
    "guard_filter": [{"kind": "guard_filter"}],
    "rehearsal": [{"kind": "rehearsal", "every": 1}],
    "anchor": [{"kind": "anchor"}],
    "quarantine": [{"kind": "quarantine"}],
    "triad": [{"kind": "anchor"}, {"kind": "quarantine"}, {"kind": "rehearsal", "every": 1}],
}
HELPFULNESS = 0.5  # the clean undefended arm's


def defense_cells(
    protection: dict[str, float], penalty: dict[str, float], infection: float = 0.5, spread: float = 0.005
):
    """Per defense its protection and its clean capability penalty (a share of HELPFULNESS), against an
    undefended infection the same in every cell."""
    groups = [
        (
            {"defense": json.dumps(value)},
            {
                "undefended_infection": infection,
                "clean_helpfulness": HELPFULNESS,
                "defense_protection": protection[label],
                "defense_clean_helpfulness_lost": penalty.get(label, 0.0) * HELPFULNESS,
                "defense_clean_over_refusal_gained": 0.0,
            },
        )
        for label, value in DEFENSES.items()
    ]
    return cells(groups, spread)


AS_CLAIMED = (
    {"guard_filter": 0.1, "rehearsal": 0.48, "anchor": 0.4375, "quarantine": 0.2, "triad": 0.6},
    {"guard_filter": 0.03, "rehearsal": 0.4, "anchor": 0.2},
)
CONTRARY = (
    {"guard_filter": 0.1, "rehearsal": 0.25, "anchor": 0.25, "quarantine": 0.2, "triad": 0.25},
    {"guard_filter": 0.0, "rehearsal": 0.1, "anchor": 0.0},
)


@pytest.mark.parametrize(
    ("frame", "expected"),
    [
        (defense_cells(*AS_CLAIMED), ["holds"] * 4),
        (defense_cells(*CONTRARY), ["does not hold"] * 4),
        (defense_cells(*AS_CLAIMED, infection=0.0, spread=0.3), ["inconclusive"] * 4),
    ],
)
def test_the_defense_rules(frame, expected) -> None:
    findings = defenses.analyse(frame, PARAMETERS).findings
    assert [finding.verdict for finding in findings] == expected
    assert all((finding.p_value is None) == (finding.verdict == "inconclusive") for finding in findings)


def test_an_interval_that_only_touches_the_claimed_range_does_not_hold_it() -> None:
    # v1 let an interval straddling the range's end hold it; a penalty of 0.05 ± 0.03 is not inside [0.01, 0.05]
    frame = defense_cells(*AS_CLAIMED[:1], {**AS_CLAIMED[1], "guard_filter": 0.05}, spread=0.1)
    finding = defenses.analyse(frame, PARAMETERS).findings[1]
    assert finding.verdict == "inconclusive"
    assert finding.figures["capability penalty"].low < 0.05 < finding.figures["capability penalty"].high


def test_retention_is_not_judged_without_infection_but_a_penalty_outside_its_range_refutes_the_row() -> None:
    protection, penalty = AS_CLAIMED
    findings = defenses.analyse(defense_cells(protection, penalty, infection=0.0), PARAMETERS).findings
    assert findings[0].verdict == "inconclusive" and "nothing to retain" in findings[0].reason
    refuted = defenses.analyse(defense_cells(protection, {**penalty, "anchor": 0.5}, infection=0.0), PARAMETERS)
    assert refuted.findings[0].verdict == "does not hold" and refuted.findings[0].p_value < 0.05


def test_the_triad_is_not_judged_where_there_is_no_infection_to_protect_against() -> None:
    finding = defenses.analyse(defense_cells(*CONTRARY, infection=0.0), PARAMETERS).findings[3]
    assert finding.verdict == "inconclusive" and "nothing to protect" in finding.reason


def test_retention_is_the_share_of_the_undefended_infection_prevented() -> None:
    finding = defenses.analyse(defense_cells(*AS_CLAIMED), PARAMETERS).findings[0]
    assert finding.figures["retention"].mean == pytest.approx(0.875, abs=0.02)
    assert finding.figures["capability penalty"].mean == pytest.approx(0.2, abs=0.02)
