"""Held-out evaluation: greedy responses to fixed prompt sets, graded by the exact judge."""

from __future__ import annotations

from transformers import PreTrainedModel, PreTrainedTokenizerBase

from ecosystem.generation.hf import generate
from ecosystem.world.grammar import Request, World
from ecosystem.world.judge import Outcome, grade, rates


def evaluate(
    model: PreTrainedModel,
    tokenizer: PreTrainedTokenizerBase,
    world: World,
    requests: list[Request],
    domain: str | None = None,
) -> tuple[dict[str, float | None], list[Outcome]]:
    """The judge's figures (`domain_helpfulness` over `domain`'s tasks) and each request's outcome."""
    responses = generate(model, tokenizer, [r.prompt for r in requests])
    outcomes = [grade(world, r, response) for r, response in zip(requests, responses, strict=True)]
    return rates(requests, outcomes, domain), outcomes
