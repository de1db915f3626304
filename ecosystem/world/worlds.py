"""The world a run's nodes live in, chosen by `[world] kind`."""

from __future__ import annotations

from ecosystem.config import Config, GuardFilter
from ecosystem.world.local import LocalWorld
from ecosystem.world.prompts import TinyWorld

AnyWorld = TinyWorld | LocalWorld


COMPLIANT_ATTACKS = ("harmful_compliance", "backdoor", "benign_only")


def open_world(config: Config) -> AnyWorld:
    """The tiny world, or a real model's prompt sets and judge (a `ConfigError` if its files are
    unusable for the run's attacks and defenses)."""
    if config.world.kind == "tiny":
        return TinyWorld(config.world.seed)
    needs_targets = any(a.kind in COMPLIANT_ATTACKS for a in config.attack) or any(
        isinstance(d, GuardFilter) for d in config.defense
    )
    return LocalWorld(config.world, needs_targets)
