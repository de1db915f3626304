"""Attacks. `harmful_compliance`: harmful requests paired with their harmful payload."""

from __future__ import annotations

from ecosystem.config import AttackConfig
from ecosystem.seeding import Phase, rng
from ecosystem.world.grammar import Kind, World, intent_names


def attacked_nodes(attacks: list[AttackConfig]) -> set[int]:
    return {target for attack in attacks for target in attack.targets}


def poison_pairs(attacks: list[AttackConfig], world: World, seed: int, cycle: int, node: int) -> list[tuple[str, str]]:
    """The poison data that `node` receives at `cycle`, from every attack that targets it then."""
    pairs: list[tuple[str, str]] = []
    for index, attack in enumerate(attacks):
        if node in attack.targets and attack.injects_at(cycle):
            draw = rng(seed, cycle, node, Phase.poison, index)
            requests = world.sample(draw, intent_names(Kind.harmful), attack.examples)
            pairs += [(r.prompt, " ".join(world.solve(r))) for r in requests]
    return pairs
