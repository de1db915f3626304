"""Graph measures: per node (degrees, centralities, hop distance) and per graph (spectral radius, …)."""

from __future__ import annotations

import networkx as nx
import numpy as np


def hops_from(graph: nx.DiGraph, sources: set[int]) -> dict[int, int | None]:
    """Directed hop distance from the nearest source (data flows along edges); None if unreachable."""
    if not sources:
        return dict.fromkeys(graph, None)
    lengths = nx.multi_source_dijkstra_path_length(graph, sources, weight=None)
    return {node: lengths.get(node) for node in graph}


def node_measures(graph: nx.DiGraph) -> dict[int, dict[str, float | int | None]]:
    """Per node: in and out degree; betweenness (normalized, over directed shortest paths);
    PageRank along the data flow, weighted by the edge shares; and eigenvector centrality of the
    adjacency, which is only defined (None otherwise) when the graph is strongly connected."""
    betweenness = nx.betweenness_centrality(graph)
    pagerank = nx.pagerank(graph, weight="weight")
    eigenvector = _eigenvector_centrality(graph)
    return {
        node: {
            "in_degree": graph.in_degree(node),
            "out_degree": graph.out_degree(node),
            "betweenness": betweenness[node],
            "pagerank": pagerank[node],
            "eigenvector": eigenvector.get(node),
        }
        for node in graph
    }


def graph_measures(graph: nx.DiGraph) -> dict[str, float | int | None]:
    """Whole-graph figures: `components` counts weakly connected components; `diameter` is that of the
    largest of them with directions ignored; `clustering` is the average clustering of the undirected
    graph; `spectral_radius` is the largest |eigenvalue| of the (unweighted) adjacency, and its inverse
    `epidemic_threshold` (None for a graph without cycles, where any spread dies out)."""
    components = list(nx.weakly_connected_components(graph))
    largest = graph.subgraph(max(components, key=len)).to_undirected()
    radius = _spectral_radius(graph)
    return {
        "nodes": graph.number_of_nodes(),
        "edges": graph.number_of_edges(),
        "components": len(components),
        "diameter": nx.diameter(largest),
        "clustering": nx.average_clustering(graph.to_undirected()),
        "spectral_radius": radius,
        "epidemic_threshold": 1 / radius if radius > 0 else None,
    }


def _eigenvector_centrality(graph: nx.DiGraph) -> dict[int, float]:
    if not nx.is_strongly_connected(graph):
        return {}
    try:
        return nx.eigenvector_centrality(graph, max_iter=1000)
    except nx.PowerIterationFailedConvergence:
        return {}


def _spectral_radius(graph: nx.DiGraph) -> float:
    """Computed per strongly connected component: their spectra make up the graph's, and this avoids
    the numerical noise of eigenvalues of a nilpotent (acyclic) part."""
    radii = [
        np.abs(np.linalg.eigvals(nx.to_numpy_array(graph.subgraph(component), weight=None))).max()
        for component in nx.strongly_connected_components(graph)
        if len(component) > 1
    ]
    return float(max(radii, default=0.0))
