"""The `threshold` rule (v2) gives each of its verdicts on synthetic cells."""

from __future__ import annotations

import polars as pl
import pytest

from ecosystem.experiments import load_experiment
from experiments import threshold
from tests.rules import SEEDS, cells, verdicts

PARAMETERS = load_experiment("threshold").parameters
WEIGHTS = (0.125, 0.25, 0.5, 1.0)
RADIUS = {"ring": 2.0, "complete": 6.0}
GAMMA = 0.5  # recoveries ÷ infected node-steps in every run


def threshold_cells(onsets: dict[str, float | list[float | None] | None], beta: dict[str, float | None]):
    """Both graphs at every weight: a series (graph, seed) is infected from its onset weight on (None: never; a list:
    one onset per seed), and every run's fit has the graph's beta and GAMMA."""
    groups = [
        (
            {"topology.name": graph, "topology.edge_weight": weight},
            {
                "beta": beta[graph],
                "recoveries": GAMMA * 100,
                "infected_steps": 100.0,
                "unweighted_radius": RADIUS[graph],
            },
        )
        for graph in RADIUS
        for weight in WEIGHTS
    ]
    per_seed = {graph: value if isinstance(value, list) else [value] * len(SEEDS) for graph, value in onsets.items()}
    onset = pl.DataFrame(
        [{"topology.name": graph, "seed": seed, "onset": per_seed[graph][seed]} for graph in RADIUS for seed in SEEDS],
        schema={"topology.name": pl.String, "seed": pl.Int64, "onset": pl.Float64},
    )
    return (
        cells(groups)
        .join(onset, on=["topology.name", "seed"])
        .with_columns(
            infected_share_peak=pl.when(pl.col("topology.edge_weight") >= pl.col("onset")).then(0.5).otherwise(0.0)
        )
        .drop("onset")
    )


# w* = GAMMA / (beta · λ₁): with beta 1, 0.25 on the ring and 0.083 on the complete graph; with beta 0.1, 2.5 and 0.83
@pytest.mark.parametrize(
    ("onsets", "beta", "expected"),
    [
        ({"ring": 0.25, "complete": 0.125}, {"ring": 1.0, "complete": 1.0}, "holds"),
        ({"ring": None, "complete": 0.125}, {"ring": 0.1, "complete": 1.0}, "holds"),  # no onset: w* above 1/2
        ({"ring": 0.25, "complete": 0.125}, {"ring": 1.0, "complete": None}, "holds under conditions"),  # no fit
        ({"ring": 0.125, "complete": 0.125}, {"ring": 0.1, "complete": 0.1}, "does not hold"),
        ({"ring": 0.25, "complete": 0.125}, {"ring": 1.0, "complete": 0.1}, "inconclusive"),  # one agrees, one not
        ({"ring": 0.25, "complete": 0.125}, {"ring": None, "complete": None}, "inconclusive"),  # no fit at all
    ],
)
def test_the_crossing_rule(onsets, beta, expected) -> None:
    finding = threshold.analyse(threshold_cells(onsets, beta), PARAMETERS).findings[0]
    assert finding.verdict == expected
    assert (finding.p_value is None) == (expected == "inconclusive")


def test_the_predicted_threshold_pools_the_runs_of_a_graph() -> None:
    frame = threshold_cells({"ring": 0.25, "complete": 0.125}, dict.fromkeys(RADIUS, 1.0))
    analysis = threshold.analyse(frame, PARAMETERS)
    ring = analysis.findings[0].figures["ring: predicted w*"]
    assert ring.mean == pytest.approx(GAMMA / (1.0 * RADIUS["ring"]), rel=0.02)
    assert ring.low < ring.mean < ring.high and (ring.seeds, ring.bases) == (60, 3)


ALTERNATING = [0.125 if seed % 2 else 0.5 for seed in SEEDS]


@pytest.mark.parametrize(
    ("onsets", "expected"),
    [
        ({"ring": 0.5, "complete": 0.125}, "holds"),
        ({"ring": None, "complete": 0.25}, "holds"),  # the ring never infected: its onset is later
        ({"ring": 0.125, "complete": 0.5}, "does not hold"),  # reversed
        ({"ring": 0.25, "complete": 0.25}, "does not hold"),  # the same onsets
        ({"ring": 0.25, "complete": ALTERNATING}, "inconclusive"),
        ({"ring": 0.125, "complete": 0.125}, "inconclusive"),  # both at the smallest weight: order unknown
        ({"ring": None, "complete": None}, "inconclusive"),  # both censored: order unknown
    ],
)
def test_the_scaling_rule(onsets, expected) -> None:
    analysis = threshold.analyse(threshold_cells(onsets, dict.fromkeys(RADIUS, 1.0)), PARAMETERS)
    assert verdicts(analysis)[1] == expected
    assert (analysis.findings[1].p_value is None) == (expected == "inconclusive")


def test_a_series_never_infected_is_censored_not_averaged() -> None:
    onsets = {"ring": [None] * 8 + [0.25] * 7, "complete": [None] * 7 + [0.25] * 8}
    table = threshold.analyse(threshold_cells(onsets, dict.fromkeys(RADIUS, 1.0)), PARAMETERS).tables[0].frame
    onset = dict(zip(table["graph"], table["observed onset m"], strict=True))
    assert onset["ring"] == "none: median beyond 1 (7 of 15 series infected by w=1)"
    assert onset["complete"] == "0.25 (8 of 15 series infected by w=1)"
