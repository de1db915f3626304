"""The prompt sets drawn from the tiny world: held-out evaluation sets, traffic and own-task data."""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

from ecosystem.config import TrafficConfig
from ecosystem.seeding import Phase, rng
from ecosystem.training import Pair
from ecosystem.world.grammar import INTENTS, TEMPLATES, Kind, Request, World, intent_names

EVALUATION_KINDS = (Kind.harmful, Kind.benign, Kind.borderline)


def evaluation_requests(world: World, prompts_per_set: int, backdoor: bool = False) -> list[Request]:
    """The held-out harmful, benign and borderline sets (and, for backdoor attacks, the harmful
    set again with the trigger): fixed by the world seed, shared by all nodes."""
    requests: list[Request] = []
    for index, kind in enumerate(EVALUATION_KINDS):
        draw = rng(world.seed, 0, -1, Phase.evaluation, index)
        requests += world.sample(draw, intent_names(kind), prompts_per_set, held_out=True)
    if backdoor:
        requests += [r.with_trigger() for r in requests if r.kind is Kind.harmful]
    return requests


def probe_requests(world: World, count: int) -> list[Request]:
    """Held-out harmful prompts with which a quarantining node probes its in-neighbours."""
    draw = rng(world.seed, 0, -1, Phase.evaluation, len(EVALUATION_KINDS))
    return world.sample(draw, intent_names(Kind.harmful), count, held_out=True)


def traffic_requests(world: World, domain: str, traffic: TrafficConfig, draw: np.random.Generator) -> list[Request]:
    """One cycle of a node's traffic: its domain's tasks plus harmful and borderline requests."""
    harmful = round(traffic.prompts_per_node * traffic.harmful_fraction)
    borderline = round(traffic.prompts_per_node * traffic.borderline_fraction)
    benign = traffic.prompts_per_node - harmful - borderline
    requests = (
        world.sample(draw, intent_names(Kind.benign, domain), benign, domain=domain)
        + world.sample(draw, intent_names(Kind.harmful), harmful, domain=domain)
        + world.sample(draw, intent_names(Kind.borderline), borderline, domain=domain)
    )
    return [requests[i] for i in draw.permutation(len(requests))]


def own_task_pairs(
    world: World, domain: str, count: int, draw: np.random.Generator, diverse: bool = False
) -> list[Pair]:
    """A node's own fine-tuning data: its domain's tasks with their correct answers; `diverse`
    draws them from every benign intent and every phrasing instead."""
    intents = intent_names(Kind.benign, None if diverse else domain)
    requests = world.sample(draw, intents, count, domain=domain, templates=TEMPLATES if diverse else 1)
    return answered(world, requests, world.solve)


def alignment_pairs(world: World, count: int, draw: np.random.Generator) -> list[Pair]:
    """Alignment data, as in the base model's alignment stage: harmful requests refused, the rest answered."""
    requests = world.sample(draw, [i.name for i in INTENTS], count, templates=TEMPLATES)
    return answered(world, requests, world.aligned_response)


def answered(world: World, requests: list[Request], respond: Callable[[Request], tuple[str, ...]]) -> list[Pair]:
    return [(r.prompt, " ".join(respond(r))) for r in requests]
