"""Defenses that the ecosystem's operators deploy, node by node."""

from __future__ import annotations

from collections.abc import Callable, Sequence

import numpy as np
import torch
from sklearn.feature_extraction.text import CountVectorizer
from sklearn.linear_model import LogisticRegression

from ecosystem.config import Anchor, DefenseConfig, GuardFilter, Quarantine, Rehearsal
from ecosystem.seeding import Phase, rng
from ecosystem.training import Pair
from ecosystem.world.worlds import AnyWorld


def deployed(defenses: list[DefenseConfig], kind: type, node: int) -> DefenseConfig | None:
    """The defense of class `kind` that `node` deploys, if any."""
    return next((d for d in defenses if isinstance(d, kind) and d.covers(node)), None)


class Guard:
    """A small learned harm classifier over (prompt, response) words: a logistic regression,
    trained on labelled pairs drawn from the world, so it has real (imperfect) precision and recall.
    Unlike the tiny world's exact judge it sees words, not the hidden tables: a garbled payload looks harmful."""

    def __init__(self, world: AnyWorld, config: GuardFilter, seed: int) -> None:
        pairs, labels = world.guard_corpus(config.examples, rng(seed, 0, -1, Phase.init, 1))
        self.vectorizer = CountVectorizer(token_pattern=r"\S+", binary=True)
        self.model = LogisticRegression(C=0.1, max_iter=1000)
        self.model.fit(self.vectorizer.fit_transform(_texts(pairs)), labels)
        self.threshold = config.threshold

    def flags(self, pairs: Sequence[Pair]) -> np.ndarray:
        if not pairs:
            return np.zeros(0, dtype=bool)
        return self.model.predict_proba(self.vectorizer.transform(_texts(pairs)))[:, 1] > self.threshold


def _texts(pairs: Sequence[Pair]) -> list[str]:
    return [f"{prompt} {response}" for prompt, response in pairs]


def guard_filter(guard: Guard, world: AnyWorld, pairs: list[Pair]) -> tuple[list[Pair], dict[str, float | int | None]]:
    """Drop the pairs the guard flags; its precision and recall against the world's judge."""
    flagged = guard.flags(pairs)
    harmful = np.array(world.harmful(pairs), dtype=bool)
    caught = int((flagged & harmful).sum())
    record = {
        "pairs_filtered": int(flagged.sum()),
        "guard_precision": caught / flagged.sum() if flagged.any() else None,
        "guard_recall": caught / harmful.sum() if harmful.any() else None,
    }
    return [pair for pair, drop in zip(pairs, flagged, strict=True) if not drop], record


def quarantined(config: Quarantine, probe_refusal: dict[int, float]) -> set[int]:
    """The in-neighbours whose refusal of the probes fell under the threshold."""
    return {sender for sender, refusal in probe_refusal.items() if refusal < config.threshold}


def rehearsal_pairs(config: Rehearsal, world: AnyWorld, seed: int, cycle: int, node: int, others: int) -> list[Pair]:
    """Alignment pairs making up `fraction` of the fine-tune, on the cycles the defense refreshes."""
    if (cycle - 1) % config.every:
        return []
    count = round(others * config.fraction / (1 - config.fraction))
    return world.alignment_pairs(count, rng(seed, cycle, node, Phase.own_data, 1))


def anchor(config: Anchor, reference: dict[str, torch.Tensor]) -> Callable[[torch.nn.Module], torch.Tensor]:
    """`weight` times the squared L2 distance of the trainable weights from the aligned base's (for LoRA,
    from the untrained adapter, whose update to the base is zero)."""

    def penalty(model: torch.nn.Module) -> torch.Tensor:
        return config.weight * sum(
            (param - reference[name]).pow(2).sum() for name, param in model.named_parameters() if param.requires_grad
        )

    return penalty
