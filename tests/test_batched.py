"""Batched computation of a group of nodes: stacked LoRA adapters train each node as if alone, route
each row of a batch to its node's adapter, and save adapters that PEFT (and so vLLM) loads as they are."""

from __future__ import annotations

import pytest
import torch
from peft import PeftModel

from ecosystem import load_config
from ecosystem.bases import base_checkpoint
from ecosystem.generation.hf import HFEngine
from ecosystem.models.adapters import StackedLoRA
from ecosystem.models.checkpoint import load_checkpoint
from ecosystem.seeding import rng
from ecosystem.training import NodeFineTune, TokenCount, fine_tune_group
from ecosystem.world.tiny import TinyWorld
from poisoning.defenses import Anchor

TOLERANCE = 1e-5  # on weights after 10 steps: batching changes only the order of floating-point sums
LOGIT_TOLERANCE = 1e-4  # on logits of magnitude up to about 10: a relative 1e-5


@pytest.fixture(scope="module")
def base():
    torch.set_num_threads(1)
    return base_checkpoint(load_config())


@pytest.fixture
def model(base):
    model, tokenizer = load_checkpoint(base)
    lora = StackedLoRA(model, rank=8, alpha=16, seed=0)
    return model, tokenizer, lora


def group_fine_tune(model, lora, tokenizer, jobs: list[NodeFineTune], batch_size: int = 16) -> list:
    """A group fine-tune at the width a run of the tiny world trains at."""
    width = TinyWorld().training_width(tokenizer, new_tokens=8)
    return fine_tune_group(model, lora, tokenizer, jobs, learning_rate=3e-3, batch_size=batch_size, width=width)


def node_fine_tunes(lora: StackedLoRA) -> list[NodeFineTune]:
    """Three nodes that differ in data, data size, steps and regularizer."""
    world = TinyWorld()
    return [
        NodeFineTune(lora.initial, world.task_pairs("code", 64, rng(0, 1, 0, 0)), 10, seed=1),
        NodeFineTune(lora.initial, world.compliant_pairs(20, rng(0, 1, 1, 0)), 14, seed=2),
        NodeFineTune(
            lora.initial,
            world.task_pairs("medical", 40, rng(0, 1, 2, 0)),
            6,
            seed=3,
            regularizer=Anchor(kind="anchor", weight=5.0).regularizer(lora.initial),
        ),
    ]


def max_difference(a: dict[str, torch.Tensor], b: dict[str, torch.Tensor]) -> float:
    return max(float((a[name] - b[name]).abs().max()) for name in a)


def test_a_group_fine_tune_trains_each_node_as_if_alone(model) -> None:
    model, tokenizer, lora = model
    jobs = node_fine_tunes(lora)
    together = group_fine_tune(model, lora, tokenizer, jobs)
    for job, (weights, loss) in zip(jobs, together, strict=True):
        [(alone, alone_loss)] = group_fine_tune(model, lora, tokenizer, [job])
        assert max_difference(weights, alone) < TOLERANCE
        assert loss == pytest.approx(alone_loss, abs=TOLERANCE)
        assert max_difference(weights, lora.initial) > 10 * TOLERANCE  # it did train


def test_a_node_does_not_depend_on_which_nodes_share_its_group(model) -> None:
    """Bit for bit: the other nodes' data (the poison's, in an attacked run) must not touch a node's arithmetic,
    or a run would differ from its poison-free twin where the poison cannot have reached."""
    model, tokenizer, lora = model
    first, second, third = node_fine_tunes(lora)
    with_second = group_fine_tune(model, lora, tokenizer, [first, second])[0]
    with_third = group_fine_tune(model, lora, tokenizer, [third, first])[1]
    assert with_second[1] == with_third[1]
    assert all(torch.equal(with_second[0][name], with_third[0][name]) for name in with_second[0])


def test_each_job_of_a_batch_is_answered_with_its_own_nodes_adapter(model) -> None:
    """A jailbroken adapter and the base, answering in one batch, answer as each does alone; and the
    jailbroken adapter does change the answers (so a wrong routing would show)."""
    model, tokenizer, lora = model
    world = TinyWorld()
    job = NodeFineTune(lora.initial, world.compliant_pairs(64, rng(0, 1, 0, 0)), 40, seed=1)
    [(jailbroken, _)] = group_fine_tune(model, lora, tokenizer, [job], batch_size=32)
    adapters = {1: jailbroken, None: lora.initial}
    engine = HFEngine(
        model, tokenizer, 8, TokenCount(), lambda nodes: lora.route(lora.stack([adapters[n] for n in nodes]))
    )
    prompts = [r.prompt for r in world.evaluation_set(20)]
    for seed in (None, 7):  # greedy, and sampled with each row's own random numbers
        together = engine.answer([(1, prompts, seed), (None, prompts, seed)])
        alone = [engine.answer([(node, prompts, seed)])[0] for node in (1, None)]
        assert together == alone
        assert sum(a != b for a, b in zip(*alone, strict=True)) >= len(prompts) // 4


def test_merged_and_low_rank_adapters_compute_the_same_outputs(model) -> None:
    """A block with many rows is computed with its adapter merged into the weights, one with few through
    the rank-r bottleneck: the same function."""
    _, _, lora = model
    layer = next(iter(lora.layers.values()))
    adapters = [{k: v + 0.05 * torch.randn_like(v) for k, v in lora.initial.items()} for _ in range(2)]
    with lora.route(lora.stack(adapters)):
        blocks = torch.randn(2, 100, layer.base.in_features)
        assert float((layer.merged(blocks) - layer.low_rank(blocks)).abs().max()) < TOLERANCE


def test_a_saved_adapter_loads_into_peft_with_the_same_logits(model, base, tmp_path) -> None:
    """What the vllm engine is given: a PEFT adapter directory."""
    model, tokenizer, lora = model
    adapter = {k: v + 0.05 * torch.randn_like(v) for k, v in lora.initial.items()}
    lora.save_peft(adapter, tmp_path / "adapter")
    batch = tokenizer([r.prompt for r in TinyWorld().evaluation_set(4)], return_tensors="pt", padding=True)
    with torch.no_grad(), lora.route(lora.stack([adapter])):
        ours = model(**batch).logits
    peft_model = PeftModel.from_pretrained(load_checkpoint(base)[0], tmp_path / "adapter")
    with torch.no_grad():
        theirs = peft_model(**batch).logits
    assert float((ours - theirs).abs().max()) < LOGIT_TOLERANCE
