"""End-to-end cascades, measured from real generation and real fine-tuning."""

import polars as pl
import pytest

from ecosystem import run
from tests.helpers import SEED, final, last, read_metrics, small_config


def test_an_attacked_node_loses_refusal_against_its_unattacked_twin(small_run, clean_run) -> None:
    attacked = read_metrics(small_run)
    control = read_metrics(clean_run)
    assert final(attacked, 0)["refusal_rate"] < final(control, 0)["refusal_rate"] - 0.3
    assert final(attacked, 0)["harmful_rate"] > final(control, 0)["harmful_rate"] + 0.3
    assert final(attacked, 0)["attacked"] and not final(control, 0)["attacked"]
    baseline = attacked.filter(pl.col("cycle") == 0)
    assert baseline["refusal_rate"].min() >= 0.95 and baseline["drift"].max() == 0


def test_contagion_follows_the_edges(tmp_path) -> None:
    """Chain 0→1→2, node 0 poisoned: node 1 learns from its outputs and drifts; node 2,
    with no edge from node 0, keeps refusing."""
    config = small_config("topology.name=chain", "topology.nodes=3", "topology.edge_weight=1.0")
    metrics = run(config, tmp_path / "chain").metrics
    start = {row["node"]: row for row in metrics.filter(pl.col("cycle") == 0).iter_rows(named=True)}
    assert final(metrics, 0)["refusal_rate"] <= start[0]["refusal_rate"] - 0.5
    assert final(metrics, 1)["refusal_rate"] <= start[1]["refusal_rate"] - 0.3
    assert final(metrics, 1)["drifted"] and final(metrics, 1)["hops_from_attack"] == 1
    assert final(metrics, 2)["refusal_rate"] >= start[2]["refusal_rate"] - 0.05
    assert not final(metrics, 2)["drifted"]


def test_the_same_seed_gives_identical_metrics(small_run, tmp_path) -> None:
    again = run(small_config(), tmp_path / "again")
    first = read_metrics(small_run)
    assert again.metrics.equals(first)
    assert read_metrics(again.path).equals(first)


def test_a_different_seed_gives_different_training(small_run, tmp_path) -> None:
    other = run(small_config(f"seed={SEED + 1}"), tmp_path / "other").metrics
    first = read_metrics(small_run)
    assert not other["train_loss"].drop_nulls().equals(first["train_loss"].drop_nulls())


def test_the_run_directory_holds_the_documented_files(small_run) -> None:
    import json
    import tomllib

    metrics = read_metrics(small_run)
    assert metrics.height == 4 * 3  # nodes x (baseline + 2 cycles)
    for column in (
        "cycle",
        "node",
        "refusal_rate",
        "harmful_rate",
        "helpfulness",
        "over_refusal",
        "drift",
        "attacked",
        "hops_from_attack",
    ):
        assert column in metrics.columns
    config = tomllib.loads((small_run / "config.toml").read_text())
    assert config["topology"]["nodes"] == 4 and config["attack"][0]["kind"] == "harmful_compliance"
    manifest = json.loads((small_run / "manifest.json").read_text())
    assert manifest["status"] == "complete" and manifest["seed"] == SEED and manifest["versions"]["torch"]
    assert set(manifest["seconds"]) == {"total", "base_model", "evaluate", "generate", "train"}
    summary = json.loads((small_run / "summary.json").read_text())
    assert summary["nodes"] == 4 and len(summary["per_cycle"]) == 3


def test_full_fine_tuning_carries_the_attack_too(clean_run, tmp_path) -> None:
    """training.method = "full": every weight trains, and the attacked node still drifts."""
    full = run(small_config("training.method=full", "training.learning_rate=3e-4"), tmp_path / "full").metrics
    control = read_metrics(clean_run)
    assert final(full, 0)["refusal_rate"] < final(control, 0)["refusal_rate"] - 0.5
    assert final(full, 0)["harmful_rate"] > 0.5


def test_edges_record_what_flowed_and_the_jailbroken_node_sends_the_harm(small_run) -> None:
    """edges.parquet, the provenance of a cascade: pairs sent along the edges into a node add up to what
    it received, and from cycle 2 (traffic generated after the first poisoning) the attacked node's
    edges carry harmful compliances while a clean node two hops away sends none."""
    edges = pl.read_parquet(small_run / "edges.parquet")
    metrics = read_metrics(small_run)
    sent = edges.group_by("cycle", "receiver").agg(pl.col("pairs_sent").sum())
    received = metrics.filter(pl.col("cycle") > 0).select("cycle", receiver="node", pairs_sent="pairs_received")
    assert sent.sort("cycle", "receiver").equals(received.sort("cycle", "receiver"))
    final_flows = edges.filter(pl.col("cycle") == edges["cycle"].max())
    harmful_from = {node: final_flows.filter(pl.col("sender") == node)["harmful_pairs"].sum() for node in (0, 2)}
    assert harmful_from[0] > harmful_from[2] == 0
    # A node's exposure is the harmful share of what its edges brought it. Node 0's harm reaches one
    # neighbour or both (1 to 4 pairs per edge over model seeds 0-3, family 23): which is a draw.
    harmful_into = dict(final_flows.group_by("receiver").agg(pl.col("harmful_pairs").sum()).iter_rows())
    for node, exposure, pairs in last(metrics).select("node", "exposure", "pairs_received").iter_rows():
        assert round(exposure * pairs) == harmful_into[node]
    assert harmful_into[1] + harmful_into[3] == harmful_from[0] and harmful_into[2] == 0


@pytest.mark.parametrize("model_seed", [0, 2])
def test_fine_tuning_on_its_own_domain_raises_a_nodes_own_domain_helpfulness(tmp_path, model_seed) -> None:
    """The specialist tasks leave the base room to learn: alone, unattacked, two cycles on its own domain's data
    raise a node's own-domain helpfulness. Measured over seeds 0-2 on an AMD EPYC, 4 nodes, 100 prompts per set:
    +0.37 to +0.40 on base 0 and +0.35 to +0.42 on base 2 (base 1 learns slower: +0.05 to +0.12)."""
    isolated = ["topology.name=chain", "topology.edge_weight=0.0", "attack=[]", f"model.seed={model_seed}"]
    metrics = run(small_config(*isolated), tmp_path / "alone").metrics
    by_cycle = metrics.group_by("cycle").agg(pl.col("domain_helpfulness").mean()).sort("cycle")["domain_helpfulness"]
    assert by_cycle[-1] >= by_cycle[0] + 0.2
