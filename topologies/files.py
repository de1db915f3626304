"""Graphs from files: GraphML, GML, or an edge-list CSV whose header is `source,target[,weight]`."""

from __future__ import annotations

import csv
from collections.abc import Callable
from pathlib import Path
from xml.etree.ElementTree import ParseError

import networkx as nx

from topologies.errors import TopologyError


def load(path: str | Path) -> nx.DiGraph:
    """The graph in `path` with nodes 0..n-1, each labelled (`label`) as in the file, or else by its name there.

    Nodes whose names are all whole numbers keep their numeric order; other names are numbered in
    order of appearance. An undirected file's edges go both ways; a CSV's edges are directed.
    Every `weight` found is converted to a number; node attributes (such as `domain`) are kept.
    """
    path = Path(path)
    reader = READERS.get(path.suffix.lower())
    if reader is None:
        raise TopologyError(f"topology file {path}: unknown file type '{path.suffix}'; use .graphml, .gml or .csv")
    try:
        graph = nx.DiGraph(reader(path))
    except (OSError, ValueError, csv.Error, ParseError, nx.NetworkXError) as error:
        raise TopologyError(f"cannot read topology file {path}: {error}") from None
    loop = next(nx.selfloop_edges(graph), None)
    if loop is not None:
        raise TopologyError(f"topology file {path}: self-loop at node '{loop[0]}'; a model cannot learn from itself")
    for source, target, weight in graph.edges(data="weight"):
        if weight is not None:
            graph.edges[source, target]["weight"] = _number(weight, f"topology file {path}: edge {source} → {target}")
    for node, data in graph.nodes(data=True):
        data["label"] = str(data.get("label", node))
    order = sorted(graph, key=int) if all(str(node).isdigit() for node in graph) else list(graph)
    return nx.relabel_nodes(graph, {node: index for index, node in enumerate(order)})


def _read_csv(path: Path) -> nx.DiGraph:
    graph = nx.DiGraph()
    with path.open(newline="") as file:
        rows = csv.reader(file)
        header = [cell.strip() for cell in next(rows, [])]
        if header not in (["source", "target"], ["source", "target", "weight"]):
            raise ValueError(f"the header must be source,target or source,target,weight (got {','.join(header)!r})")
        for line, row in enumerate(rows, start=2):
            if not row:
                continue
            if len(row) != len(header):
                raise ValueError(f"line {line}: expected {len(header)} fields, got {len(row)}")
            source, target, *weight = (cell.strip() for cell in row)
            graph.add_edge(source, target)
            if weight:
                graph.edges[source, target]["weight"] = weight[0]
    return graph


def _number(value: object, where: str) -> float:
    try:
        return float(value)
    except (TypeError, ValueError):
        raise TopologyError(f"{where}: weight {value!r} is not a number") from None


READERS: dict[str, Callable[[Path], nx.Graph]] = {
    ".graphml": nx.read_graphml,
    ".gml": lambda path: nx.read_gml(path, label="id"),
    ".csv": _read_csv,
}
