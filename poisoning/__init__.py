"""Poisoning-robustness studies: attacks (what, how much, into whom, when) and defenses.

Each kind is one class holding its parameters (what a config's `[[attack]]` or `[[defense]]`
table validates to) and its behaviour (the hooks the shard calls). Importing this package needs
neither torch nor the simulator's engine.
"""

from poisoning.attacks import (
    ATTACKS,
    Attack,
    AttackBase,
    AttackConfig,
    Backdoor,
    BenignOnly,
    HarmfulCompliance,
    NarrowFinetune,
    TargetingError,
    attacked_nodes,
    first_acting_cycle,
    resolve,
)
from poisoning.defenses import (
    DEFENSES,
    Anchor,
    DefenseBase,
    DefenseConfig,
    DiverseData,
    GuardFilter,
    Quarantine,
    Rehearsal,
)

__all__ = [
    "ATTACKS",
    "DEFENSES",
    "Anchor",
    "Attack",
    "AttackBase",
    "AttackConfig",
    "Backdoor",
    "BenignOnly",
    "DefenseBase",
    "DefenseConfig",
    "DiverseData",
    "GuardFilter",
    "HarmfulCompliance",
    "NarrowFinetune",
    "Quarantine",
    "Rehearsal",
    "TargetingError",
    "attacked_nodes",
    "first_acting_cycle",
    "resolve",
]
