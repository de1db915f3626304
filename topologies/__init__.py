"""Ecosystem graphs: who learns from whom. An edge u→v with weight w means that v receives a
share w of u's generated (prompt, answer) pairs each cycle.

    import topologies
    graph = topologies.build("watts_strogatz", seed=1, nodes=16, k=4, p=0.1)
    topologies.graph_measures(graph)["spectral_radius"]

`FAMILIES` maps each family's name to its class: a pydantic model of its parameters, each with its
description, range and default. `check` validates a description without building it. This package
needs only networkx, numpy and pydantic.
"""

from topologies.core import (
    DOMAIN_MODES,
    DOMAINS,
    MAX_EDGES,
    MAX_NODES,
    WEIGHT_MODES,
    Topology,
    build,
    check,
    communities,
    family,
)
from topologies.errors import TopologyError
from topologies.families import FAMILIES, NODE_LIMIT, Family
from topologies.layout import layout
from topologies.measures import graph_measures, hops_from, node_measures

__all__ = [
    "DOMAINS",
    "DOMAIN_MODES",
    "FAMILIES",
    "MAX_EDGES",
    "MAX_NODES",
    "NODE_LIMIT",
    "WEIGHT_MODES",
    "Family",
    "Topology",
    "TopologyError",
    "build",
    "check",
    "communities",
    "family",
    "graph_measures",
    "hops_from",
    "layout",
    "node_measures",
]
