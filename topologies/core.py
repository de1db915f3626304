"""Checking a topology description and building its graph: nodes 0..n-1 with a `domain`, edges with a `weight`."""

from __future__ import annotations

import random
import warnings
from dataclasses import dataclass
from typing import Any

import networkx as nx

from topologies.errors import TopologyError
from topologies.families import FAMILIES, NODE_LIMIT, Family
from topologies.files import load

DOMAINS = ("code", "medical", "support", "legal")  # the task domains of nodes (the tiny world's grammar uses them)
DOMAIN_MODES = ("round_robin", "random", "community", "file")
WEIGHT_MODES = ("uniform", "random", "file")
MAX_NODES = 1000
MAX_EDGES = 2_000_000  # directed edges: networkx holds about half a kilobyte each, and a run records each per cycle


@dataclass(frozen=True)
class Topology:
    """A checked description of a graph: all that building it still needs is the seed."""

    name: str
    params: Family  # the family's checked parameters, which generate its graph
    nodes: int
    domains: str
    weights: str
    edge_weight: float
    weight_range: tuple[float, float]


def family(name: str) -> type[Family]:
    if name not in FAMILIES:
        raise TopologyError(f"unknown topology {name!r}; valid names: {', '.join(FAMILIES)}")
    return FAMILIES[name]


def check(
    name: str,
    *,
    domains: str = "round_robin",
    weights: str = "uniform",
    edge_weight: float = 0.5,
    weight_range: tuple[float, float] = (0.1, 0.9),
    max_nodes: int = MAX_NODES,
    **params: Any,
) -> Topology:
    """Validate a description without generating the graph (a file is read to count its nodes).

    `domains` assigns each node's domain: round_robin (node i gets DOMAINS[i % 4]), random,
    community (the stochastic block model's blocks, else Louvain communities), or file (the
    file's `domain` attribute). `weights` sets each edge's share: uniform (`edge_weight`),
    random (uniform in `weight_range`), or file (the file's `weight`).
    """
    chosen = family(name)
    try:
        resolved = chosen.resolve(params)
    except TopologyError as error:
        raise TopologyError(f"{name}: {error}") from None
    _check_labelling(name, domains, weights, edge_weight, weight_range)
    nodes = resolved.size()
    if nodes > NODE_LIMIT:
        raise TopologyError(f"{name} would have more than {NODE_LIMIT} nodes, the most a graph may have")
    if nodes > max_nodes:
        raise TopologyError(f"{name} would have {nodes} nodes, more than max_nodes ({max_nodes}); raise max_nodes")
    if nodes < 2:
        raise TopologyError(f"{name} has {nodes} node(s); an ecosystem needs at least 2")
    edges = resolved.most_edges()
    if edges > MAX_EDGES:
        raise TopologyError(f"{name} could have {edges} edges, more than {MAX_EDGES}: choose fewer nodes or edges")
    if name == "file" and "file" in (domains, weights):  # refuse a missing or bad value before a run starts
        _check_file_labels(load(resolved.path), domains, weights)
    return Topology(name, resolved, nodes, domains, weights, edge_weight, tuple(weight_range))


def _check_labelling(
    name: str, domains: str, weights: str, edge_weight: float, weight_range: tuple[float, float]
) -> None:
    """The modes that label nodes with domains and edges with weights, and their values."""
    if domains not in DOMAIN_MODES:
        raise TopologyError(f"domains must be one of {', '.join(DOMAIN_MODES)} (got {domains!r})")
    if weights not in WEIGHT_MODES:
        raise TopologyError(f"weights must be one of {', '.join(WEIGHT_MODES)} (got {weights!r})")
    if name != "file" and "file" in (domains, weights):
        raise TopologyError(f"domains or weights 'file' need a graph from a file, not '{name}'")
    if not 0 <= edge_weight <= 1:  # negated, so that NaN (false in every comparison) is refused too
        raise TopologyError(f"edge_weight is a share of the sender's pairs, in [0, 1] (got {edge_weight})")
    low, high = weight_range
    if not 0 <= low <= high <= 1:
        raise TopologyError(f"weight_range must be [low, high] with 0 ≤ low ≤ high ≤ 1 (got {list(weight_range)})")


def _check_file_labels(graph: nx.DiGraph, domains: str, weights: str) -> None:
    if domains == "file":
        for node in graph:
            _file_domain(graph, node)
    if weights == "file":
        for edge in graph.edges:
            _file_weight(graph, *edge)


def build(name: str, *, seed: int = 0, **options: Any) -> nx.DiGraph:
    """The graph of family `name`, generated from `seed`; `options` are those of `check`.

    An undirected family's edges go both ways. A disconnected graph is allowed, with a warning
    that names its components.
    """
    topology = check(name, **options)
    generated = nx.DiGraph(topology.params.generate(seed))
    domains = _domains(generated, topology.domains, seed)
    graph = nx.DiGraph()
    for node in sorted(generated):
        label = generated.nodes[node].get("label")
        graph.add_node(node, domain=domains[node], **({} if label is None else {"label": label}))
    graph.add_weighted_edges_from((*edge, weight) for edge, weight in _weights(generated, topology, seed).items())
    _warn_if_disconnected(graph, name)
    return graph


def _domains(graph: nx.DiGraph, mode: str, seed: int) -> dict[int, str]:
    if mode == "round_robin":
        return {node: DOMAINS[node % len(DOMAINS)] for node in graph}
    if mode == "random":
        draw = random.Random(f"{seed}:domains")
        return {node: draw.choice(DOMAINS) for node in sorted(graph)}
    if mode == "community":
        groups = sorted(communities(graph, seed), key=min)
        return {node: DOMAINS[index % len(DOMAINS)] for index, group in enumerate(groups) for node in group}
    return {node: _file_domain(graph, node) for node in graph}


def communities(graph: nx.DiGraph, seed: int) -> list[set[int]]:
    """The stochastic block model's blocks, or else the Louvain communities of the undirected graph."""
    blocks = nx.get_node_attributes(graph, "block")
    if len(blocks) == len(graph):
        return [{node for node in graph if blocks[node] == block} for block in set(blocks.values())]
    return nx.community.louvain_communities(graph.to_undirected(), weight=None, seed=seed)


def _file_domain(graph: nx.DiGraph, node: int) -> str:
    domain = graph.nodes[node].get("domain")
    if domain not in DOMAINS:
        raise TopologyError(
            f"domains = 'file': node {graph.nodes[node]['label']!r} has domain {domain!r}; "
            f"valid domains: {', '.join(DOMAINS)}"
        )
    return domain


def _weights(graph: nx.DiGraph, topology: Topology, seed: int) -> dict[tuple[int, int], float]:
    edges = sorted(graph.edges)
    if topology.weights == "uniform":
        return dict.fromkeys(edges, topology.edge_weight)
    if topology.weights == "random":
        draw = random.Random(f"{seed}:weights")
        return {edge: draw.uniform(*topology.weight_range) for edge in edges}
    return {edge: _file_weight(graph, *edge) for edge in edges}


def _file_weight(graph: nx.DiGraph, source: int, target: int) -> float:
    weight = graph.edges[source, target].get("weight")
    edge = f"{graph.nodes[source]['label']!r} → {graph.nodes[target]['label']!r}"
    if weight is None:
        raise TopologyError(f"weights = 'file': edge {edge} has no weight in the file")
    if not 0 <= weight <= 1:
        raise TopologyError(f"weights = 'file': edge {edge} has weight {weight}; a weight is a share, in [0, 1]")
    return weight


def _warn_if_disconnected(graph: nx.DiGraph, name: str) -> None:
    components = sorted(nx.weakly_connected_components(graph), key=min)
    if len(components) > 1:
        listed = ", ".join(_brief(component) for component in components[:5])
        more = f" and {len(components) - 5} more" if len(components) > 5 else ""
        warnings.warn(
            f"the {name} graph has {len(components)} disconnected components: {listed}{more}; "
            "drift cannot cross between them",
            stacklevel=3,
        )


def _brief(component: set[int]) -> str:
    nodes = sorted(component)
    shown = ", ".join(map(str, nodes[:6]))
    return "{" + (shown if len(nodes) <= 6 else f"{shown}, … ({len(nodes)} nodes)") + "}"
