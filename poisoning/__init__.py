"""Poisoning-robustness studies: attacks (what, how much, into whom, when) and defenses."""

from poisoning.attacks import Attack, attacked_nodes, resolve

__all__ = ["Attack", "attacked_nodes", "resolve"]
