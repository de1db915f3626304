"""The graph families: seeded networkx generators with documented, validated parameters.

A generator returns an undirected graph where data flows both ways along each edge, or a
directed one where it flows from a node's outputs to the nodes that train on them.
"""

from __future__ import annotations

import itertools
import math
import random
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import networkx as nx

from topologies.errors import TopologyError
from topologies.files import load

Params = dict[str, Any]
NODE_LIMIT = 100_000  # the most nodes any graph may have (max_nodes included): sizes are counted up to it
TYPE_NAMES = {int: "an integer", float: "a number", bool: "true or false", str: "a string"}


@dataclass(frozen=True)
class Param:
    default: int | float | bool | str
    doc: str
    minimum: float | None = None
    maximum: float | None = None

    def bounds(self) -> str:
        """The allowed range in words ('' when any value of the type is allowed)."""
        if self.maximum is not None:
            return f"in [{self.minimum}, {self.maximum}]"
        return "" if self.minimum is None else f"at least {self.minimum}"

    def validate(self, key: str, value: Any) -> Any:
        expected = type(self.default)
        if expected is float and type(value) is int:
            value = float(value)
        if type(value) is not expected:
            raise TopologyError(f"{key} must be {TYPE_NAMES[expected]} (got {value!r})")
        if expected is float and not math.isfinite(value):  # NaN slips past the bounds: it compares false
            raise TopologyError(f"{key} must be a finite number (got {value!r})")
        too_low = self.minimum is not None and value < self.minimum
        if too_low or (self.maximum is not None and value > self.maximum):
            raise TopologyError(f"{key} must be {self.bounds()} (got {value!r})")
        return value


@dataclass(frozen=True)
class Rule:
    """A constraint between parameters; `message` is formatted with the parameters."""

    holds: Callable[[Params], bool]
    message: str


@dataclass(frozen=True)
class Family:
    description: str
    generate: Callable[..., nx.Graph]  # (seed, **params) -> graph with nodes 0..n-1
    params: dict[str, Param]
    edges: str  # the number of directed edges, for the documentation
    rules: tuple[Rule, ...] = ()
    size: Callable[..., int] = lambda nodes, **_: nodes  # the node count, known before generating
    most_edges: Callable[..., int] | None = None  # directed edges at most, known before generating (None: all)

    def resolve(self, given: Params) -> Params:
        """Every parameter, defaults filled in, checked; a TopologyError says what is wrong."""
        unknown = sorted(set(given) - set(self.params))
        if unknown:
            raise TopologyError(f"no parameter {unknown[0]!r}; the parameters are: {', '.join(self.params)}")
        params = {key: param.validate(key, given.get(key, param.default)) for key, param in self.params.items()}
        for rule in self.rules:
            if not rule.holds(params):
                raise TopologyError(rule.message.format(**params))
        return params


NODES = Param(8, "number of nodes", 2)


def _tree_size(branching: int, depth: int) -> int:
    """1 + branching + … + branching^depth, counted level by level only until it passes `NODE_LIMIT`
    (a larger tree is refused, and its exact size could take hours to compute)."""
    if branching == 1:
        return depth + 1
    nodes = width = 1
    for _ in range(depth):
        width *= branching
        nodes += width
        if nodes > NODE_LIMIT:
            break
    return nodes


def _stochastic_block(seed: int, nodes: int, communities: int, p_in: float, p_out: float) -> nx.Graph:
    sizes = [nodes // communities + (block < nodes % communities) for block in range(communities)]
    chances = [[p_in if row == column else p_out for column in range(communities)] for row in range(communities)]
    return nx.stochastic_block_model(sizes, chances, seed=seed)


def _supply_chain(seed: int, providers: int, aggregators: int, applications: int, sources: int) -> nx.DiGraph:
    chooser = random.Random(seed)
    provider_ids = range(providers)
    aggregator_ids = range(providers, providers + aggregators)
    application_ids = range(providers + aggregators, providers + aggregators + applications)
    graph = nx.DiGraph()
    graph.add_nodes_from(range(providers + aggregators + applications))
    graph.add_edges_from(itertools.product(provider_ids, aggregator_ids))
    graph.add_edges_from((source, app) for app in application_ids for source in chooser.sample(aggregator_ids, sources))
    return graph


FAMILIES: dict[str, Family] = {
    "complete": Family(
        "everyone learns from everyone",
        lambda seed, nodes: nx.complete_graph(nodes),
        {"nodes": NODES},
        "nodes·(nodes-1)",
    ),
    "ring": Family(
        "each node exchanges with its two neighbours on a cycle",
        lambda seed, nodes: nx.cycle_graph(nodes),
        {"nodes": Param(8, "number of nodes", 3)},
        "2·nodes",
        most_edges=lambda nodes: 2 * nodes,
    ),
    "chain": Family(
        "fine-tunes of fine-tunes: node i trains node i+1, nothing flows back",
        lambda seed, nodes: nx.path_graph(nodes, create_using=nx.DiGraph),
        {"nodes": NODES},
        "nodes-1",
        most_edges=lambda nodes: nodes - 1,
    ),
    "star": Family(
        "hub and spokes: node 0 (a base-model provider) exchanges with every other node",
        lambda seed, nodes: nx.star_graph(nodes - 1),
        {"nodes": NODES},
        "2·(nodes-1)",
        most_edges=lambda nodes: 2 * (nodes - 1),
    ),
    "lineage_tree": Family(
        "a base provider (node 0) fanning out into fine-tunes of fine-tunes; data flows parent → child",
        lambda seed, branching, depth: nx.balanced_tree(branching, depth, create_using=nx.DiGraph),
        {"branching": Param(2, "children per model", 1), "depth": Param(2, "generations below the base", 1)},
        "nodes-1, where nodes = 1 + branching + … + branching^depth",
        size=lambda branching, depth: _tree_size(branching, depth),
        most_edges=lambda branching, depth: _tree_size(branching, depth) - 1,
    ),
    "erdos_renyi": Family(
        "random graph: each pair of nodes is linked with probability p",
        lambda seed, nodes, p, directed: nx.gnp_random_graph(nodes, p, seed=seed, directed=directed),
        {"nodes": NODES, "p": Param(0.3, "link probability", 0, 1), "directed": Param(False, "one-way links")},
        "random, p·nodes·(nodes-1) expected",
    ),
    "watts_strogatz": Family(
        "small world: a ring where each node links to its k nearest nodes, each link rewired with probability p",
        lambda seed, nodes, k, p: nx.watts_strogatz_graph(nodes, k, p, seed=seed),
        {"nodes": NODES, "k": Param(4, "neighbours per node, even", 2), "p": Param(0.1, "rewiring probability", 0, 1)},
        "nodes·k",
        most_edges=lambda nodes, k, p: nodes * k,
        rules=(
            Rule(lambda p: p["k"] % 2 == 0, "k must be even (got {k})"),
            Rule(lambda p: p["k"] < p["nodes"], "k must be less than nodes (got k={k}, nodes={nodes})"),
        ),
    ),
    "barabasi_albert": Family(
        "scale-free: each new node links to m existing nodes, preferring well-connected ones",
        lambda seed, nodes, m: nx.barabasi_albert_graph(nodes, m, seed=seed),
        {"nodes": NODES, "m": Param(2, "links per new node", 1)},
        "2·m·(nodes-m)",
        most_edges=lambda nodes, m: 2 * m * (nodes - m),
        rules=(Rule(lambda p: p["m"] < p["nodes"], "m must be less than nodes (got m={m}, nodes={nodes})"),),
    ),
    "stochastic_block": Family(
        "communities of near-equal size: links within a community with probability p_in, across with p_out",
        _stochastic_block,
        {
            "nodes": NODES,
            "communities": Param(2, "number of communities", 1),
            "p_in": Param(0.8, "link probability within a community", 0, 1),
            "p_out": Param(0.05, "link probability across communities", 0, 1),
        },
        "random, p_in within and p_out across communities, both ways",
        rules=(
            Rule(
                lambda p: p["communities"] <= p["nodes"],
                "communities must be at most nodes (got communities={communities}, nodes={nodes})",
            ),
        ),
    ),
    "grid_2d": Family(
        "2-D lattice: each node exchanges with its neighbours up, down, left and right",
        lambda seed, rows, cols, periodic: nx.convert_node_labels_to_integers(
            nx.grid_2d_graph(rows, cols, periodic=periodic)
        ),
        {
            "rows": Param(3, "rows", 1),
            "cols": Param(3, "columns", 1),
            "periodic": Param(False, "wrap around (a torus)"),
        },
        "2·(rows·(cols-1) + cols·(rows-1)), or 4·rows·cols when periodic",
        rules=(
            Rule(lambda p: p["rows"] * p["cols"] >= 2, "rows·cols must be at least 2 (got {rows}·{cols})"),
            Rule(
                lambda p: not p["periodic"] or min(p["rows"], p["cols"]) >= 3,
                "a periodic grid needs at least 3 rows and 3 columns (got {rows}·{cols})",
            ),
        ),
        size=lambda rows, cols, periodic: rows * cols,
        most_edges=lambda rows, cols, periodic: 4 * rows * cols,
    ),
    "random_regular": Family(
        "random graph where every node has the same number of neighbours",
        lambda seed, nodes, degree: nx.random_regular_graph(degree, nodes, seed=seed),
        {"nodes": NODES, "degree": Param(3, "neighbours per node", 1)},
        "nodes·degree",
        most_edges=lambda nodes, degree: nodes * degree,
        rules=(
            Rule(
                lambda p: p["degree"] < p["nodes"],
                "degree must be less than nodes (got degree={degree}, nodes={nodes})",
            ),
            Rule(lambda p: p["nodes"] * p["degree"] % 2 == 0, "nodes·degree must be even (got {nodes}·{degree})"),
        ),
    ),
    "supply_chain": Family(
        "providers → aggregators → applications: every aggregator distils from every provider, "
        "each application fine-tunes on `sources` aggregators drawn at random",
        _supply_chain,
        {
            "providers": Param(2, "base-model providers: the first nodes", 1),
            "aggregators": Param(3, "models distilled from every provider: the next nodes", 1),
            "applications": Param(6, "application models: the last nodes", 1),
            "sources": Param(1, "aggregators each application trains on", 1),
        },
        "providers·aggregators + applications·sources",
        rules=(
            Rule(
                lambda p: p["sources"] <= p["aggregators"],
                "sources must be at most aggregators (got sources={sources}, aggregators={aggregators})",
            ),
        ),
        size=lambda providers, aggregators, applications, sources: providers + aggregators + applications,
        most_edges=lambda providers, aggregators, applications, sources: (
            providers * aggregators + applications * sources
        ),
    ),
    "file": Family(
        "a graph read from a GraphML, GML or edge-list CSV file",
        lambda seed, path: load(path),
        {"path": Param("", "the .graphml, .gml or .csv file")},
        "as in the file; an undirected file's edges count both ways",
        rules=(Rule(lambda p: p["path"] != "", "path is required: the graph file to read"),),
        size=lambda path: load(path).number_of_nodes(),
        most_edges=lambda path: 0,  # bounded by the file's size (files.MAX_FILE_BYTES)
    ),
}
