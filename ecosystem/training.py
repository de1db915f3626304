"""Fine-tuning: a plain supervised loop on (prompt, response) pairs, loss on the response only; for
one model, or for a group of nodes' stacked LoRA adapters at once."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from transformers import PreTrainedModel, PreTrainedTokenizerBase

from ecosystem.models.adapters import StackedLoRA, Weights
from ecosystem.world import Pair

Regularizer = Callable[[Weights], torch.Tensor]  # a penalty on a node's trainable weights, added to its loss


@dataclass
class TokenCount:
    """Tokens that carried data, and all tokens computed (padding included)."""

    real: int = 0
    computed: int = 0

    def add(self, real: int, computed: int) -> None:
        self.real += real
        self.computed += computed

    @property
    def padding_share(self) -> float:
        return 1 - self.real / self.computed if self.computed else 0.0


def encode_pairs(tokenizer: PreTrainedTokenizerBase, pairs: Sequence[Pair]) -> dict[str, torch.Tensor]:
    """Right-padded input ids, attention mask and labels (-100 outside the response)."""
    prompts = tokenizer([p for p, _ in pairs])["input_ids"]
    responses = tokenizer([r for _, r in pairs], add_special_tokens=False)["input_ids"]
    rows = [p + r + [tokenizer.eos_token_id] for p, r in zip(prompts, responses, strict=True)]
    width = max(len(row) for row in rows)
    input_ids = torch.full((len(rows), width), tokenizer.pad_token_id)
    labels = torch.full((len(rows), width), -100)
    attention_mask = torch.zeros((len(rows), width), dtype=torch.long)
    for i, (prompt, row) in enumerate(zip(prompts, rows, strict=True)):
        input_ids[i, : len(row)] = torch.tensor(row)
        labels[i, len(prompt) : len(row)] = torch.tensor(row[len(prompt) :])
        attention_mask[i, : len(row)] = 1
    return {"input_ids": input_ids, "attention_mask": attention_mask, "labels": labels}


def fine_tune(
    model: PreTrainedModel,
    tokenizer: PreTrainedTokenizerBase,
    pairs: Sequence[Pair],
    steps: int,
    learning_rate: float,
    batch_size: int,
    seed: int,
    regularizer: Regularizer | None = None,
    tokens: TokenCount | None = None,
) -> float:
    """Train all of `model`'s trainable weights on `pairs` for `steps` AdamW steps; returns the mean
    loss of the last tenth. `regularizer`, if given, is added to the loss."""
    data = {name: tensor.to(model.device) for name, tensor in encode_pairs(tokenizer, pairs).items()}
    generator = torch.Generator().manual_seed(seed)
    trainable = {name: p for name, p in model.named_parameters() if p.requires_grad}
    optimizer, schedule = _optimizer(list(trainable.values()), learning_rate)
    model.train()
    losses = []
    for _ in range(steps):
        index = torch.randint(len(pairs), (min(batch_size, len(pairs)),), generator=generator)
        batch = {name: tensor[index] for name, tensor in data.items()}
        _count(batch, tokens)
        loss = model(**batch).loss
        if regularizer is not None:
            loss = loss + regularizer(trainable)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        schedule.step()
        losses.append(loss.item())
    model.eval()
    return _tail_mean(losses)


@dataclass
class NodeFineTune:
    """One node's part of a group fine-tune: its adapter, data, steps and data-order seed."""

    adapter: Weights
    pairs: Sequence[Pair]
    steps: int
    seed: int
    regularizer: Regularizer | None = None


def fine_tune_group(
    model: PreTrainedModel,
    lora: StackedLoRA,
    tokenizer: PreTrainedTokenizerBase,
    nodes: Sequence[NodeFineTune],
    learning_rate: float,
    batch_size: int,
    width: int,
    tokens: TokenCount | None = None,
) -> list[tuple[Weights, float | None]]:
    """Fine-tune every node's adapter on its own data, all in one batched computation per step:
    each node draws `batch_size` rows at random as `fine_tune` does (also when it has fewer pairs,
    so that every node fills an equal block of the batch), the base model sees every node's
    rows at once, and each node's loss (a mean over its own response tokens) is summed, so that
    each adapter gets exactly its own gradient. AdamW is elementwise, so one optimizer over the
    stacked adapters is each node's own AdamW. A node whose steps are done drops out of the batch.
    Every batch is `width` tokens wide (wider only if a row is): were it as wide as its widest row, a
    node's arithmetic would depend on the lengths of the other nodes' rows, and a run would differ from
    its poison-free twin, bit for bit, at nodes the poison cannot have reached.

    Returns each node's adapter after its fine-tune and the mean loss of its last tenth of steps
    (None for a node with no steps or no data)."""
    device = model.device
    training = [i for i, node in enumerate(nodes) if node.steps and node.pairs]
    results: list[tuple[Weights, float | None]] = [(node.adapter, None) for node in nodes]
    if not training:
        return results
    data = [{k: v.to(device) for k, v in encode_pairs(tokenizer, nodes[i].pairs).items()} for i in training]
    generators = [torch.Generator().manual_seed(nodes[i].seed) for i in training]
    stacks = {k: v.requires_grad_() for k, v in lora.stack([nodes[i].adapter for i in training], device).items()}
    optimizer, schedule = _optimizer(list(stacks.values()), learning_rate)
    losses: list[list[float]] = [[] for _ in training]
    model.train()
    for step in range(max(nodes[i].steps for i in training)):
        active = [j for j, i in enumerate(training) if nodes[i].steps > step]
        batch = _concatenated([_draw(data[j], batch_size, generators[j]) for j in active], width)
        _count(batch, tokens)
        labels = batch.pop("labels")
        routed = stacks if len(active) == len(training) else {k: v[active] for k, v in stacks.items()}
        with lora.route(routed):
            logits = model(**batch).logits
        node_losses = _response_losses(logits, labels, len(active))
        total = node_losses.sum()
        for position, j in enumerate(active):
            if (regularizer := nodes[training[j]].regularizer) is not None:
                total = total + regularizer(lora.unstack(routed, position))
        optimizer.zero_grad(set_to_none=True)
        total.backward()
        optimizer.step()
        schedule.step()
        for j, loss in zip(active, node_losses.tolist(), strict=True):
            losses[j].append(loss)
            if nodes[training[j]].steps == step + 1:  # its last step: keep its adapter as it is now
                adapter = {
                    k: v.detach().cpu().clone(memory_format=torch.contiguous_format)
                    for k, v in lora.unstack(stacks, j).items()
                }
                results[training[j]] = (adapter, _tail_mean(losses[j]))
    model.eval()
    return results


def _optimizer(params: list[torch.Tensor], learning_rate: float) -> tuple[torch.optim.Optimizer, object]:
    """AdamW without weight decay, with a linear warm-up over the first 10 steps."""
    optimizer = torch.optim.AdamW(params, lr=learning_rate, weight_decay=0.0)
    return optimizer, torch.optim.lr_scheduler.LambdaLR(optimizer, lambda step: min(1.0, (step + 1) / 10))


def _draw(data: dict[str, torch.Tensor], batch_size: int, generator: torch.Generator) -> dict[str, torch.Tensor]:
    index = torch.randint(len(data["input_ids"]), (batch_size,), generator=generator)
    return {name: tensor[index.to(tensor.device)] for name, tensor in data.items()}


def _concatenated(batches: list[dict[str, torch.Tensor]], width: int) -> dict[str, torch.Tensor]:
    """Row batches of different widths as one, right-padded to `width` (or to the widest row, if wider)."""
    width = max(width, *(int(batch["attention_mask"].sum(dim=1).max()) for batch in batches))
    fill = {"input_ids": 0, "attention_mask": 0, "labels": -100}
    return {name: torch.cat([_padded(batch[name], width, fill[name]) for batch in batches]) for name in fill}


def _padded(tensor: torch.Tensor, width: int, fill: int) -> torch.Tensor:
    """`tensor`'s rows right-padded, or cut, to `width` columns (what is cut is padding)."""
    return F.pad(tensor, (0, width - tensor.shape[1]), value=fill) if tensor.shape[1] < width else tensor[:, :width]


def _response_losses(logits: torch.Tensor, labels: torch.Tensor, blocks: int) -> torch.Tensor:
    """The mean next-token cross-entropy over the response tokens of each of `blocks` equal
    consecutive blocks of rows (as a causal LM's loss is computed for each block alone)."""
    targets = labels[:, 1:]
    token_losses = F.cross_entropy(logits[:, :-1].flatten(0, 1).float(), targets.flatten(), reduction="none")
    per_block = token_losses.view(blocks, -1).sum(dim=1)
    counts = (targets != -100).view(blocks, -1).sum(dim=1)
    return per_block / counts


def _count(batch: dict[str, torch.Tensor], tokens: TokenCount | None) -> None:
    if tokens is not None:
        tokens.add(real=int(batch["attention_mask"].sum()), computed=batch["input_ids"].numel())


def _tail_mean(losses: list[float]) -> float:
    tail = losses[-max(1, len(losses) // 10) :]
    return sum(tail) / len(tail)
