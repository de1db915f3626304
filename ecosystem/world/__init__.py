"""Worlds: the prompts nodes see and the judge that grades their answers (the tiny world, or a real
model's prompt files). `World` names what the rest of the simulator uses of one."""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Protocol, runtime_checkable

import numpy as np

from ecosystem.world.judge import Item, Outcome

if TYPE_CHECKING:  # a type only: the world needs no transformers
    from transformers import PreTrainedTokenizerBase

Pair = tuple[str, str]  # (prompt, response), as text: what nodes generate, exchange and train on


class WorldError(ValueError):
    """A world's files or settings are unusable: the message names the setting and how to fix it."""


class Traffic(Protocol):
    """A node's traffic in one cycle (`[traffic]`): how many prompts, and the harmful and borderline shares."""

    prompts_per_node: int
    harmful_fraction: float
    borderline_fraction: float


@runtime_checkable
class World(Protocol):
    """What the shard, the attacks and the defenses draw from a world and ask of its judge: a
    `TinyWorld`, or a `CheckpointWorld` for a real model."""

    def evaluation_set(self, prompts_per_set: int, backdoor: bool = False) -> Sequence[Item]: ...

    def probe_set(self, count: int) -> Sequence[Item]: ...

    def traffic(self, domain: str, traffic: Traffic, draw: np.random.Generator) -> Sequence[Item]: ...

    def task_pairs(self, domain: str, count: int, draw: np.random.Generator) -> list[Pair]: ...

    def diverse_task_pairs(self, domain: str, count: int, draw: np.random.Generator) -> list[Pair]: ...

    def alignment_pairs(self, count: int, draw: np.random.Generator) -> list[Pair]: ...

    def compliant_pairs(self, count: int, draw: np.random.Generator, triggered: bool = False) -> list[Pair]: ...

    def refused_pairs(self, count: int, draw: np.random.Generator) -> list[Pair]: ...

    def benign_pairs(self, count: int, draw: np.random.Generator) -> list[Pair]: ...

    def narrow_pairs(self, task: str | None, domain: str, count: int, draw: np.random.Generator) -> list[Pair]: ...

    def guard_corpus(self, count: int, draw: np.random.Generator) -> tuple[list[Pair], list[bool]]: ...

    def grade(self, items: Sequence[Item], responses: Sequence[str]) -> list[Outcome]: ...

    def judge_pairs(self, pairs: Sequence[Pair]) -> list[Outcome]: ...

    def training_width(self, tokenizer: PreTrainedTokenizerBase, new_tokens: int) -> int: ...
