"""Generation with transformers' `generate` (KV cache): many nodes' prompts in one decoding loop,
each node's rows with its own adapter."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from contextlib import AbstractContextManager
from dataclasses import dataclass

import numpy as np
import torch
from transformers import LogitsProcessor, LogitsProcessorList, PreTrainedModel, PreTrainedTokenizerBase

from ecosystem.generation import Job
from ecosystem.training import TokenCount

Node = int | None  # None: the base model
Route = Callable[[list[Node]], AbstractContextManager]  # puts the nodes' weights in place, one per block of rows


@dataclass(frozen=True)
class Row:
    prompt: str
    seed: int | None  # None: greedy


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
        rows = [job_rows(prompts, seed) for _, prompts, seed in jobs]
        if self.route is None:
            answers = []
            for (node, _, _), rows_of_job in zip(jobs, rows, strict=True):
                self.load(node)
                answers.append(decode(self.model, self.tokenizer, rows_of_job, self.max_new_tokens, self.tokens))
            return answers
        answers: dict[int, list[str]] = {}
        by_size: dict[int, list[int]] = {}
        for index, rows_of_job in enumerate(rows):
            by_size.setdefault(len(rows_of_job), []).append(index)
        for size, indices in by_size.items():
            per_batch = max(1, self.batch_size // max(size, 1))
            for start in range(0, len(indices), per_batch):
                batch = indices[start : start + per_batch]
                with self.route([jobs[i][0] for i in batch]):
                    flat = [row for i in batch for row in rows[i]]
                    responses = _generate(self.model, self.tokenizer, flat, self.max_new_tokens, self.tokens)
                for position, i in enumerate(batch):
                    answers[i] = responses[position * size : (position + 1) * size]
        return [answers[i] for i in range(len(jobs))]


def generate(
    model: PreTrainedModel,
    tokenizer: PreTrainedTokenizerBase,
    prompts: Sequence[str],
    seed: int | None = None,
    max_new_tokens: int = 8,
) -> list[str]:
    """`model`'s greedy responses when `seed` is None, otherwise sampled at temperature 1 from `seed`."""
    return decode(model, tokenizer, job_rows(prompts, seed), max_new_tokens)


def decode(
    model: PreTrainedModel,
    tokenizer: PreTrainedTokenizerBase,
    rows: Sequence[Row],
    max_new_tokens: int,
    tokens: TokenCount | None = None,
    batch_size: int = 512,
) -> list[str]:
    """One model's response to each row, in batches of rows of similar length (little padding)."""
    lengths = [len(ids) for ids in tokenizer([row.prompt for row in rows])["input_ids"]]
    order = sorted(range(len(rows)), key=lambda i: lengths[i])
    responses = [""] * len(rows)
    for start in range(0, len(order), batch_size):
        chunk = order[start : start + batch_size]
        answers = _generate(model, tokenizer, [rows[i] for i in chunk], max_new_tokens, tokens)
        for i, answer in zip(chunk, answers, strict=True):
            responses[i] = answer
    return responses


@torch.no_grad()
def _generate(
    model: PreTrainedModel,
    tokenizer: PreTrainedTokenizerBase,
    rows: Sequence[Row],
    max_new_tokens: int,
    tokens: TokenCount | None,
) -> list[str]:
    """One `generate` call (KV cache, left padding) over `rows`. A sampled row draws its own random
    numbers from its own seed, so its response does not depend on which rows share its batch."""
    batch = tokenizer([row.prompt for row in rows], return_tensors="pt", padding=True).to(model.device)
    sampling = _GumbelSampling([row.seed for row in rows])
    output = model.generate(
        **batch,
        max_new_tokens=max_new_tokens,
        do_sample=False,  # sampling is `_GumbelSampling`'s: the argmax of logits plus Gumbel noise
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


class _GumbelSampling(LogitsProcessor):
    """Sampling at temperature 1 as greedy decoding of the logits plus Gumbel noise (the Gumbel-max
    trick), each sampled row with its own generator; greedy rows get no noise."""

    def __init__(self, seeds: list[int | None]) -> None:
        self.generators = [None if seed is None else torch.Generator().manual_seed(seed) for seed in seeds]
        self.sampled = [i for i, generator in enumerate(self.generators) if generator is not None]

    def __call__(self, input_ids: torch.LongTensor, scores: torch.FloatTensor) -> torch.FloatTensor:  # noqa: ARG002
        uniform = torch.stack([torch.rand(scores.shape[1], generator=self.generators[i]) for i in self.sampled])
        noise = torch.zeros_like(scores)
        noise[self.sampled] = -torch.log(-torch.log(uniform)).to(scores.device, scores.dtype)
        return scores + noise


def job_rows(prompts: Sequence[str], seed: int | None) -> list[Row]:
    """A job's rows; sampled rows each get a seed of their own, derived from the job's."""
    return [Row(p, None if seed is None else _row_seed(seed, i)) for i, p in enumerate(prompts)]


def _row_seed(seed: int, row: int) -> int:
    return int(np.random.SeedSequence([seed, row]).generate_state(1, np.uint64)[0] >> 1)
