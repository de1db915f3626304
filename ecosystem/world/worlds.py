"""The world a run's nodes live in, chosen by `[world] kind`."""

from __future__ import annotations

from ecosystem.config import Config
from ecosystem.world.checkpoint import CheckpointWorld
from ecosystem.world.tiny import TinyWorld

AnyWorld = TinyWorld | CheckpointWorld


def open_world(config: Config) -> AnyWorld:
    """The tiny world, or a real model's prompt sets and judge (a `ConfigError` if its files are
    unusable for the run's attacks and defenses)."""
    if config.world.kind == "tiny":
        return TinyWorld(config.world.seed)
    answers_with_targets = any(kind.answers_with_targets for kind in (*config.attack, *config.defense))
    return CheckpointWorld(config.world, answers_with_targets)
