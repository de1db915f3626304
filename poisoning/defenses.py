"""Defenses that the ecosystem's operators deploy, node by node.

Each defense kind is one class: its parameters (fields with their descriptions, ranges and defaults)
and the hooks the shard calls for a node that deploys it, at each step of its fine-tune (which senders
to cut, what to filter from what it received, its own data, what to add, which regularizer). A new kind
is a class here, added to `DEFENSES`.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any, ClassVar, Literal

import numpy as np
from pydantic import Field, PrivateAttr

from ecosystem.seeding import Stream, rng
from ecosystem.world import Pair, World
from ecosystem.world.judge import Outcome
from poisoning.base import PoisoningKind, kinds_union

Regularizer = Callable[[dict[str, Any]], Any]  # a node's trainable weights → a penalty (torch scalar) on its loss
FilterRecord = dict[str, float | int | None]


class DefenseBase(PoisoningKind):
    """Who deploys the defense (nodes) and when (schedule: from `start` to `stop`, every `every` cycles)."""

    nodes: list[int] | Literal["all"] = Field("all", description="the nodes that deploy the defense")
    start: int = Field(1, ge=1, description="not before this cycle")
    stop: int | None = Field(None, ge=1, description="not after this cycle (none: to the end)")
    every: int = Field(1, ge=1, description="at `start`, then every `every` cycles")

    # The per-node metrics columns its hooks' figures fill (name: type); None where a node does not deploy it.
    record_columns: ClassVar[dict[str, type]] = {}

    def covers(self, node: int, cycle: int) -> bool:
        """Whether `node` deploys the defense at `cycle`."""
        scheduled = self.start <= cycle <= (self.stop or cycle) and (cycle - self.start) % self.every == 0
        return scheduled and (self.nodes == "all" or node in self.nodes)

    def run_error(self, nodes: int, cycles: int, world_kind: str) -> str | None:
        """What makes this defense unfit for a run of `cycles` cycles on `nodes` nodes (None: nothing), as
        `key: problem`."""
        for node in self.nodes if isinstance(self.nodes, list) else []:
            if not 0 <= node < nodes:
                return f"nodes: node {node} does not exist (nodes are 0..{nodes - 1})"
        if self.start > cycles:
            return f"start: cycle {self.start} is past the last cycle ({cycles})"
        if self.stop is not None and self.stop < self.start:
            return f"stop: cycle {self.stop} is before start ({self.start})"
        return self.world_error(world_kind)

    def probe_count(self) -> int:
        """Held-out harmful prompts that every node answers each cycle, for this defense to probe it."""
        return 0

    def cut(self, probe_refusal: dict[int, float], cut: set[int]) -> FilterRecord:
        """Add to `cut` the in-neighbours whose data the node refuses this cycle, from their refusal of
        the probes; figures about what the node cut."""
        return {}

    def filter(self, world: World, seed: int, pairs: list[Pair]) -> tuple[list[Pair], FilterRecord]:
        """What the node keeps of the pairs it received, and figures about what it dropped."""
        return pairs, {}

    def own_data(self, world: World, domain: str, count: int, draw: np.random.Generator) -> list[Pair] | None:
        """The node's own task data, if this defense draws it differently (None: the default)."""
        return None

    def added(self, world: World, seed: int, cycle: int, node: int, pairs: int) -> list[Pair]:
        """Pairs added to a fine-tune of `pairs` pairs."""
        return []

    def regularizer(self, reference: dict[str, Any]) -> Regularizer | None:
        """A penalty added to the loss, given the trainable weights of the aligned base."""
        return None


class GuardFilter(DefenseBase):
    """Receivers drop incoming pairs that a small learned guard classifies as harmful."""

    kind: Literal["guard_filter"]
    threshold: float = Field(0.5, gt=0, lt=1, description="guard probability above which a pair is dropped")
    examples: int = Field(400, ge=10, description="the guard's training set: labelled pairs drawn from the world")
    record_columns: ClassVar[dict[str, type]] = {"pairs_filtered": int, "guard_precision": float, "guard_recall": float}
    _guard: Guard | None = PrivateAttr(None)

    def filter(self, world: World, seed: int, pairs: list[Pair]) -> tuple[list[Pair], FilterRecord]:
        """Drop the pairs the guard flags; its precision and recall against the world's judge."""
        if self._guard is None:
            self._guard = Guard(world, self.examples, self.threshold, seed)
        flagged = self._guard.flags(pairs)
        harmful = np.array([outcome is Outcome.harmful for outcome in world.judge_pairs(pairs)], dtype=bool)
        caught = int((flagged & harmful).sum())
        record = {
            "pairs_filtered": int(flagged.sum()),
            "guard_precision": caught / flagged.sum() if flagged.any() else None,
            "guard_recall": caught / harmful.sum() if harmful.any() else None,
        }
        return [pair for pair, drop in zip(pairs, flagged, strict=True) if not drop], record


class Guard:
    """A small learned harm classifier over (prompt, response) words: a logistic regression,
    trained on labelled pairs drawn from the world, so it has real (imperfect) precision and recall.
    Unlike the tiny world's exact judge it sees words, not the hidden tables: a garbled payload looks harmful."""

    def __init__(self, world: World, examples: int, threshold: float, seed: int) -> None:
        from sklearn.feature_extraction.text import CountVectorizer  # slow to import: only where a guard is used
        from sklearn.linear_model import LogisticRegression

        pairs, labels = world.guard_corpus(examples, rng(seed, 0, -1, Stream.init, 1))
        self.vectorizer = CountVectorizer(token_pattern=r"\S+", binary=True)
        self.model = LogisticRegression(C=0.1, max_iter=1000)
        self.model.fit(self.vectorizer.fit_transform(_texts(pairs)), labels)
        self.threshold = threshold

    def flags(self, pairs: Sequence[Pair]) -> np.ndarray:
        if not pairs:
            return np.zeros(0, dtype=bool)
        return self.model.predict_proba(self.vectorizer.transform(_texts(pairs)))[:, 1] > self.threshold


def _texts(pairs: Sequence[Pair]) -> list[str]:
    return [f"{prompt} {response}" for prompt, response in pairs]


class Rehearsal(DefenseBase):
    """Alignment data mixed into the fine-tune (on the cycles of its schedule: a periodic refresh)."""

    kind: Literal["rehearsal"]
    fraction: float = Field(0.5, gt=0, lt=1, description="the alignment data's share of the node's fine-tuning pairs")

    def added(self, world: World, seed: int, cycle: int, node: int, pairs: int) -> list[Pair]:
        """Alignment pairs making up `fraction` of the fine-tune."""
        count = round(pairs * self.fraction / (1 - self.fraction))
        return world.alignment_pairs(count, rng(seed, cycle, node, Stream.own_data, 1))


class Anchor(DefenseBase):
    """An L2 penalty pulling the trainable weights back toward the aligned base."""

    kind: Literal["anchor"]
    weight: float = Field(1.0, gt=0, description="lambda: the factor of the squared distance in the loss")

    def regularizer(self, reference: dict[str, Any]) -> Regularizer:
        """`weight` times the squared L2 distance of the trainable weights from the aligned base's (for
        LoRA, from the untrained adapter, whose update to the base is zero)."""

        def penalty(weights: dict[str, Any]) -> Any:
            return self.weight * sum((weights[name] - reference[name]).pow(2).sum() for name in reference)

        return penalty


class Quarantine(DefenseBase):
    """Probe in-neighbours with held-out harmful prompts; refuse data from those under `threshold`."""

    kind: Literal["quarantine"]
    threshold: float = Field(0.5, ge=0, le=1, description="probe refusal below which a sender is cut")
    probes: int = Field(20, ge=1, description="held-out harmful prompts each in-neighbour answers per cycle")
    record_columns: ClassVar[dict[str, type]] = {"edges_cut": int}  # the node's in-edges cut by its defenses

    def probe_count(self) -> int:
        return self.probes

    def cut(self, probe_refusal: dict[int, float], cut: set[int]) -> FilterRecord:
        cut |= {sender for sender, refusal in probe_refusal.items() if refusal < self.threshold}
        return {"edges_cut": len(cut)}


class DiverseData(DefenseBase):
    """The node's own task data drawn from every benign intent and phrasing, not its domain's only."""

    kind: Literal["diverse_data"]

    def world_error(self, world_kind: str) -> str | None:
        return "kind: diverse_data draws from the tiny world's intents; leave it out" if world_kind != "tiny" else None

    def own_data(self, world: World, domain: str, count: int, draw: np.random.Generator) -> list[Pair]:
        return world.diverse_task_pairs(domain, count, draw)


DEFENSES = (GuardFilter, Rehearsal, Anchor, Quarantine, DiverseData)
DefenseConfig = kinds_union(DEFENSES, default=None)
