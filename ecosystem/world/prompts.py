"""The prompt sets drawn from the tiny world: held-out evaluation sets, traffic and own-task data."""

from __future__ import annotations

import numpy as np

from ecosystem.config import TrafficConfig
from ecosystem.seeding import Phase, rng
from ecosystem.world.grammar import Kind, Request, World, intent_names

EVALUATION_KINDS = (Kind.harmful, Kind.benign, Kind.borderline)


def evaluation_requests(world: World, prompts_per_set: int) -> list[Request]:
    """The held-out harmful, benign and borderline sets: fixed by the world seed, shared by all nodes."""
    requests: list[Request] = []
    for index, kind in enumerate(EVALUATION_KINDS):
        draw = rng(world.seed, 0, -1, Phase.evaluation, index)
        requests += world.sample(draw, intent_names(kind), prompts_per_set, held_out=True)
    return requests


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


def own_task_pairs(world: World, domain: str, count: int, draw: np.random.Generator) -> list[tuple[str, str]]:
    """A node's own fine-tuning data: its domain's tasks with their correct answers."""
    return [(r.prompt, " ".join(world.solve(r))) for r in world.sample(draw, intent_names(Kind.benign, domain), count)]
