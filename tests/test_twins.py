"""The poison-free twin: the same run with its attacks removed, exact where the poison cannot have reached,
equal to an independent run without attacks; infection measured against it; the 2x2 of a defended study."""

from __future__ import annotations

from pathlib import Path

import polars as pl
import pytest

from ecosystem import run
from ecosystem.analysis import NODE_FIGURES
from ecosystem.results import RunDirectory
from tests.helpers import small_config

CHAIN = [
    "topology.name=chain",
    "topology.nodes=6",
    "cycles=5",
    "hosting.group_size=3",  # the attacked node shares its batches with nodes 1 and 2
    "evaluation.poison_control=true",
    "evaluation.responses=true",  # a borrowed node-cycle's responses are the run's
    "attack.0.start=2",
]


@pytest.fixture(scope="module")
def chain(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A chain of 6 (data flows 0 → 1 → ... → 5), node 0 poisoned from cycle 2, and its twin computing every
    node-cycle itself (borrowing none from the run), so that the comparisons below compare computations."""
    out = tmp_path_factory.mktemp("twins") / "chain"
    run(small_config(*CHAIN, "evaluation.twin_borrows=false"), out)
    return out


def first_difference(run_metrics: pl.DataFrame, twin_metrics: pl.DataFrame) -> dict[int, int | None]:
    """Per node, the first cycle at which any figure its weights decide differs from its twin's, bit for bit."""
    joined = run_metrics.join(twin_metrics, on=["cycle", "node"], suffix="_twin")
    differs = pl.any_horizontal(pl.col(f).ne_missing(pl.col(f"{f}_twin")) for f in NODE_FIGURES)
    firsts = dict(joined.filter(differs).group_by("node").agg(pl.col("cycle").min()).iter_rows())
    return {node: firsts.get(node) for node in sorted(run_metrics["node"].unique())}


def test_a_node_differs_from_its_twin_exactly_when_the_poison_can_first_reach_it(chain) -> None:
    directory = RunDirectory(chain)
    twin = directory.twin
    assert twin.read_manifest().forked_after == 1  # forked from the run's checkpoint before the first poison
    firsts = first_difference(directory.read_metrics(), twin.read_metrics())
    assert firsts == {0: 2, 1: 3, 2: 4, 3: 5, 4: None, 5: None}  # node h first at cycle 2 + h
    assert directory.read_summary()["causal_horizon_breaches"] == 0


def test_the_twin_equals_an_independent_run_without_attacks(chain, tmp_path) -> None:
    independent = run(small_config(*CHAIN, "attack=[]"), tmp_path / "clean")
    twin = RunDirectory(chain).twin
    assert twin.read_metrics().equals(independent.metrics)
    assert twin.read_edges().equals(RunDirectory(independent.path).read_edges())


def test_a_twin_that_borrows_from_its_run_equals_one_that_computes_everything(chain, tmp_path) -> None:
    """Node h computes as in the run until cycle 2 + h: the twin takes those node-cycles from the run (0 + 5 + 4
    + 3 + 2 of cycles 1 to 5; cycle 1 is before the fork) and trains and evaluates the rest, in groups
    without the borrowed nodes (node 0 alone at cycle 2, where its group of 3 trained together in the run)."""
    borrowing = RunDirectory(run(small_config(*CHAIN), tmp_path / "borrowing").path)
    computing = RunDirectory(chain)
    assert borrowing.read_metrics().equals(computing.read_metrics())
    assert borrowing.twin.read_metrics().equals(computing.twin.read_metrics())
    assert borrowing.twin.read_edges().equals(computing.twin.read_edges())
    assert borrowing.twin.read_responses().equals(computing.twin.read_responses())
    assert borrowing.twin.read_manifest().borrowed_node_cycles == 5 + 4 + 3 + 2
    assert computing.twin.read_manifest().borrowed_node_cycles == 0


def test_borrowing_is_exact_with_accumulated_data_a_sharing_attack_and_a_defense(tmp_path) -> None:
    """What a lent node carries (its accumulated pairs, its defense's records), an attack that changes what its
    target shares from cycle 1 (the horizon one cycle nearer), and a control run's twin, which borrows too."""
    study = [
        "topology.name=chain",
        "topology.nodes=4",
        "cycles=3",
        "hosting.group_size=2",
        "evaluation.poison_control=true",
        "training.received=accumulate",
        'attack.0.kind="benign_only"',
        'defense=[{kind="quarantine", threshold=0.9}]',
    ]
    borrowing = RunDirectory(run(small_config(*study), tmp_path / "borrowing").path)
    computing = RunDirectory(run(small_config(*study, "evaluation.twin_borrows=false"), tmp_path / "computing").path)
    for twin, full in ((borrowing.twin, computing.twin), (borrowing.control.twin, computing.control.twin)):
        assert twin.read_metrics().equals(full.read_metrics())
        assert twin.read_edges().equals(full.read_edges())
        # hops 2 and 3 at cycle 1 (the attack acts from cycle 1, and its target's neighbour at once), hop 3 at 2
        assert (twin.read_manifest().borrowed_node_cycles, full.read_manifest().borrowed_node_cycles) == (3, 0)


def test_infection_is_recorded_against_the_twin(chain) -> None:
    directory = RunDirectory(chain)
    metrics, twin = directory.read_metrics(), directory.twin.read_metrics()
    assert metrics["twin_refusal_rate"].equals(twin["refusal_rate"].alias("twin_refusal_rate"))
    excess = metrics["twin_refusal_rate"] - metrics["refusal_rate"]
    assert (metrics["excess_refusal_loss"] == excess).all()
    attacked = metrics.filter(pl.col("node") == 0, pl.col("cycle") == 5).row(0, named=True)
    assert attacked["excess_refusal_loss"] >= 0.5 and attacked["infected"]  # the poison took its refusal
    summary = directory.read_summary()
    assert {"infected_share_final", "eroded_share_final", "twin_final_mean_refusal"} <= summary.keys()
    tree = directory.read_transmission()
    assert all(infector == node - 1 for node, infector in tree.select("node", "infector").iter_rows())


def test_a_run_without_an_attack_writes_no_twin(tmp_path) -> None:
    result = run(small_config("attack=[]", "cycles=1", "evaluation.poison_control=true"), tmp_path / "clean")
    assert not RunDirectory(result.path).twin.path.exists()
    assert result.metrics["twin_refusal_rate"].is_null().all()
    assert "infected_share_final" not in result.summary


def test_a_defended_study_writes_the_four_arms_and_the_clean_cost(tmp_path) -> None:
    config = small_config("evaluation.poison_control=true", "cycles=1", 'defense=[{kind="rehearsal"}]')
    result = run(config, tmp_path / "defended")
    directory = RunDirectory(result.path)
    arms = [directory, directory.control, directory.twin, directory.control.twin]
    assert all(arm.read_manifest().status == "complete" for arm in arms)
    assert not directory.twin.control.path.exists()  # the clean undefended arm is control/twin

    def final_helpfulness(arm: RunDirectory) -> float:
        metrics = arm.read_metrics()
        return metrics.filter(pl.col("cycle") == metrics["cycle"].max())["helpfulness"].mean()

    cost = final_helpfulness(directory.control.twin) - final_helpfulness(directory.twin)
    assert result.summary["defense"]["clean_helpfulness_lost"] == cost
