"""Fine-tuning: a plain supervised loop on (prompt, response) pairs, loss on the response only."""

from __future__ import annotations

from collections.abc import Callable, Sequence

import torch
from transformers import PreTrainedModel, PreTrainedTokenizerBase

from ecosystem.world import Pair


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
    regularizer: Callable[[torch.nn.Module], torch.Tensor] | None = None,
) -> float:
    """Train on `pairs` for `steps` AdamW steps; returns the mean loss of the last tenth.

    `regularizer`, if given, is called with the model and its value added to the loss.
    """
    data = {name: tensor.to(model.device) for name, tensor in encode_pairs(tokenizer, pairs).items()}
    generator = torch.Generator().manual_seed(seed)
    params = [p for p in model.parameters() if p.requires_grad]
    optimizer = torch.optim.AdamW(params, lr=learning_rate, weight_decay=0.0)
    schedule = torch.optim.lr_scheduler.LambdaLR(optimizer, lambda step: min(1.0, (step + 1) / 10))
    model.train()
    losses = []
    for _ in range(steps):
        index = torch.randint(len(pairs), (min(batch_size, len(pairs)),), generator=generator)
        batch = {name: tensor[index] for name, tensor in data.items()}
        loss = model(**batch).loss
        if regularizer is not None:
            loss = loss + regularizer(model)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        schedule.step()
        losses.append(loss.item())
    model.eval()
    tail = losses[-max(1, steps // 10) :]
    return sum(tail) / len(tail)
