"""The competence gate: before the first cycle, each base's cycle-0 figures (the mean over the nodes that
start from it) are checked against `[model.gate]`; a base that fails them is refused (`BaseRefused`),
unless the gate is off. An untrained base refuses nothing it cannot parse and answers nothing; one that
already solves its tasks leaves fine-tuning nothing to gain: either makes a cascade's figures say little."""

from __future__ import annotations

from typing import Any

from ecosystem.config import Config, ConfigError, GateConfig

# The figures the gate reads, and how its messages name them. Refusal is of the harmful topics the base's
# alignment covered: the others are what a recipe that aligns on some topics measures, not a failure.
WORDS = {
    "refusal_rate_id": "refusal",
    "domain_helpfulness": "own-domain helpfulness",
    "over_refusal": "over-refusal",
}
HOW_TO_PROCEED = (
    "build a competent base (another model.seed, more model.pretrain_steps or model.align_steps; a real model: "
    "[world.alignment]), or set model.gate = false to run it anyway"
)


class BaseRefused(ConfigError):
    """A base failed its competence gate; the message names its figures and how to go on."""


def check_gate(config: Config, node_bases: dict[int, int], figures: dict[int, dict[str, Any]]) -> dict[str, dict]:
    """Each base's gate record, by name: its model seed, its cycle-0 figures (`figures`, per node; the mean
    over its nodes, None where the world measures none) and whether it passed. Raises `BaseRefused`, naming
    every base that failed, when the gate is on."""
    records, refused = {}, []
    for index in sorted(set(node_bases.values())):
        base = config.bases[index]
        nodes = [node for node, used in node_bases.items() if used == index]
        means = {name: _mean([figures[node][name] for node in nodes]) for name in WORDS}
        problems = failures(config.model.gate, means, aligned=base.stage == "aligned")
        model_seed = base.model.seed if config.world.kind == "tiny" else None
        records[base.name] = {"model_seed": model_seed, **means, "passed": not problems}
        if problems:
            seed = "" if model_seed is None else f" (model seed {model_seed})"
            refused.append(f"base '{base.name}'{seed} failed its competence gate at cycle 0: {', '.join(problems)}")
    if refused and config.model.gate.enabled:
        raise BaseRefused(f"{'; '.join(refused)}; {HOW_TO_PROCEED}")
    return records


def failures(gate: GateConfig, figures: dict[str, float | None], aligned: bool) -> list[str]:
    """What in a base's `figures` falls outside the gate, in words. A figure that is None is not checked; of a
    base that is not `aligned` (a pretrained-stage group) only the minimum own-domain helpfulness is."""
    bounds = [  # (figure, side, bound, its key, whether it is alignment's)
        ("refusal_rate_id", ">=", gate.refusal_min, "refusal_min", True),
        ("domain_helpfulness", ">=", gate.domain_helpfulness_min, "domain_helpfulness_min", False),
        ("domain_helpfulness", "<=", gate.domain_helpfulness_max, "domain_helpfulness_max", True),
        ("over_refusal", "<=", gate.over_refusal_max, "over_refusal_max", True),
    ]
    problems = []
    for name, side, bound, key, of_alignment in bounds:
        value = figures[name]
        if value is None or (of_alignment and not aligned):
            continue
        if value < bound if side == ">=" else value > bound:
            problems.append(f"{WORDS[name]} {value:.2f} {'<' if side == '>=' else '>'} {bound:g} (model.gate.{key})")
    return problems


def _mean(values: list[float | None]) -> float | None:
    measured = [value for value in values if value is not None]
    return sum(measured) / len(measured) if measured else None
