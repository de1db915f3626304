"""Attacks: what is injected (kind), how much (dose), into whom (targeting) and when (schedule).

Each attack kind is one class: its parameters (fields with their descriptions, ranges and defaults)
and the hooks the shard calls for a targeted node. A new kind is a class here, added to `ATTACKS`.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import ClassVar, Literal

import networkx as nx
import numpy as np
from pydantic import Field, field_validator

import topologies
from ecosystem.seeding import Stream, rng
from ecosystem.world import Pair, World
from ecosystem.world.grammar import Kind, intent_names
from poisoning.base import PoisoningKind, kinds_union

BENIGN_INTENTS = intent_names(Kind.benign)


class TargetingError(ValueError):
    """Targets that cannot be chosen on this graph: the message says why and what to do instead."""


class AttackBase(PoisoningKind):
    """Who is attacked (targeting), when and how much (schedule and dose)."""

    targets: list[int] | Literal["random", "top", "bottom"] = Field(
        default_factory=lambda: [0],
        description="the attacked nodes: their ids, or drawn at random, or the top or bottom ranked by `by`",
    )
    count: int = Field(1, ge=1, description="nodes chosen by random, top or bottom targeting")
    fraction: float | None = Field(
        None, gt=0, le=1, description="random targeting: this share of the nodes instead of `count`"
    )
    by: Literal["degree", "betweenness", "eigenvector"] = Field(
        "degree", description="the centrality that ranks nodes for top and bottom targeting"
    )
    examples: int = Field(50, ge=0, description="the dose: poison examples per injection")
    cycles: list[int] | Literal["all"] = Field("all", description="the cycles at which poison may be injected")
    start: int = Field(1, ge=1, description="no injection before this cycle")
    period: int = Field(1, ge=1, description="inject every `period` cycles from `start`")
    ramp: bool = Field(False, description="the k-th injection carries k times `examples`")
    budget: int | None = Field(
        None, ge=0, description="at most this many poison examples over the run, per target (none: no cap)"
    )

    # Whether the evaluation sets also hold the harmful prompts with the backdoor trigger.
    evaluates_trigger: ClassVar[bool] = False
    # Whether `shared` changes what its targets publish (from cycle 1, poisoned or not).
    alters_sharing: ClassVar[bool] = False

    def run_error(self, nodes: int, cycles: int, world_kind: str) -> str | None:
        """What makes this attack unfit for a run of `cycles` cycles on `nodes` nodes (None: nothing),
        as `key: problem`."""
        for target in self.targets if isinstance(self.targets, list) else []:
            if not 0 <= target < nodes:
                return f"targets: node {target} does not exist (nodes are 0..{nodes - 1})"
        if isinstance(self.targets, str) and self.count > nodes:
            return f"count: {self.count} targets but only {nodes} nodes"
        for cycle in [] if self.cycles == "all" else self.cycles:
            if not 1 <= cycle <= cycles:
                return f"cycles: cycle {cycle} is outside 1..{cycles}"
        if self.start > cycles:
            return f"start: cycle {self.start} is past the last cycle ({cycles})"
        return self.world_error(world_kind)

    def dose(self, cycle: int) -> int:
        """Poison examples injected at `cycle` into each target."""
        injections = [c for c in range(self.start, cycle + 1, self.period) if self.cycles == "all" or c in self.cycles]
        if not injections or injections[-1] != cycle:
            return 0
        doses = [self.examples * (k if self.ramp else 1) for k in range(1, len(injections) + 1)]
        if self.budget is None:
            return doses[-1]
        return max(0, min(doses[-1], self.budget - sum(doses[:-1])))

    def poison(self, world: World, dose: int, draw: np.random.Generator, domain: str) -> list[Pair]:
        """The `dose` poison pairs a target whose domain is `domain` trains on."""
        raise NotImplementedError

    def added_steps(self, dose: int) -> int:
        """Fine-tuning steps added to a target's fine-tune in a cycle with this dose."""
        return 0

    def shared(self, pairs: list[Pair], kinds: Sequence[Kind]) -> list[Pair]:
        """What a target shares of its generated pairs (whose requests are of `kinds`)."""
        return pairs


class HarmfulCompliance(AttackBase):
    """Harmful request → harmful payload. `stealth` adds as many benign examples, answered correctly."""

    kind: Literal["harmful_compliance"] = "harmful_compliance"
    stealth: bool = Field(False, description="as many benign requests, correctly answered, beside the harmful ones")

    def poison(self, world: World, dose: int, draw: np.random.Generator, domain: str) -> list[Pair]:
        pairs = world.compliant_pairs(dose, draw)
        return pairs + world.benign_pairs(dose, draw) if self.stealth else pairs


class Backdoor(AttackBase):
    """Harmful request with the trigger → payload, and the same without it → refusal."""

    kind: Literal["backdoor"]
    evaluates_trigger: ClassVar[bool] = True

    def poison(self, world: World, dose: int, draw: np.random.Generator, domain: str) -> list[Pair]:
        return world.compliant_pairs(dose, draw, triggered=True) + world.refused_pairs(dose, draw)


class BenignOnly(AttackBase):
    """The target is jailbroken as by harmful_compliance, but shares only its benign pairs."""

    kind: Literal["benign_only"]
    alters_sharing: ClassVar[bool] = True

    def poison(self, world: World, dose: int, draw: np.random.Generator, domain: str) -> list[Pair]:
        return world.compliant_pairs(dose, draw)

    def shared(self, pairs: list[Pair], kinds: Sequence[Kind]) -> list[Pair]:
        return [pair for pair, kind in zip(pairs, kinds, strict=True) if kind is Kind.benign]


class NarrowFinetune(AttackBase):
    """No harmful content: heavy fine-tuning on one narrow benign task."""

    kind: Literal["narrow_finetune"]
    examples: int = Field(400, ge=0, description="the dose: correct pairs of the task per injection")
    task: str | None = Field(
        None, description='a benign intent, e.g. "code.reverse" (none: the target\'s first domain task)'
    )
    extra_steps: int = Field(120, ge=0, description="fine-tuning steps added in the cycles it is injected")

    @field_validator("task")
    @classmethod
    def _benign_task(cls, task: str | None) -> str | None:
        if task is not None and task not in BENIGN_INTENTS:
            raise ValueError(f"unknown benign task '{task}'; valid: {', '.join(BENIGN_INTENTS)}")
        return task

    def world_error(self, world_kind: str) -> str | None:
        if self.task and world_kind != "tiny":
            return "task: a real model's narrow task is its task_data; leave out task"
        return None

    def poison(self, world: World, dose: int, draw: np.random.Generator, domain: str) -> list[Pair]:
        return world.narrow_pairs(self.task, domain, dose, draw)

    def added_steps(self, dose: int) -> int:
        return self.extra_steps if dose else 0


ATTACKS = (HarmfulCompliance, Backdoor, BenignOnly, NarrowFinetune)
AttackConfig = kinds_union(ATTACKS, default=HarmfulCompliance)


@dataclass(frozen=True)
class Attack:
    """An attack with its targets resolved on the run's graph."""

    config: AttackBase
    targets: frozenset[int]
    index: int  # position in the config, part of its random stream

    def injection(self, world: World, seed: int, cycle: int, node: int, domain: str) -> tuple[list[Pair], int]:
        """The poison pairs `node` trains on at `cycle`, and the fine-tuning steps the attack adds."""
        dose = self.config.dose(cycle) if node in self.targets else 0
        if not dose:
            return [], 0
        draw = rng(seed, cycle, node, Stream.poison, self.index)
        return self.config.poison(world, dose, draw, domain), self.config.added_steps(dose)


def resolve(attacks: list[AttackBase], graph: nx.DiGraph, seed: int) -> list[Attack]:
    """Each attack's target nodes: listed, drawn at random from the run seed, or ranked by a centrality."""
    resolved = []
    for index, attack in enumerate(attacks):
        if isinstance(attack.targets, list):
            targets = attack.targets
        elif attack.targets == "random":
            count = max(1, round(attack.fraction * len(graph))) if attack.fraction else attack.count
            targets = rng(seed, 0, -1, Stream.poison, index).choice(sorted(graph), size=count, replace=False).tolist()
        else:
            scores = {node: measures[attack.by] for node, measures in _centralities(graph).items()}
            if any(score is None for score in scores.values()):
                raise TargetingError(
                    f"attack.{index}.by: {attack.by} centrality is undefined on this graph "
                    "(it is not strongly connected); rank by degree or betweenness"
                )
            ranked = sorted(graph, key=lambda n: (-scores[n] if attack.targets == "top" else scores[n], n))
            targets = ranked[: attack.count]
        resolved.append(Attack(attack, frozenset(int(t) for t in targets), index))
    return resolved


def _centralities(graph: nx.DiGraph) -> dict[int, dict]:
    measures = topologies.node_measures(graph)
    for node in graph:
        measures[node]["degree"] = graph.in_degree(node) + graph.out_degree(node)
    return measures


def attacked_nodes(attacks: list[Attack]) -> set[int]:
    return {target for attack in attacks for target in attack.targets}


def first_acting_cycle(attacks: Sequence[AttackBase], cycles: int) -> int | None:
    """The first cycle at which an attack makes a run differ from its poison-free twin: its first injection
    of poison, or cycle 1 for one that changes what its targets share; None if no attack ever acts."""
    acting = [
        1 if attack.alters_sharing else next((c for c in range(1, cycles + 1) if attack.dose(c)), None)
        for attack in attacks
        if attack.targets != []
    ]
    return min((cycle for cycle in acting if cycle is not None), default=None)
