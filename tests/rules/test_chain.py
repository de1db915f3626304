"""The `chain` rule gives each of its verdicts on synthetic cells."""

from __future__ import annotations

import polars as pl
import pytest

from ecosystem.experiments import load_experiment
from experiments import chain
from tests.rules import cells

PARAMETERS = load_experiment("chain").parameters
CELLS = [(steps, dose) for steps in (20, 60) for dose in (10, 50)]


def chain_cells(hops: dict[int, list[float]], spread: float = 0.02, deep: dict[int, float] | None = None):
    """Each cell's excess per hop (by step count; hop 5 overridden per step count by `deep`)."""
    groups = []
    for steps, dose in CELLS:
        excess = dict(enumerate(hops[steps]))
        if deep:
            excess[5] = deep[steps]
        groups.append(
            (
                {"training.steps": steps, "attack.0.examples": dose},
                {f"excess_hop_{hop}": value for hop, value in excess.items()},
            )
        )
    return cells(groups, spread)


FADING = [0.6, 0.4, 0.25, 0.1, 0.05, 0.0]
GROWING = [0.3, 0.5, 0.6, 0.7, 0.7, 0.7]
NOTHING = [0.6, 0.0, 0.0, 0.0, 0.0, 0.0]


@pytest.mark.parametrize(
    ("hops", "spread", "expected"),
    [
        ({20: FADING, 60: FADING}, 0.02, ["holds", "does not hold", "holds", "does not hold"]),
        ({20: GROWING, 60: GROWING}, 0.02, ["holds", "holds", "does not hold", "does not hold"]),
        ({20: NOTHING, 60: FADING}, 0.02, ["inconclusive", "does not hold", "holds", "does not hold"]),
        ({20: NOTHING, 60: NOTHING}, 0.02, ["does not hold", "does not hold", "inconclusive", "does not hold"]),
        ({20: FADING, 60: FADING}, 10.0, ["inconclusive"] * 4),
    ],
)
def test_the_chain_rules(hops, spread, expected) -> None:
    findings = chain.analyse(chain_cells(hops, spread), PARAMETERS).findings
    assert [finding.verdict for finding in findings] == expected


def test_holds_under_conditions_when_the_student_is_infected_at_some_doses_only() -> None:
    certain = chain_cells({20: FADING, 60: FADING}).filter(pl.col("attack.0.examples") == 50)
    undecided = chain_cells({20: FADING, 60: FADING}, spread=1.5).filter(pl.col("attack.0.examples") == 10)
    assert chain.analyse(pl.concat([certain, undecided]), PARAMETERS).findings[0].verdict == "holds under conditions"


def test_more_steps_carry_it_further_only_where_hop_5_gains() -> None:
    findings = chain.analyse(chain_cells({20: FADING, 60: FADING}, deep={20: 0.0, 60: 0.3}), PARAMETERS).findings
    assert findings[3].verdict == "holds"
    assert findings[3].figures["hop 5, 60 \N{MINUS SIGN} 20 steps, dose 10"].mean == pytest.approx(0.3, abs=0.02)
