"""The `coupling` rule (v2) gives each of its verdicts on synthetic cells."""

from __future__ import annotations

import pytest

from ecosystem.experiments import load_experiment
from experiments import coupling
from tests.rules import cells, verdicts

PARAMETERS = load_experiment("coupling").parameters


def grid_cells(areas: dict[tuple[float, float], float], spread: float):
    """The 2-by-2 grid: each (edge weight, harmful share) cell's infected-share area."""
    groups = [
        (
            {"topology.edge_weight": weight, "traffic.harmful_fraction": share},
            {
                "infected_share_area": area,
                "infected_share_peak": 0.5,
                "infected_share_final": 0.3,
                "eroded_share_final": 0.1,
                "twin_final_mean_refusal": 0.9,
            },
        )
        for (weight, share), area in areas.items()
    ]
    return cells(groups, spread)


def grid(weak: float, more_harmful: float, heavier: float, strong: float) -> dict[tuple[float, float], float]:
    """Areas at (0.5, 0.2), (0.5, 0.4), (1.0, 0.2) and (1.0, 0.4)."""
    return {(0.5, 0.2): weak, (0.5, 0.4): more_harmful, (1.0, 0.2): heavier, (1.0, 0.4): strong}


@pytest.mark.parametrize(
    ("areas", "spread", "expected"),
    [
        (grid(3.0, 1.0, 3.0, 1.0), 0.2, ["holds", "holds", "does not hold"]),  # the harmful share protects
        (grid(3.0, 3.0, 1.0, 1.0), 0.2, ["holds", "does not hold", "holds"]),  # the edge weight protects
        (grid(1.0, 3.0, 1.0, 3.0), 0.2, ["does not hold", "does not hold", "does not hold"]),  # more spread
        (grid(3.0, 1.0, 2.7, 2.7), 1.0, ["does not hold", "holds under conditions", "inconclusive"]),
        (grid(3.0, 1.0, 1.0, 3.0), 0.2, ["does not hold", "inconclusive", "inconclusive"]),  # opposite effects
        (grid(2.0, 2.0, 2.0, 2.0), 3.0, ["inconclusive"] * 3),
    ],
)
def test_the_coupling_rules(areas, spread, expected) -> None:
    analysis = coupling.analyse(grid_cells(areas, spread), PARAMETERS)
    assert verdicts(analysis) == expected
    for finding in analysis.findings:
        assert (finding.p_value is None) == (finding.verdict == "inconclusive")
    assert set(analysis.findings[1].figures) == {
        "area difference, edge weight 0.5",
        "area difference, edge weight 1",
    }
