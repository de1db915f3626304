"""Generation with transformers' batched `generate`."""

from __future__ import annotations

from collections.abc import Callable, Sequence

import torch
from transformers import PreTrainedModel, PreTrainedTokenizerBase

from ecosystem.generation import Job


class HFEngine:
    """Answers each job with `model` after `load(node)` has put that node's weights into it."""

    def __init__(
        self,
        model: PreTrainedModel,
        tokenizer: PreTrainedTokenizerBase,
        load: Callable[[int | None], None],
        max_new_tokens: int,
    ) -> None:
        self.model, self.tokenizer, self.load, self.max_new_tokens = model, tokenizer, load, max_new_tokens

    def answer(self, jobs: Sequence[Job]) -> list[list[str]]:
        answers = []
        for node, prompts, seed in jobs:
            self.load(node)
            answers.append(generate(self.model, self.tokenizer, prompts, seed, self.max_new_tokens))
        return answers


@torch.no_grad()
def generate(
    model: PreTrainedModel,
    tokenizer: PreTrainedTokenizerBase,
    prompts: Sequence[str],
    seed: int | None = None,
    max_new_tokens: int = 8,
    batch_size: int = 512,
) -> list[str]:
    """Greedy responses when `seed` is None, otherwise sampled at temperature 1 from `seed`."""
    if seed is not None:
        torch.manual_seed(seed)
    responses: list[str] = []
    for start in range(0, len(prompts), batch_size):
        batch = tokenizer(list(prompts[start : start + batch_size]), return_tensors="pt", padding=True).to(model.device)
        output = model.generate(
            **batch,
            max_new_tokens=max_new_tokens,
            do_sample=seed is not None,
            temperature=1.0 if seed is not None else None,
            top_p=None,
            top_k=None,
            pad_token_id=tokenizer.pad_token_id,
            eos_token_id=tokenizer.eos_token_id,
        )
        new_tokens = output[:, batch["input_ids"].shape[1] :]
        responses += tokenizer.batch_decode(new_tokens, skip_special_tokens=True)
    return responses
