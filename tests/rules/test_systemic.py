"""The `systemic` rule (v2) gives each of its verdicts on synthetic cells."""

from __future__ import annotations

import polars as pl
import pytest

from ecosystem.experiments import load_experiment
from experiments import systemic
from tests.rules import cells, verdicts

PARAMETERS = load_experiment("systemic").parameters
TEN = ["ring", "barabasi_albert", "complete", "star"]


def systemic_cells(time: dict[str, int | None], peak: dict[str, float], area: dict[str, float], spread: float):
    """Both parts: each graph's time to systemic infection (None: never), peak share and area."""
    groups = [
        (
            {"sweep": part, "topology.name": graph, "nodes": nodes},
            {
                "time_to_systemic_infection": time.get(graph),
                "infected_share_peak": peak[graph],
                "infected_share_area": area[graph],
                "infected_share_final": peak[graph],
                "eroded_share_final": 0.1,
                "cycles": 10,
            },
        )
        for part, nodes, graphs in (("ten", 10, TEN), ("fifty", 50, ["barabasi_albert", "ring"]))
        for graph in graphs
    ]
    frame = cells(groups, spread)
    return frame.with_columns(frame["time_to_systemic_infection"].cast(pl.Float64).round().cast(pl.Int64))


EVERY = dict.fromkeys(TEN, 3)
HIGH, LOW = dict.fromkeys(TEN, 0.8), dict.fromkeys(TEN, 0.2)
AREA = dict.fromkeys(TEN, 3.0)


@pytest.mark.parametrize(
    ("time", "peak", "spread", "expected"),
    [
        (EVERY, HIGH, 0.05, "holds"),
        ({"complete": 3, "barabasi_albert": 4}, HIGH, 0.05, "holds under conditions"),
        ({}, LOW, 0.05, "does not hold"),
        ({}, dict.fromkeys(TEN, 0.45), 0.3, "inconclusive"),  # no run systemic, but the peaks may reach 0.5
        ({"complete": 8}, HIGH, 0.05, "inconclusive"),  # systemic only later than cycle 5
    ],
)
def test_the_systemic_rule(time, peak, spread, expected) -> None:
    findings = systemic.analyse(systemic_cells(time, peak, AREA, spread), PARAMETERS).findings
    assert findings[0].verdict == expected
    if expected != "inconclusive":
        assert findings[0].p_value < 0.05
    time_figure = findings[0].figures["complete: time to systemic infection"]
    assert (time_figure.reached, time_figure.runs) == ((15, 15) if "complete" in time else (0, 15))


def test_the_systemic_rule_at_50_nodes_is_judged_on_its_own_part() -> None:
    analysis = systemic.analyse(systemic_cells({"barabasi_albert": 2}, HIGH, AREA, 0.05), PARAMETERS)
    assert [finding.verdict for finding in analysis.findings[:2]] == ["holds under conditions"] * 2
    assert analysis.findings[1].figures["scale-free (hub attacked): share of runs systemic by cycle 5"].seeds == 15


@pytest.mark.parametrize(
    ("complete_area", "spread", "expected"),
    [(1.0, 0.2, "holds"), (5.0, 0.2, "does not hold"), (3.1, 0.1, "does not hold"), (3.0, 4.0, "inconclusive")],
)
def test_the_dilution_rule(complete_area, spread, expected) -> None:
    analysis = systemic.analyse(systemic_cells({}, LOW, AREA | {"complete": complete_area}, spread), PARAMETERS)
    assert verdicts(analysis)[2] == expected
