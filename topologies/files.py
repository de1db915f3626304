"""Graphs from files: GraphML, GML, or an edge-list CSV whose header is `source,target[,weight]`.

Any file can be named as a topology file, so an error names the file and, where known, the line,
but never quotes the file's content.
"""

from __future__ import annotations

import csv
import io
import math
import re
from collections.abc import Callable
from pathlib import Path
from xml.etree import ElementTree

import networkx as nx

from topologies.errors import TopologyError

MAX_FILE_BYTES = 50_000_000  # a sparse graph of MAX_NODES nodes needs well under 1 MB; 50 MB takes minutes to parse
CSV_HEADERS = (["source", "target"], ["source", "target", "weight"])
GRAPHML_NODE_TAGS = ("{http://graphml.graphdrawing.org/xmlns}node", "node")  # networkx also reads un-namespaced files
GML_POSITION = re.compile(r" at \((\d+), \d+\)$")  # how networkx's GML parser ends a message that has a position


def load(path: str | Path) -> nx.DiGraph:
    """The graph in `path` with nodes 0..n-1, each labelled (`label`) as in the file, or else by its name there.

    Nodes whose names are all whole numbers keep their numeric order; other names are numbered in
    order of appearance. An undirected file's edges go both ways; a CSV's edges are directed.
    Every `weight` found must be a finite number; node attributes (such as `domain`) are kept.
    """
    path = Path(path)
    topology_file = f"topology file {str(path)!r}"  # quoted: a path could hold a newline
    if path.suffix.lower() not in READERS:
        raise TopologyError(f"{topology_file}: unknown file type {path.suffix!r}; use .graphml, .gml or .csv")
    encoding, parse = READERS[path.suffix.lower()]
    try:
        graph = nx.DiGraph(parse(_decode(_read(path), encoding)))
    except TopologyError as error:
        raise TopologyError(f"cannot read {topology_file}: {error}") from None
    for node, data in graph.nodes(data=True):
        data["label"] = str(data.get("label", node))
    label = nx.get_node_attributes(graph, "label")
    loop = next(nx.selfloop_edges(graph), None)
    if loop is not None:
        raise TopologyError(f"{topology_file}: self-loop at node {label[loop[0]]!r}; a model cannot learn from itself")
    for source, target, weight in graph.edges(data="weight"):
        if weight is not None:
            edge = f"{topology_file}: edge {label[source]!r} → {label[target]!r}"
            graph.edges[source, target]["weight"] = _finite(weight, edge)
    order = sorted(graph, key=int) if all(str(node).isdecimal() for node in graph) else list(graph)
    return nx.relabel_nodes(graph, {node: index for index, node in enumerate(order)})


def _read(path: Path) -> bytes:
    try:
        if path.exists() and not path.is_file():  # a directory, or a pipe or device that may never end
            raise TopologyError("not a regular file")
        with path.open("rb") as file:
            data = file.read(MAX_FILE_BYTES + 1)
    except OSError as error:
        raise TopologyError(error.strerror) from None
    if len(data) > MAX_FILE_BYTES:
        raise TopologyError(f"larger than {MAX_FILE_BYTES // 1_000_000} MB, the most a topology file may be")
    return data


def _decode(data: bytes, encoding: str) -> str:
    try:
        return data.decode(encoding)
    except UnicodeDecodeError as error:
        line = data.count(b"\n", 0, error.start) + 1
        raise TopologyError(f"line {line} is not {encoding} text") from None


def _parse_graphml(text: str) -> nx.Graph:
    try:
        root = ElementTree.fromstring(text)
    except ElementTree.ParseError as error:
        raise TopologyError(f"not well-formed XML (line {error.position[0]})") from None
    try:
        graph = nx.parse_graphml(text)
    except Exception:  # networkx raises many kinds of error on a malformed graph, quoting the file
        raise TopologyError("not a valid GraphML graph") from None
    declared = {str(element.get("id")) for element in root.iter() if element.tag in GRAPHML_NODE_TAGS}
    undeclared = next((node for node in graph if node not in declared), None)  # networkx adds such nodes silently
    if undeclared is not None:
        raise TopologyError(f"an edge refers to node {undeclared!r}, which the file does not declare")
    return graph


def _parse_gml(text: str) -> nx.Graph:
    try:
        return nx.parse_gml(text.split("\n"), label="id")  # split as read_gml does, so line numbers are an editor's
    except Exception as error:  # networkx raises many kinds of error on a malformed graph, quoting the file
        position = GML_POSITION.search(str(error))
        raise TopologyError("not a valid GML graph" + (f" (line {position[1]})" if position else "")) from None


def _parse_csv(text: str) -> nx.DiGraph:
    graph = nx.DiGraph()
    rows = csv.reader(io.StringIO(text, newline=""))
    try:
        header = [cell.strip() for cell in next(rows, [])]
        if header not in CSV_HEADERS:
            raise TopologyError("line 1: the header must be source,target or source,target,weight")
        for row in rows:
            if not row:
                continue
            if len(row) != len(header):
                raise TopologyError(f"line {rows.line_num}: expected {len(header)} fields, got {len(row)}")
            source, target, *weight = (cell.strip() for cell in row)
            graph.add_edge(source, target)
            if weight:
                graph.edges[source, target]["weight"] = weight[0]
    except csv.Error:
        raise TopologyError(f"line {rows.line_num}: not valid CSV") from None
    return graph


def _finite(value: object, where: str) -> float:
    try:
        number = float(value)
    except (TypeError, ValueError, OverflowError):  # the value is not quoted: it is the file's content
        raise TopologyError(f"{where}: the weight is not a number") from None
    if not math.isfinite(number):
        raise TopologyError(f"{where}: the weight is {number}; a weight must be a finite number")
    return number


READERS: dict[str, tuple[str, Callable[[str], nx.Graph]]] = {  # suffix: (encoding, parser)
    ".graphml": ("UTF-8", _parse_graphml),
    ".gml": ("ASCII", _parse_gml),  # GML writes other characters as HTML entities
    ".csv": ("UTF-8", _parse_csv),
}
