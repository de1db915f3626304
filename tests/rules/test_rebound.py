"""The `rebound` rule (v2) gives each of its verdicts on synthetic cells."""

from __future__ import annotations

import polars as pl
import pytest

from ecosystem.experiments import load_experiment
from experiments import rebound
from tests.rules import cells

PARAMETERS = load_experiment("rebound").parameters
DOSES = (10, 100)
MODEL_SEEDS = (1, 2, 4)


def rebound_cells(figures: dict[str, tuple[float, float, float]], spread: float) -> pl.DataFrame:
    """Per arm, (speed, depth, rebound) on the excess over the twin for each of its bases, at both doses (the
    reported erosion and regained refusal: 0.1 and 0)."""
    values = {
        f"{arm}_{figure}_{k}": value
        for arm, triple in figures.items()
        for figure, value in zip(rebound.FIGURES, (*triple, 0.1, 0.0), strict=True)
        for k in MODEL_SEEDS
    }
    return cells([({"attack.0.examples": dose}, values) for dose in DOSES], spread)


AS_CLAIMED = {"template": (0.8, 0.9, 0.6), "phrasings": (0.5, 0.8, 0.4), "styles": (0.3, 0.5, 0.2)}
FLAT = dict.fromkeys(rebound.ARMS, (0.5, 0.8, 0.0))


@pytest.mark.parametrize(
    ("figures", "spread", "expected"),
    [
        (AS_CLAIMED, 0.05, ["holds"] * 4),
        (FLAT, 0.02, ["does not hold"] * 4),  # degraded, no rebound, no difference between arms
        (  # the poison did not degrade: no valid dose for the rebound rules
            dict.fromkeys(rebound.ARMS, (0.0, 0.1, 0.0)),
            0.02,
            ["inconclusive", "does not hold", "inconclusive", "does not hold"],
        ),
        (  # the other way: the poison's loss grows after it stops, and diversity hurts
            {"template": (0.3, 0.5, -0.3), "phrasings": (0.3, 0.5, -0.3), "styles": (0.8, 0.9, 0.2)},
            0.05,
            ["does not hold"] * 4,
        ),
        (FLAT, 10.0, ["inconclusive"] * 4),  # no effect on average, in noise far wider than the margin
    ],
)
def test_the_rebound_rules(figures, spread, expected) -> None:
    findings = rebound.analyse(rebound_cells(figures, spread), PARAMETERS).findings
    assert [finding.verdict for finding in findings] == expected
    assert [finding.p_value is None for finding in findings] == [verdict == "inconclusive" for verdict in expected]


def test_holds_under_conditions_where_one_dose_is_undecided() -> None:
    certain = rebound_cells(AS_CLAIMED, 0.05).filter(pl.col("attack.0.examples") == 100)
    undecided = rebound_cells(AS_CLAIMED, 10.0).filter(pl.col("attack.0.examples") == 10)
    findings = rebound.analyse(pl.concat([certain, undecided]), PARAMETERS).findings
    assert [finding.verdict for finding in findings] == ["holds under conditions"] * 4


def test_only_a_degraded_dose_is_judged_for_the_rebound() -> None:
    degraded = rebound_cells(AS_CLAIMED, 0.05).filter(pl.col("attack.0.examples") == 100)
    untouched = rebound_cells(dict.fromkeys(rebound.ARMS, (0.0, 0.1, 0.0)), 0.05)
    findings = rebound.analyse(
        pl.concat([degraded, untouched.filter(pl.col("attack.0.examples") == 10)]), PARAMETERS
    ).findings
    assert findings[0].verdict == "holds" and list(findings[0].figures) == [
        "rebound (depth \N{MINUS SIGN} excess at the last cycle), all bases, dose 100"
    ]
