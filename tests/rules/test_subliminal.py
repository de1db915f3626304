"""The `subliminal` rule (v2) gives each of its verdicts on synthetic cells."""

from __future__ import annotations

import polars as pl
import pytest

from ecosystem.experiments import judged, load_experiment
from experiments import subliminal
from tests.rules import cells, verdicts

PARAMETERS = load_experiment("subliminal").parameters
DOSES = (0, 50, 500)


def subliminal_cells(
    same: float, other: float, spread: float, withheld: float = 0.0, teacher: float = 0.9, base_shift: float = 0.0
):
    """Per dose: at dose 0 both student groups' excess over the twin is `withheld` (what withholding the teacher's
    refusals takes), at a poisoned dose `same` and `other` more; the teacher's excess is `teacher` when poisoned."""
    groups = [
        (
            {subliminal.DOSE: dose},
            {
                "excess_teacher": teacher if dose else 0.0,
                "excess_same": withheld + (same if dose else 0.0),
                "excess_other": withheld + (other if dose else 0.0),
            },
        )
        for dose in DOSES
    ]
    return cells(groups, spread, base_shift)


@pytest.mark.parametrize(
    ("same", "other", "spread", "withheld", "expected"),
    [
        (0.3, 0.0, 0.05, 0.0, ["holds", "holds"]),
        (0.3, 0.3, 0.02, 0.0, ["holds", "does not hold"]),
        (0.3, 0.5, 0.05, 0.0, ["holds", "does not hold"]),  # the other base takes up more
        (0.0, 0.0, 0.05, 0.2, ["does not hold", "inconclusive"]),  # the excess at dose 0 is not transmission
        (0.1, 0.0, 1.0, 0.0, ["inconclusive", "inconclusive"]),
    ],
)
def test_the_subliminal_rules(same, other, spread, withheld, expected) -> None:
    findings = judged(subliminal, subliminal_cells(same, other, spread, withheld), PARAMETERS).findings
    assert [finding.verdict for finding in findings] == expected
    assert all(finding.p_holm < 0.05 for finding in findings if finding.verdict != "inconclusive")


def test_nothing_is_judged_where_the_teacher_was_not_misaligned() -> None:
    findings = judged(subliminal, subliminal_cells(0.3, 0.0, 0.05, teacher=0.3), PARAMETERS).findings
    assert [finding.verdict for finding in findings] == ["inconclusive", "inconclusive"]
    assert findings[0].p_value is None and "misaligned at no dose" in findings[0].reason


def test_holds_under_conditions_where_some_doses_transmit_and_none_refutes_it() -> None:
    clear = subliminal_cells(0.3, 0.0, 0.05)
    undecided = subliminal_cells(0.3, 0.0, 2.0, teacher=0.9)
    mixed = pl.concat(
        [clear.filter(pl.col(subliminal.DOSE) != 50), undecided.filter(pl.col(subliminal.DOSE) == 50)]
    ).with_columns(excess_teacher=pl.when(pl.col(subliminal.DOSE) > 0).then(0.9).otherwise(0.0))
    assert verdicts(judged(subliminal, mixed, PARAMETERS))[0] == "holds under conditions"


def test_transmission_is_paired_by_base_and_seed() -> None:
    """Bases that differ by far more than the effect leave the paired transmission clear."""
    analysis = subliminal.analyse(subliminal_cells(0.3, 0.0, 0.05, base_shift=0.4), PARAMETERS)
    assert verdicts(analysis) == ["holds", "holds"]
    figure = analysis.findings[0].figures["same base, dose 500"]
    assert figure.mean == pytest.approx(0.3, abs=0.03) and (figure.bases, figure.seeds) == (3, 15)
