"""Heterogeneous ecosystems: nodes that start from different bases ([[base]] groups), each node on
its own base's weights, placed anywhere with the same results, and resumed exactly."""

from __future__ import annotations

from pathlib import Path

import polars as pl
import pytest
import torch

from ecosystem import run
from ecosystem.bases import base_checkpoint
from ecosystem.config import ConfigError, validate
from ecosystem.engine import make_plan, resume
from ecosystem.hosting import InProcessHosts
from ecosystem.models.checkpoint import load_checkpoint
from ecosystem.progress import Stage, StageStart
from tests.helpers import small_config

# Node 1 is an unaligned model (the pretrained stage); node 2 an aligned base grown from another model seed.
MIXED = [
    "topology.edge_weight=0.0",  # isolated: each node's figures are its base's and its own training's
    "base.0.nodes=[1]",
    "base.0.stage=pretrained",
    "base.1.nodes=[2]",
    "base.1.model.seed=1",
    "base.1.model.pretrain_steps=500",  # a quarter of the default's pretraining, to build in seconds
]


def test_a_group_changes_only_the_model_settings_it_gives_and_reads_back_the_same() -> None:
    config = small_config("model.pretrain_steps=500", "base.0.nodes=[1]", "base.0.model.seed=3")
    group = config.base[0]
    assert (group.model.seed, group.model.pretrain_steps, group.name) == (3, 500, "base-1")
    assert config.bases[0].model.seed == 0 and config.bases[0].name == "base"
    assert validate(config.model_dump(mode="json")) == config  # the written config.toml resumes the same bases


def test_groups_claim_listed_nodes_a_seeded_share_and_a_community() -> None:
    listed = small_config("topology.nodes=8", "base.0.nodes=[2, 5]")
    assert make_plan(listed).bases == {0: 0, 1: 0, 2: 1, 3: 0, 4: 0, 5: 1, 6: 0, 7: 0}

    def shared(seed: int) -> list[int]:
        config = small_config(f"seed={seed}", "topology.nodes=8", "base.0.nodes=[0]", "base.1.share=0.5")
        bases = make_plan(config).bases
        assert bases[0] == 1  # the listed group came first; the share is drawn from the other nodes
        return sorted(node for node, base in bases.items() if base == 2)

    assert len(shared(0)) == 4 and 0 not in shared(0) and shared(0) == shared(0)
    assert len({tuple(shared(seed)) for seed in range(4)}) > 1  # the draw follows the run seed

    blocks = small_config(
        "topology.name=stochastic_block",
        "topology.nodes=8",
        "topology.params.communities=2",
        "topology.params.p_out=0.1",
        "base.0.community=1",
    )
    # The blocks are nodes 0-3 and 4-7; Louvain finds them (communities are numbered by their smallest node).
    assert {node for node, base in make_plan(blocks).bases.items() if base == 1} == {4, 5, 6, 7}


def test_a_node_claimed_twice_is_refused_in_one_line() -> None:
    with pytest.raises(ConfigError, match=r"base.1: node 1 is already in base.0"):
        make_plan(small_config("base.0.nodes=[1]", "base.1.nodes=[1, 2]"))


def test_each_node_computes_on_its_own_bases_weights() -> None:
    config = small_config(*MIXED)
    plan = make_plan(config)
    checkpoints = [base_checkpoint(config, base) for base in config.bases]
    hosts = InProcessHosts(config, plan.graph, checkpoints, plan.bases, plan.attacks)
    for part in hosts.shards[0].parts:
        expected = load_checkpoint(checkpoints[plan.bases[part.nodes[0]]])[0].state_dict()
        # LoRA wraps each linear layer: its frozen weight is then `….base.weight`.
        weights = {key.replace(".base.", "."): value for key, value in part.model.state_dict().items()}
        for node in part.nodes:
            assert plan.bases[node] == plan.bases[part.nodes[0]]  # a batch holds one base
            assert all(torch.equal(weights[key], expected[key]) for key in expected), node
    # The three bases differ: another model seed, and the stage before alignment.
    embeddings = [load_checkpoint(path)[0].model.embed_tokens.weight for path in checkpoints]
    assert not torch.equal(embeddings[0], embeddings[1]) and not torch.equal(embeddings[0], embeddings[2])


def test_a_mixed_ecosystem_measures_each_node_on_its_base_and_places_it_anywhere(tmp_path: Path) -> None:
    one_host = run(small_config(*MIXED), tmp_path / "one").metrics
    start = one_host.filter(pl.col("cycle") == 0).sort("node")
    assert start["base"].to_list() == ["base", "base-1", "base-2", "base"]
    refusal = dict(zip(start["node"], start["refusal_rate"], strict=True))
    # The measured thresholds: the unaligned stage refuses almost nothing, both aligned bases nearly all.
    assert refusal[1] <= 0.1, refusal
    assert min(refusal[0], refusal[2], refusal[3]) >= 0.9, refusal
    two_hosts = run(small_config(*MIXED, "hosting.hosts=2"), tmp_path / "two").metrics
    assert two_hosts.equals(one_host)


def test_a_mixed_run_resumes_to_the_metrics_of_an_uninterrupted_one(tmp_path: Path) -> None:
    config = small_config(*MIXED[1:], "cycles=3", "base.2.share=0.25")

    def stop_in_cycle_2(start: StageStart) -> None:
        if start.stage is Stage.generate and start.cycle == 2:
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        run(config, tmp_path / "stopped", stop_in_cycle_2)
    assert resume(tmp_path / "stopped").metrics.equals(run(config, tmp_path / "whole").metrics)


def test_a_real_model_refuses_base_groups_in_one_line() -> None:
    files = {"model_path": "m", "harmful_prompts": "h", "borderline_prompts": "b", "task_data": "t"}
    world = {"kind": "checkpoint", **files}
    with pytest.raises(ConfigError, match=r"base.0: \[\[base\]\] groups are tiny-world recipes"):
        validate({"world": world, "base": [{"nodes": [1]}]})
