"""Base checkpoints: everything that makes the checkpoint a run's nodes start from, and the world they
live in. The tiny world's base is pretrained (and midtrained) and aligned by its recipe (`tiny`); a
real model's is its checkpoint, converted from GGUF (`gguf`), with its own answers and an optional
alignment stage (`real`); each is built once into the cache (`cache`). Importing the package loads no
torch: `ecosystem.bases.cache` is checked before a sweep starts, and the recipes load only when used."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

from ecosystem.config import BaseGroup, Config
from ecosystem.world.tiny import TinyWorld

if TYPE_CHECKING:
    from ecosystem.world.checkpoint import CheckpointWorld


def base_checkpoint(config: Config, base: BaseGroup | None = None) -> Path:
    """The checkpoint directory nodes start from: the tiny world's base (the run's own aligned one,
    or that of a [[base]] group), or a real model's (converted, answered and aligned as configured);
    built first where missing."""
    from ecosystem.bases.real import real_base  # torch and transformers: only once a base is needed
    from ecosystem.bases.tiny import ensure_base_model

    if config.world.kind == "tiny":
        base = base or config.bases[0]
        return ensure_base_model(config.world, base.model, base.stage)
    return real_base(config.world)


def open_world(config: Config) -> TinyWorld | CheckpointWorld:
    """The tiny world, or a real model's prompt sets and judge (a `ConfigError` if its files are
    unusable)."""
    if config.world.kind == "tiny":
        return TinyWorld(config.world.seed, config.world.grammar)
    from ecosystem.bases.real import open_checkpoint_world  # torch and transformers: a real model's world

    return open_checkpoint_world(config.world)
