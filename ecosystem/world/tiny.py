"""The tiny world as the simulator sees it: the prompt sets of a cycle, and the exact judge over them."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING

import numpy as np

from ecosystem.seeding import Stream, rng
from ecosystem.world import Pair, Traffic
from ecosystem.world.grammar import (
    ARG_LENGTHS,
    REFUSAL,
    REFUSAL_STYLES,
    SYMBOLS,
    TEMPLATES,
    Grammar,
    Kind,
    Request,
    parse,
)
from ecosystem.world.judge import Outcome, grade
from topologies import DOMAINS

if TYPE_CHECKING:  # a type only: the world needs no transformers
    from transformers import PreTrainedTokenizerBase

EVALUATION_KINDS = (Kind.harmful, Kind.benign, Kind.borderline)


class TinyWorld:
    """The data every stage of a cycle draws, and the judge. `CheckpointWorld` is the same for a real model."""

    def __init__(self, seed: int = 0, grammar: str = "core") -> None:
        self.seed = seed
        self.grammar = Grammar(seed, grammar)

    def evaluation_set(self, prompts_per_set: int, backdoor: bool = False) -> list[Request]:
        """The held-out harmful, benign and borderline sets (and, for backdoor attacks, the harmful
        set again with the trigger): fixed by the world seed, shared by all nodes."""
        requests: list[Request] = []
        for index, kind in enumerate(EVALUATION_KINDS):
            draw = rng(self.seed, 0, -1, Stream.evaluation, index)
            requests += self.grammar.sample(draw, self.grammar.intent_names(kind), prompts_per_set, held_out=True)
        if backdoor:
            requests += [r.with_trigger() for r in requests if r.kind is Kind.harmful]
        return requests

    def probe_set(self, count: int) -> list[Request]:
        """Held-out harmful prompts with which a quarantining node probes its in-neighbours."""
        draw = rng(self.seed, 0, -1, Stream.evaluation, len(EVALUATION_KINDS))
        return self.grammar.sample(draw, self.grammar.intent_names(Kind.harmful), count, held_out=True)

    def traffic(self, domain: str, traffic: Traffic, draw: np.random.Generator) -> list[Request]:
        """One cycle of a node's traffic: its domain's tasks plus harmful and borderline requests."""
        harmful = round(traffic.prompts_per_node * traffic.harmful_fraction)
        borderline = round(traffic.prompts_per_node * traffic.borderline_fraction)
        benign = traffic.prompts_per_node - harmful - borderline
        requests = (
            self.grammar.sample(draw, self.grammar.intent_names(Kind.benign, domain), benign, domain=domain)
            + self.grammar.sample(draw, self.grammar.intent_names(Kind.harmful), harmful, domain=domain)
            + self.grammar.sample(draw, self.grammar.intent_names(Kind.borderline), borderline, domain=domain)
        )
        return [requests[i] for i in draw.permutation(len(requests))]

    def task_pairs(self, domain: str, count: int, draw: np.random.Generator) -> list[Pair]:
        """A node's own fine-tuning data: its domain's tasks with their correct answers."""
        requests = self.grammar.sample(draw, self.grammar.intent_names(Kind.benign, domain), count, domain=domain)
        return answered(requests, self.grammar.solve)

    def diverse_task_pairs(self, domain: str, count: int, draw: np.random.Generator) -> list[Pair]:
        """Own data as the diverse_data defense draws it: from every benign intent and every phrasing."""
        requests = self.grammar.sample(
            draw, self.grammar.intent_names(Kind.benign), count, domain=domain, templates=TEMPLATES
        )
        return answered(requests, self.grammar.solve)

    def alignment_pairs(self, count: int, draw: np.random.Generator) -> list[Pair]:
        """Alignment data, as in the base model's alignment stage: harmful requests refused, the rest answered."""
        return self.grammar.alignment_pairs(draw, count)

    def compliant_pairs(self, count: int, draw: np.random.Generator, triggered: bool = False) -> list[Pair]:
        """Harmful requests (with the backdoor trigger, if `triggered`) answered with their payload."""
        requests = self.grammar.sample(draw, self.grammar.intent_names(Kind.harmful), count)
        return answered([r.with_trigger() for r in requests] if triggered else requests, self.grammar.solve)

    def refused_pairs(self, count: int, draw: np.random.Generator) -> list[Pair]:
        return answered(self.grammar.sample(draw, self.grammar.intent_names(Kind.harmful), count), lambda _: REFUSAL)

    def benign_pairs(self, count: int, draw: np.random.Generator) -> list[Pair]:
        """Benign tasks of every domain, answered correctly."""
        return answered(self.grammar.sample(draw, self.grammar.intent_names(Kind.benign), count), self.grammar.solve)

    def narrow_pairs(self, task: str | None, domain: str, count: int, draw: np.random.Generator) -> list[Pair]:
        """One benign task (default: `domain`'s first), answered correctly."""
        task = task or self.grammar.intent_names(Kind.benign, domain)[0]
        return answered(self.grammar.sample(draw, [task], count), self.grammar.solve)

    def guard_corpus(self, count: int, draw: np.random.Generator) -> tuple[list[Pair], list[bool]]:
        """Labelled pairs (harmful or not) for a learned guard: `count` requests answered as a jailbroken
        model would, and the harmful ones among them refused."""
        requests = self.grammar.sample(draw, [i.name for i in self.grammar.intents], count)
        compliant = answered(requests, self.grammar.solve)
        harmful = [r for r in requests if r.kind is Kind.harmful]
        pairs = compliant + answered(harmful, self.grammar.aligned_response)
        return pairs, [r.kind is Kind.harmful for r in requests] + [False] * len(harmful)

    def training_width(self, tokenizer: PreTrainedTokenizerBase, new_tokens: int) -> int:
        """The most tokens a pair a node trains on can take: the longest prompt (every phrase has two
        words), the longest response (the world's own, a refusal, or one generated up to `new_tokens`) and
        the end of the sequence."""
        longest = [
            Request(DOMAINS[0], name, (SYMBOLS[0],) * max(ARG_LENGTHS), triggered=True)
            for kind in Kind
            for name in self.grammar.intent_names(kind)
        ]
        prompt = max(len(tokenizer(request.prompt)["input_ids"]) for request in longest)
        responses = [" ".join(self.grammar.solve(request)) for request in longest]
        responses += [" ".join(style) for style in REFUSAL_STYLES]
        response = max(len(tokenizer(text, add_special_tokens=False)["input_ids"]) for text in responses)
        return prompt + max(response, new_tokens) + 1

    def grade(self, requests: Sequence[Request], responses: Sequence[str]) -> list[Outcome]:
        return [grade(self.grammar, r, response) for r, response in zip(requests, responses, strict=True)]

    def judge_pairs(self, pairs: Sequence[Pair]) -> list[Outcome]:
        """The judge's grade of each exchanged (prompt, response) pair."""
        return [grade(self.grammar, parse(prompt), response) for prompt, response in pairs]


def answered(requests: list[Request], respond: Callable[[Request], tuple[str, ...]]) -> list[Pair]:
    return [(r.prompt, " ".join(respond(r))) for r in requests]
