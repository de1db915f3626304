"""Generation with transformers' `generate` (KV cache): many nodes' prompts in one decoding loop,
each node's rows with its own adapter."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from contextlib import AbstractContextManager

import torch
from transformers import LogitsProcessor, LogitsProcessorList, PreTrainedModel, PreTrainedTokenizerBase

from ecosystem.generation import Job
from ecosystem.training import TokenCount

Node = int | None  # None: the base model
Route = Callable[[list[Node]], AbstractContextManager]  # puts the nodes' weights in place, one per block of rows


class HFEngine:
    """Answers jobs with `model`. With `route` (stacked adapters), jobs of equal size are answered
    together: a batch holds whole jobs, each job's rows one block that its node's adapter computes.
    Otherwise the model holds one node's weights at a time, put in place by `load(node)`. Counts
    the tokens it computes into `tokens`."""

    def __init__(
        self,
        model: PreTrainedModel,
        tokenizer: PreTrainedTokenizerBase,
        max_new_tokens: int,
        tokens: TokenCount,
        route: Route | None = None,
        load: Callable[[Node], None] | None = None,
        batch_size: int = 512,
    ) -> None:
        self.model, self.tokenizer, self.max_new_tokens, self.tokens = model, tokenizer, max_new_tokens, tokens
        self.route, self.load, self.batch_size = route, load, batch_size

    def answer(self, jobs: Sequence[Job]) -> list[list[str]]:
        if self.route is None:
            answers = []
            for node, prompts, seed in jobs:
                self.load(node)
                answers.append(generate(self.model, self.tokenizer, prompts, seed, self.max_new_tokens, self.tokens))
            return answers
        by_size: dict[int, list[int]] = {}
        for index, (_, prompts, _) in enumerate(jobs):
            by_size.setdefault(len(prompts), []).append(index)
        answers: dict[int, list[str]] = {}
        for size, indices in by_size.items():
            per_batch = max(1, self.batch_size // max(size, 1))
            for start in range(0, len(indices), per_batch):
                batch = [jobs[i] for i in indices[start : start + per_batch]]
                with self.route([node for node, _, _ in batch]):
                    parts = [(prompts, _generator(seed)) for _, prompts, seed in batch]
                    responses = _generate(self.model, self.tokenizer, parts, self.max_new_tokens, self.tokens)
                for position, i in enumerate(indices[start : start + per_batch]):
                    answers[i] = responses[position * size : (position + 1) * size]
        return [answers[i] for i in range(len(jobs))]


def generate(
    model: PreTrainedModel,
    tokenizer: PreTrainedTokenizerBase,
    prompts: Sequence[str],
    seed: int | None = None,
    max_new_tokens: int = 8,
    tokens: TokenCount | None = None,
    batch_size: int = 512,
) -> list[str]:
    """`model`'s greedy responses when `seed` is None, otherwise sampled at temperature 1 from `seed`,
    in batches of `batch_size` prompts."""
    generator = _generator(seed)
    responses: list[str] = []
    for start in range(0, len(prompts), batch_size):
        part = (prompts[start : start + batch_size], generator)
        responses += _generate(model, tokenizer, [part], max_new_tokens, tokens)
    return responses


@torch.no_grad()
def _generate(
    model: PreTrainedModel,
    tokenizer: PreTrainedTokenizerBase,
    parts: Sequence[tuple[Sequence[str], torch.Generator | None]],
    max_new_tokens: int,
    tokens: TokenCount | None,
) -> list[str]:
    """One `generate` call (KV cache, left padding) over the prompts of every part; a part is greedy,
    or sampled from its own generator, so that its responses do not depend on the parts beside it."""
    prompts = [prompt for part_prompts, _ in parts for prompt in part_prompts]
    batch = tokenizer(prompts, return_tensors="pt", padding=True).to(model.device)
    sampling = _PartSampling([(len(part_prompts), generator) for part_prompts, generator in parts])
    output = model.generate(
        **batch,
        max_new_tokens=max_new_tokens,
        do_sample=False,  # sampling is `_PartSampling`'s, which leaves one token possible per sampled row
        logits_processor=LogitsProcessorList([sampling]) if sampling.sampled else None,
        temperature=None,
        top_p=None,
        top_k=None,
        pad_token_id=tokenizer.pad_token_id,
        eos_token_id=tokenizer.eos_token_id,
    )
    new_tokens = output[:, batch["input_ids"].shape[1] :]
    if tokens is not None:
        generated = (new_tokens != tokenizer.pad_token_id).sum()
        tokens.add(real=int(batch["attention_mask"].sum() + generated), computed=output.numel())
    return tokenizer.batch_decode(new_tokens, skip_special_tokens=True)


class _PartSampling(LogitsProcessor):
    """Sampling at temperature 1 for the sampled parts of a batch, each from its own generator, with
    the draws transformers' own sampler makes (`multinomial` of the softmax over the part's rows)."""

    def __init__(self, parts: list[tuple[int, torch.Generator | None]]) -> None:
        self.sampled: list[tuple[slice, torch.Generator]] = []
        start = 0
        for size, generator in parts:
            if generator is not None:
                self.sampled.append((slice(start, start + size), generator))
            start += size

    def __call__(self, input_ids: torch.LongTensor, scores: torch.FloatTensor) -> torch.FloatTensor:  # noqa: ARG002
        for rows, generator in self.sampled:
            probabilities = torch.softmax(scores[rows], dim=-1).cpu()
            chosen = torch.multinomial(probabilities, 1, generator=generator).to(scores.device)
            scores[rows] = torch.full_like(scores[rows], -torch.inf).scatter_(1, chosen, 0.0)
        return scores


def _generator(seed: int | None) -> torch.Generator | None:
    return None if seed is None else torch.Generator().manual_seed(seed)
