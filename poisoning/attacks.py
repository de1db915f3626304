"""Attacks: what is injected (kind), how much (dose), into whom (targeting) and when (schedule)."""

from __future__ import annotations

from dataclasses import dataclass

import networkx as nx

import topologies
from ecosystem.config import AttackConfig, BenignOnly, ConfigError, NarrowFinetune
from ecosystem.seeding import Phase, rng
from ecosystem.training import Pair
from ecosystem.world.worlds import AnyWorld


@dataclass(frozen=True)
class Attack:
    """An attack with its targets resolved on the run's graph."""

    config: AttackConfig
    targets: frozenset[int]
    index: int  # position in the config, part of its random stream


def resolve(attacks: list[AttackConfig], graph: nx.DiGraph, seed: int) -> list[Attack]:
    """Each attack's target nodes: listed, drawn at random from the run seed, or ranked by a centrality."""
    resolved = []
    for index, attack in enumerate(attacks):
        if isinstance(attack.targets, list):
            targets = attack.targets
        elif attack.targets == "random":
            count = max(1, round(attack.fraction * len(graph))) if attack.fraction else attack.count
            targets = rng(seed, 0, -1, Phase.poison, index).choice(sorted(graph), size=count, replace=False).tolist()
        else:
            scores = {node: measures[attack.by] for node, measures in _centralities(graph).items()}
            if any(score is None for score in scores.values()):
                raise ConfigError(
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


def shares_benign_only(attacks: list[Attack], node: int) -> bool:
    return any(isinstance(a.config, BenignOnly) and node in a.targets for a in attacks)


def backdoor_attacked(attacks: list[Attack]) -> bool:
    return any(a.config.kind == "backdoor" for a in attacks)


def extra_steps(attacks: list[Attack], cycle: int, node: int) -> int:
    """Fine-tuning steps that narrow fine-tuning attacks add to `node`'s fine-tune at `cycle`."""
    return sum(
        a.config.extra_steps
        for a in attacks
        if isinstance(a.config, NarrowFinetune) and node in a.targets and a.config.dose(cycle)
    )


def poison_pairs(attacks: list[Attack], world: AnyWorld, seed: int, cycle: int, node: int, domain: str) -> list[Pair]:
    """The poison data that `node` (whose domain is `domain`) receives at `cycle`."""
    pairs: list[Pair] = []
    for attack in attacks:
        dose = attack.config.dose(cycle) if node in attack.targets else 0
        if not dose:
            continue
        draw = rng(seed, cycle, node, Phase.poison, attack.index)
        kind = attack.config.kind
        if kind in ("harmful_compliance", "benign_only"):
            pairs += world.compliant_pairs(dose, draw)
            if kind == "harmful_compliance" and attack.config.stealth:
                pairs += world.benign_pairs(dose, draw)
        elif kind == "backdoor":
            pairs += world.compliant_pairs(dose, draw, triggered=True) + world.refused_pairs(dose, draw)
        else:  # narrow_finetune
            pairs += world.narrow_pairs(attack.config.task, domain, dose, draw)
    return pairs
