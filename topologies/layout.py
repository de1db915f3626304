"""Where a graph's nodes are drawn: one layout for `cascade graph`, the run report and the dashboard."""

from __future__ import annotations

import networkx as nx

LAYOUT_SEED = 0  # a fixed seed: the same graph is drawn the same way everywhere, every time


def layout(graph: nx.DiGraph) -> dict[int, tuple[float, float]]:
    """Node positions: layers from left to right when data flows one way (a DAG), else a seeded spring layout."""
    if nx.is_directed_acyclic_graph(graph):
        layers = dict(enumerate(nx.topological_generations(graph)))
        positions = nx.multipartite_layout(graph, subset_key=layers)
    else:
        positions = nx.spring_layout(graph, seed=LAYOUT_SEED)
    return {node: (float(x), float(y)) for node, (x, y) in positions.items()}
