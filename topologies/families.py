"""The graph families: seeded networkx generators, each a pydantic class of its parameters (with their
descriptions, ranges and defaults) whose docstring describes the family.

A generator returns an undirected graph where data flows both ways along each edge, or a
directed one where it flows from a node's outputs to the nodes that train on them.
"""

from __future__ import annotations

import itertools
import random
from typing import Any, ClassVar

import networkx as nx
from pydantic import BaseModel, ConfigDict, Field, ValidationError
from pydantic.fields import FieldInfo
from pydantic_core import ErrorDetails

from topologies.errors import TopologyError
from topologies.files import load

NODE_LIMIT = 100_000  # the most nodes any graph may have (max_nodes included): sizes are counted up to it
TYPE_NAMES = {int: "an integer", float: "a number", bool: "true or false", str: "a string"}
LOWER = {"ge": ("[", "at least"), "gt": ("(", "above")}  # constraint: (interval bracket, alone in words)
UPPER = {"le": ("]", "at most"), "lt": (")", "below")}


def bounds(field: FieldInfo) -> str:
    """A field's allowed range in words, from its constraints ('' when any value of its type is allowed)."""
    limits = {key: getattr(item, key) for item in field.metadata for key in (*LOWER, *UPPER) if hasattr(item, key)}
    low = next((key for key in LOWER if key in limits), None)
    high = next((key for key in UPPER if key in limits), None)
    if low and high:
        return f"in {LOWER[low][0]}{limits[low]}, {limits[high]}{UPPER[high][0]}"
    if low or high:
        return f"{(LOWER | UPPER)[low or high][1]} {limits[low or high]}"
    return ""


class Family(BaseModel):
    """A graph family: its parameters, checked strictly (2.0 is not an integer), and its generator. A
    family's docstring describes it."""

    model_config = ConfigDict(extra="forbid", strict=True, allow_inf_nan=False, frozen=True)

    edges: ClassVar[str]  # the number of directed edges, for the documentation

    @classmethod
    def resolve(cls, given: dict[str, Any]) -> Family:
        """Every parameter, defaults filled in, checked; a TopologyError says what is wrong."""
        unknown = sorted(set(given) - set(cls.model_fields))
        if unknown:
            raise TopologyError(f"no parameter {unknown[0]!r}; the parameters are: {', '.join(cls.model_fields)}")
        try:
            params = cls.model_validate(given)
        except ValidationError as error:
            raise TopologyError(cls._in_words(error.errors()[0])) from None
        if problem := params.problem():
            raise TopologyError(problem)
        return params

    @classmethod
    def _in_words(cls, error: ErrorDetails) -> str:
        key = str(error["loc"][0])
        field, value = cls.model_fields[key], error["input"]
        if error["type"] in ("missing", "string_too_short"):
            return f"{key} is required: {field.description}"
        if error["type"] == "finite_number":
            return f"{key} must be a finite number (got {value!r})"
        if error["type"].endswith("_type"):
            return f"{key} must be {TYPE_NAMES[field.annotation]} (got {value!r})"
        return f"{key} must be {bounds(field)} (got {value!r})"

    def problem(self) -> str | None:
        """What makes these parameters unfit together (None: nothing)."""
        return None

    def size(self) -> int:
        """The node count, known before generating."""
        raise NotImplementedError

    def most_edges(self) -> int:
        """The most directed edges the graph can have, known before generating."""
        nodes = self.size()
        return nodes * (nodes - 1)

    def generate(self, seed: int) -> nx.Graph:
        """The graph, with nodes 0..n-1, drawn from `seed` where the family is random."""
        raise NotImplementedError


class Sized(Family):
    """A family whose node count is its `nodes` parameter."""

    nodes: int = Field(8, ge=2, description="number of nodes")

    def size(self) -> int:
        return self.nodes


class Complete(Sized):
    """everyone learns from everyone"""

    edges: ClassVar[str] = "nodes·(nodes-1)"

    def generate(self, seed: int) -> nx.Graph:
        return nx.complete_graph(self.nodes)


class Ring(Sized):
    """each node exchanges with its two neighbours on a cycle"""

    edges: ClassVar[str] = "2·nodes"
    nodes: int = Field(8, ge=3, description="number of nodes")

    def most_edges(self) -> int:
        return 2 * self.nodes

    def generate(self, seed: int) -> nx.Graph:
        return nx.cycle_graph(self.nodes)


class Chain(Sized):
    """fine-tunes of fine-tunes: node i trains node i+1, nothing flows back"""

    edges: ClassVar[str] = "nodes-1"

    def most_edges(self) -> int:
        return self.nodes - 1

    def generate(self, seed: int) -> nx.Graph:
        return nx.path_graph(self.nodes, create_using=nx.DiGraph)


class Star(Sized):
    """hub and spokes: node 0 (a base-model provider) exchanges with every other node"""

    edges: ClassVar[str] = "2·(nodes-1)"

    def most_edges(self) -> int:
        return 2 * (self.nodes - 1)

    def generate(self, seed: int) -> nx.Graph:
        return nx.star_graph(self.nodes - 1)


class LineageTree(Family):
    """a base provider (node 0) fanning out into fine-tunes of fine-tunes; data flows parent → child"""

    edges: ClassVar[str] = "nodes-1, where nodes = 1 + branching + … + branching^depth"
    branching: int = Field(2, ge=1, description="children per model")
    depth: int = Field(2, ge=1, description="generations below the base")

    def size(self) -> int:
        """1 + branching + … + branching^depth, counted level by level only until it passes `NODE_LIMIT`
        (a larger tree is refused, and its exact size could take hours to compute)."""
        if self.branching == 1:
            return self.depth + 1
        nodes = width = 1
        for _ in range(self.depth):
            width *= self.branching
            nodes += width
            if nodes > NODE_LIMIT:
                break
        return nodes

    def most_edges(self) -> int:
        return self.size() - 1

    def generate(self, seed: int) -> nx.Graph:
        return nx.balanced_tree(self.branching, self.depth, create_using=nx.DiGraph)


class ErdosRenyi(Sized):
    """random graph: each pair of nodes is linked with probability p"""

    edges: ClassVar[str] = "random, p·nodes·(nodes-1) expected"
    p: float = Field(0.3, ge=0, le=1, description="link probability")
    directed: bool = Field(False, description="one-way links")

    def generate(self, seed: int) -> nx.Graph:
        return nx.gnp_random_graph(self.nodes, self.p, seed=seed, directed=self.directed)


class WattsStrogatz(Sized):
    """small world: a ring where each node links to its k nearest nodes, each link rewired with probability p"""

    edges: ClassVar[str] = "nodes·k"
    k: int = Field(4, ge=2, description="neighbours per node, even, less than nodes")
    p: float = Field(0.1, ge=0, le=1, description="rewiring probability")

    def problem(self) -> str | None:
        if self.k % 2:
            return f"k must be even (got {self.k})"
        if self.k >= self.nodes:
            return f"k must be less than nodes (got k={self.k}, nodes={self.nodes})"
        return None

    def most_edges(self) -> int:
        return self.nodes * self.k

    def generate(self, seed: int) -> nx.Graph:
        return nx.watts_strogatz_graph(self.nodes, self.k, self.p, seed=seed)


class BarabasiAlbert(Sized):
    """scale-free: each new node links to m existing nodes, preferring well-connected ones"""

    edges: ClassVar[str] = "2·m·(nodes-m)"
    m: int = Field(2, ge=1, description="links per new node, less than nodes")

    def problem(self) -> str | None:
        return f"m must be less than nodes (got m={self.m}, nodes={self.nodes})" if self.m >= self.nodes else None

    def most_edges(self) -> int:
        return 2 * self.m * (self.nodes - self.m)

    def generate(self, seed: int) -> nx.Graph:
        return nx.barabasi_albert_graph(self.nodes, self.m, seed=seed)


class StochasticBlock(Sized):
    """communities of near-equal size: links within a community with probability p_in, across with p_out"""

    edges: ClassVar[str] = "random, p_in within and p_out across communities, both ways"
    communities: int = Field(2, ge=1, description="number of communities, at most nodes")
    p_in: float = Field(0.8, ge=0, le=1, description="link probability within a community")
    p_out: float = Field(0.05, ge=0, le=1, description="link probability across communities")

    def problem(self) -> str | None:
        if self.communities > self.nodes:
            return f"communities must be at most nodes (got communities={self.communities}, nodes={self.nodes})"
        return None

    def generate(self, seed: int) -> nx.Graph:
        count = self.communities
        sizes = [self.nodes // count + (block < self.nodes % count) for block in range(count)]
        chances = [[self.p_in if row == column else self.p_out for column in range(count)] for row in range(count)]
        return nx.stochastic_block_model(sizes, chances, seed=seed)


class Grid2d(Family):
    """2-D lattice: each node exchanges with its neighbours up, down, left and right"""

    edges: ClassVar[str] = "2·(rows·(cols-1) + cols·(rows-1)), or 4·rows·cols when periodic"
    rows: int = Field(3, ge=1, description="rows")
    cols: int = Field(3, ge=1, description="columns")
    periodic: bool = Field(False, description="wrap around (a torus): needs at least 3 rows and 3 columns")

    def problem(self) -> str | None:
        if self.rows * self.cols < 2:
            return f"rows·cols must be at least 2 (got {self.rows}·{self.cols})"
        if self.periodic and min(self.rows, self.cols) < 3:
            return f"a periodic grid needs at least 3 rows and 3 columns (got {self.rows}·{self.cols})"
        return None

    def size(self) -> int:
        return self.rows * self.cols

    def most_edges(self) -> int:
        return 4 * self.rows * self.cols

    def generate(self, seed: int) -> nx.Graph:
        return nx.convert_node_labels_to_integers(nx.grid_2d_graph(self.rows, self.cols, periodic=self.periodic))


class RandomRegular(Sized):
    """random graph where every node has the same number of neighbours"""

    edges: ClassVar[str] = "nodes·degree"
    degree: int = Field(3, ge=1, description="neighbours per node, less than nodes; nodes·degree even")

    def problem(self) -> str | None:
        if self.degree >= self.nodes:
            return f"degree must be less than nodes (got degree={self.degree}, nodes={self.nodes})"
        if self.nodes * self.degree % 2:
            return f"nodes·degree must be even (got {self.nodes}·{self.degree})"
        return None

    def most_edges(self) -> int:
        return self.nodes * self.degree

    def generate(self, seed: int) -> nx.Graph:
        return nx.random_regular_graph(self.degree, self.nodes, seed=seed)


class SupplyChain(Family):
    """providers → aggregators → applications: every aggregator distils from every provider, each
    application fine-tunes on `sources` aggregators drawn at random"""

    edges: ClassVar[str] = "providers·aggregators + applications·sources"
    providers: int = Field(2, ge=1, description="base-model providers: the first nodes")
    aggregators: int = Field(3, ge=1, description="models distilled from every provider: the next nodes")
    applications: int = Field(6, ge=1, description="application models: the last nodes")
    sources: int = Field(1, ge=1, description="aggregators each application trains on, at most aggregators")

    def problem(self) -> str | None:
        if self.sources > self.aggregators:
            return f"sources must be at most aggregators (got sources={self.sources}, aggregators={self.aggregators})"
        return None

    def size(self) -> int:
        return self.providers + self.aggregators + self.applications

    def most_edges(self) -> int:
        return self.providers * self.aggregators + self.applications * self.sources

    def generate(self, seed: int) -> nx.Graph:
        chooser = random.Random(seed)
        provider_ids = range(self.providers)
        aggregator_ids = range(self.providers, self.providers + self.aggregators)
        application_ids = range(self.providers + self.aggregators, self.size())
        graph = nx.DiGraph()
        graph.add_nodes_from(range(self.size()))
        graph.add_edges_from(itertools.product(provider_ids, aggregator_ids))
        graph.add_edges_from(
            (source, app) for app in application_ids for source in chooser.sample(aggregator_ids, self.sources)
        )
        return graph


class File(Family):
    """a graph read from a GraphML, GML or edge-list CSV file"""

    edges: ClassVar[str] = "as in the file; an undirected file's edges count both ways"
    path: str = Field(min_length=1, description="the graph file to read (.graphml, .gml or .csv)")

    def size(self) -> int:
        return load(self.path).number_of_nodes()

    def most_edges(self) -> int:
        return 0  # bounded by the file's size (files.MAX_FILE_BYTES)

    def generate(self, seed: int) -> nx.Graph:
        return load(self.path)


FAMILIES: dict[str, type[Family]] = {
    "complete": Complete,
    "ring": Ring,
    "chain": Chain,
    "star": Star,
    "lineage_tree": LineageTree,
    "erdos_renyi": ErdosRenyi,
    "watts_strogatz": WattsStrogatz,
    "barabasi_albert": BarabasiAlbert,
    "stochastic_block": StochasticBlock,
    "grid_2d": Grid2d,
    "random_regular": RandomRegular,
    "supply_chain": SupplyChain,
    "file": File,
}
