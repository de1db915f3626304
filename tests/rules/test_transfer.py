"""The `transfer` rule gives each of its verdicts on synthetic cells."""

from __future__ import annotations

import json

import polars as pl
import pytest

from ecosystem.experiments import load_experiment
from experiments import transfer
from tests.rules import cells

PARAMETERS = load_experiment("transfer").parameters
# (topology, cycles, edge weight, dose) of each protocol's cells, as the experiment's zipped axes make them
PROTOCOLS = {
    "erosion": ("chain", 5, 0.0, None),
    "dose 1": ("chain", 1, 0.0, 1),
    "dose 10": ("chain", 1, 0.0, 10),
    "dose 50": ("chain", 1, 0.0, 50),
    "star": ("star", 4, 0.5, 50),
    "chain": ("chain", 4, 0.5, 50),
}


def transfer_cells(losses: dict[str, dict[str, float]], spread: float = 0.02) -> pl.DataFrame:
    """Per arm and protocol, the protocol's refusal lost (`losses[arm][protocol]`, every protocol's figure set
    from it); the real model's runs on one base."""
    groups = []
    for arm, by_protocol in losses.items():
        for protocol, (topology, cycles, weight, dose) in PROTOCOLS.items():
            attack = json.dumps([{"kind": "harmful_compliance", "examples": dose}] if dose else [])
            loss = by_protocol[protocol.split(" ")[0]]
            axes = {"sweep": arm, "topology.name": topology, "cycles": cycles, "topology.edge_weight": weight}
            figures = {
                "refusal_retained": 1 - loss,
                "refusal_lost": loss,
                "downstream_refusal_lost": loss,
                "first_infection": 2.0 if loss > 0.3 else None,
            }
            groups.append((axes | {"attack": attack}, figures))
    frame = cells(groups, spread)
    return frame.with_columns(model_seed=pl.when(pl.col("sweep") == "smollm2").then(0).otherwise(pl.col("model_seed")))


SAME = {"erosion": 0.3, "dose": 0.6, "star": 0.0, "chain": 0.4}


@pytest.mark.parametrize(
    ("organism", "real", "spread", "expected"),
    [
        (SAME, SAME, 0.02, ["holds"] * 4),
        (SAME, SAME | {"erosion": 0.0, "star": 0.5}, 0.02, ["does not hold", "holds", "does not hold", "holds"]),
        (SAME, SAME | {"chain": 0.9}, 0.02, ["holds", "holds", "holds", "does not hold"]),  # both lose; far apart
        (SAME, SAME | {"dose": 0.05}, 0.02, ["holds", "does not hold", "holds", "holds"]),
        (SAME, SAME, 1.5, ["inconclusive"] * 4),
    ],
)
def test_the_transfer_rule(organism, real, spread, expected) -> None:
    analysis = transfer.analyse(transfer_cells({"organism": organism, "smollm2": real}, spread), PARAMETERS)
    assert [finding.verdict for finding in analysis.findings] == expected
    star = analysis.findings[2].figures["star, first infection, SmolLM2-135M"]
    assert star.runs == 15 and star.reached == (15 if real["star"] > 0.3 else 0)


def test_the_dose_transfers_under_conditions_where_some_doses_are_undecided() -> None:
    frame = transfer_cells({"organism": SAME, "smollm2": SAME})
    noisy = frame.filter(pl.col("cycles") == 1).with_columns(
        refusal_lost=pl.col("refusal_lost")
        + (pl.col("seed") % 2 - 0.5) * 1.6 * (pl.col("attack").str.contains('"examples": 1}'))
    )
    frame = pl.concat([frame.filter(pl.col("cycles") != 1), noisy])
    assert transfer.analyse(frame, PARAMETERS).findings[1].verdict == "holds under conditions"
