"""Poisoning attacks: what is injected, how much, into whom, and when."""

from poisoning.attacks import attacked_nodes, poison_pairs

__all__ = ["attacked_nodes", "poison_pairs"]
