"""Ecosystem graphs: who learns from whom. An edge u→v with weight w means that v receives a
share w of u's generated (prompt, answer) pairs each cycle."""

from __future__ import annotations

from collections.abc import Callable

import networkx as nx

DOMAIN_CYCLE = ("code", "medical", "support", "legal")


class TopologyError(ValueError):
    """An unknown family or bad parameters: the message says which and what is valid."""


def _ring(nodes: int) -> nx.DiGraph:
    return nx.cycle_graph(nodes).to_directed()


def _complete(nodes: int) -> nx.DiGraph:
    return nx.complete_graph(nodes, create_using=nx.DiGraph)


def _chain(nodes: int) -> nx.DiGraph:
    """A supply chain of fine-tunes: node i's outputs train node i+1, and nothing flows back."""
    return nx.path_graph(nodes, create_using=nx.DiGraph)


FAMILIES: dict[str, Callable[[int], nx.DiGraph]] = {"ring": _ring, "complete": _complete, "chain": _chain}


def check_name(name: str) -> None:
    if name not in FAMILIES:
        raise TopologyError(f"unknown topology '{name}'; valid names: {', '.join(sorted(FAMILIES))}")


def build(name: str, nodes: int, edge_weight: float = 1.0) -> nx.DiGraph:
    """The graph of family `name` with `nodes` nodes, edge weights and round-robin domains."""
    check_name(name)
    graph = FAMILIES[name](nodes)
    nx.set_edge_attributes(graph, edge_weight, "weight")
    nx.set_node_attributes(graph, {n: DOMAIN_CYCLE[n % len(DOMAIN_CYCLE)] for n in graph}, "domain")
    return graph


def hops_from(graph: nx.DiGraph, sources: set[int]) -> dict[int, int | None]:
    """Directed hop distance from the nearest source (data flows along edges); None if unreachable."""
    if not sources:
        return dict.fromkeys(graph, None)
    lengths = nx.multi_source_dijkstra_path_length(graph, sources, weight=None)
    return {node: lengths.get(node) for node in graph}
