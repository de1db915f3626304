"""The `ecosystem_mix` rule (v2) gives each of its verdicts on synthetic cells."""

from __future__ import annotations

import polars as pl
import pytest

from ecosystem.experiments import judged, load_experiment
from experiments import ecosystem_mix
from tests.rules import cells, verdicts

PARAMETERS = load_experiment("ecosystem_mix").parameters
ROBUST = {"star": ([1, 2, 3], [1, 2, 3, 4, 5, 6]), "ring": ([2, 5, 8], [1, 2, 4, 5, 7, 8])}


def mix_cells(control: float, robust: float, others: dict[int, float], spread: float, graphs=ROBUST):
    """Per graph: the control (every unattacked node's excess over its twin is `control`) and each robust share (its
    robust nodes' excess is `robust`, the others' `others[share]`); the attacked node's excess is 0.9."""
    groups = []
    for graph, shares in graphs.items():
        excess = {f"excess_{node}": control for node in range(1, 10)}
        groups.append(({"sweep": graph, ecosystem_mix.ROBUST: []}, {"excess_0": 0.9, **excess}))
        for nodes in shares:
            excess = {f"excess_{node}": robust if node in nodes else others[len(nodes)] for node in range(1, 10)}
            groups.append(({"sweep": graph, ecosystem_mix.ROBUST: nodes}, {"excess_0": 0.9, **excess}))
    return cells(groups, spread)


@pytest.mark.parametrize(
    ("control", "robust", "others", "spread", "expected"),
    [
        (0.6, 0.0, {3: 0.3, 6: 0.1}, 0.05, ["holds"] * 4),  # robust nodes resist and shield the rest, more with more
        (0.6, 0.0, {3: 0.6, 6: 0.6}, 0.05, ["holds", "does not hold", "holds", "does not hold"]),  # no herd effect
        (0.6, 0.6, {3: 0.6, 6: 0.6}, 0.05, ["does not hold", "inconclusive", "does not hold", "inconclusive"]),
        (0.6, 0.0, {3: 0.7, 6: 0.8}, 0.05, ["holds", "does not hold", "holds", "does not hold"]),  # the rest worse off
        (0.02, 0.0, {3: 0.0, 6: 0.0}, 0.02, ["inconclusive"] * 4),  # infection did not spread: no graph counts
        (0.6, 0.5, {3: 0.55, 6: 0.5}, 0.6, ["inconclusive"] * 4),
    ],
)
def test_the_ecosystem_mix_rules(control, robust, others, spread, expected) -> None:
    findings = judged(ecosystem_mix, mix_cells(control, robust, others, spread), PARAMETERS).findings
    assert [finding.verdict for finding in findings] == expected
    assert all(finding.p_holm < 0.05 for finding in findings if finding.verdict != "inconclusive")


def test_holds_under_conditions_where_the_robust_nodes_resist_in_one_graph_and_are_undecided_in_the_other() -> None:
    clear = mix_cells(0.6, 0.0, {3: 0.3, 6: 0.1}, 0.05).filter(pl.col("sweep") == "star")
    undecided = mix_cells(0.6, 0.55, {3: 0.6, 6: 0.6}, 0.5).filter(pl.col("sweep") == "ring")
    assert verdicts(judged(ecosystem_mix, pl.concat([clear, undecided]), PARAMETERS))[0] == "holds under conditions"


def test_only_graphs_where_infection_spread_are_judged() -> None:
    spread = mix_cells(0.6, 0.0, {3: 0.3, 6: 0.1}, 0.05).filter(pl.col("sweep") == "star")
    no_spread = mix_cells(0.0, 0.6, {3: 0.6, 6: 0.6}, 0.02).filter(pl.col("sweep") == "ring")
    analysis = judged(ecosystem_mix, pl.concat([spread, no_spread]), PARAMETERS)
    assert verdicts(analysis) == ["holds"] * 4
    assert list(analysis.findings[0].figures) == ["star, 3 robust", "star, 6 robust"]
    assert analysis.findings[0].figures["star, 3 robust"].mean == pytest.approx(0.6, abs=0.03)
