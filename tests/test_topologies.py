"""The topology library: families, files, attributes, validation, measures, and what a run records."""

from __future__ import annotations

import errno
import json
import os
import warnings
from pathlib import Path

import networkx as nx
import numpy as np
import polars as pl
import pytest
from typer.testing import CliRunner

import ecosystem
import topologies
from ecosystem.cli import app
from ecosystem.config import ConfigError, load_config
from ecosystem.world.grammar import DOMAINS
from tests.helpers import small_config
from topologies import TopologyError, build
from topologies.files import MAX_FILE_BYTES

NAN, INF = float("nan"), float("inf")

# family, parameters, documented node and edge counts (directed edges), whether every edge goes both ways
COUNTS = [
    ("complete", {"nodes": 2}, 2, 2, True),
    ("complete", {"nodes": 6}, 6, 30, True),
    ("ring", {"nodes": 3}, 3, 6, True),
    ("ring", {"nodes": 10}, 10, 20, True),
    ("chain", {"nodes": 2}, 2, 1, False),
    ("chain", {"nodes": 7}, 7, 6, False),
    ("star", {"nodes": 2}, 2, 2, True),
    ("star", {"nodes": 9}, 9, 16, True),
    ("lineage_tree", {"branching": 2, "depth": 3}, 15, 14, False),
    ("lineage_tree", {"branching": 3, "depth": 1}, 4, 3, False),
    ("lineage_tree", {"branching": 1, "depth": 4}, 5, 4, False),
    ("erdos_renyi", {"nodes": 6, "p": 0.0}, 6, 0, True),
    ("erdos_renyi", {"nodes": 6, "p": 1.0}, 6, 30, True),
    ("erdos_renyi", {"nodes": 6, "p": 1.0, "directed": True}, 6, 30, True),
    ("watts_strogatz", {"nodes": 10, "k": 4, "p": 0.0}, 10, 40, True),
    ("watts_strogatz", {"nodes": 12, "k": 2, "p": 0.5}, 12, 24, True),
    ("barabasi_albert", {"nodes": 10, "m": 2}, 10, 32, True),
    ("barabasi_albert", {"nodes": 6, "m": 1}, 6, 10, True),
    ("stochastic_block", {"nodes": 9, "communities": 3, "p_in": 1.0, "p_out": 0.0}, 9, 18, True),
    ("stochastic_block", {"nodes": 7, "communities": 2, "p_in": 1.0, "p_out": 1.0}, 7, 42, True),
    ("grid_2d", {"rows": 3, "cols": 4}, 12, 34, True),
    ("grid_2d", {"rows": 1, "cols": 5}, 5, 8, True),
    ("grid_2d", {"rows": 3, "cols": 3, "periodic": True}, 9, 36, True),
    ("random_regular", {"nodes": 8, "degree": 3}, 8, 24, True),
    ("random_regular", {"nodes": 10, "degree": 4}, 10, 40, True),
    ("supply_chain", {"providers": 2, "aggregators": 3, "applications": 6, "sources": 2}, 11, 18, False),
    ("supply_chain", {"providers": 1, "aggregators": 1, "applications": 1, "sources": 1}, 3, 2, False),
]


def build_quietly(name: str, **options) -> nx.DiGraph:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return build(name, **options)


def test_every_family_is_covered_by_the_count_table() -> None:
    assert {case[0] for case in COUNTS} == set(topologies.FAMILIES) - {"file"}


@pytest.mark.parametrize(("name", "params", "nodes", "edges", "both_ways"), COUNTS)
def test_families_have_their_documented_node_and_edge_counts(name, params, nodes, edges, both_ways) -> None:
    graph = build_quietly(name, seed=3, **params)
    assert list(graph) == list(range(nodes))
    assert graph.number_of_edges() == edges
    assert all(graph.has_edge(v, u) for u, v in graph.edges) == both_ways
    assert topologies.check(name, **params).nodes == nodes


def test_directed_families_flow_away_from_their_sources() -> None:
    assert set(build("chain", nodes=4).edges) == {(0, 1), (1, 2), (2, 3)}
    assert set(build("lineage_tree", branching=2, depth=2).edges) == {(0, 1), (0, 2), (1, 3), (1, 4), (2, 5), (2, 6)}
    chain = build("supply_chain", seed=5, providers=2, aggregators=2, applications=3, sources=1)
    assert {(p, a) for p in (0, 1) for a in (2, 3)} <= set(chain.edges)
    assert all(chain.in_degree(app) == 1 and chain.out_degree(app) == 0 for app in (4, 5, 6))
    directed = build("erdos_renyi", seed=1, nodes=12, p=0.5, directed=True)
    assert not all(directed.has_edge(v, u) for u, v in directed.edges)


RANDOM_FAMILIES = [
    ("erdos_renyi", {"nodes": 12, "p": 0.4}),
    ("watts_strogatz", {"nodes": 12, "k": 4, "p": 0.5}),
    ("barabasi_albert", {"nodes": 12, "m": 2}),
    ("stochastic_block", {"nodes": 12, "communities": 3, "p_in": 0.7, "p_out": 0.2}),
    ("random_regular", {"nodes": 12, "degree": 3}),
    ("supply_chain", {"providers": 2, "aggregators": 4, "applications": 8, "sources": 2}),
]


@pytest.mark.parametrize(("name", "params"), RANDOM_FAMILIES)
def test_the_seed_decides_the_graph(name, params) -> None:
    options = {"domains": "random", "weights": "random", **params}
    first, again = build_quietly(name, seed=7, **options), build_quietly(name, seed=7, **options)
    assert nx.utils.graphs_equal(first, again)
    assert list(first.edges(data=True)) == list(again.edges(data=True))
    others = [build_quietly(name, seed=seed, **params) for seed in (8, 9, 10)]
    assert any(set(other.edges) != set(first.edges) for other in others)


def test_domains_round_robin_random_and_by_community() -> None:
    assert topologies.DOMAINS == DOMAINS  # the world's domains, which the nodes' traffic is drawn from
    ring = build("ring", nodes=6)
    assert [ring.nodes[n]["domain"] for n in ring] == [*DOMAINS, *DOMAINS[:2]]
    drawn = build("complete", nodes=40, domains="random", seed=2)
    assert {drawn.nodes[n]["domain"] for n in drawn} == set(DOMAINS)
    blocks = build_quietly("stochastic_block", nodes=9, communities=3, p_in=1.0, p_out=0.0, domains="community")
    assert [blocks.nodes[n]["domain"] for n in blocks] == [d for d in DOMAINS[:3] for _ in range(3)]


def test_domains_by_community_without_blocks_follow_louvain(tmp_path) -> None:
    """Two 5-cliques joined by one edge: Louvain finds the cliques."""
    cliques = nx.disjoint_union(nx.complete_graph(5), nx.complete_graph(5))
    cliques.add_edge(4, 5)
    path = tmp_path / "cliques.graphml"
    nx.write_graphml(cliques, path)
    graph = build("file", path=str(path), domains="community", seed=1)
    domains = [graph.nodes[n]["domain"] for n in graph]
    assert domains == [DOMAINS[0]] * 5 + [DOMAINS[1]] * 5


def test_edge_weights_uniform_and_random_in_range() -> None:
    assert {w for *_, w in build("star", nodes=5, edge_weight=0.3).edges(data="weight")} == {0.3}
    graph = build("complete", nodes=8, weights="random", weight_range=(0.2, 0.4))
    weights = [w for *_, w in graph.edges(data="weight")]
    assert all(0.2 <= w <= 0.4 for w in weights) and len(set(weights)) == len(weights)


def round_trip_graph() -> nx.DiGraph:
    return build("watts_strogatz", seed=4, nodes=10, k=4, p=0.3, domains="random", weights="random")


def write_csv(graph: nx.DiGraph, path: Path) -> None:
    lines = ["source,target,weight", *(f"{u},{v},{w!r}" for u, v, w in graph.edges(data="weight"))]
    path.write_text("\n".join(lines) + "\n")


WRITERS = {"graphml": nx.write_graphml, "gml": nx.write_gml, "csv": write_csv}


@pytest.mark.parametrize("suffix", WRITERS)
def test_each_file_format_round_trips(suffix, tmp_path) -> None:
    original = round_trip_graph()
    path = tmp_path / f"graph.{suffix}"
    WRITERS[suffix](original, path)
    domains = "round_robin" if suffix == "csv" else "file"  # a CSV edge list has no node attributes
    loaded = build("file", path=str(path), weights="file", domains=domains)
    assert list(loaded) == list(original)
    assert sorted(loaded.edges(data="weight")) == sorted(original.edges(data="weight"))
    assert [loaded.nodes[n]["label"] for n in loaded] == [str(n) for n in original]
    if suffix != "csv":
        assert nx.get_node_attributes(loaded, "domain") == nx.get_node_attributes(original, "domain")


def test_file_nodes_are_numbered_by_number_or_by_appearance(tmp_path) -> None:
    numbered = tmp_path / "numbered.csv"
    numbered.write_text("source,target\n10,2\n2,1\n")
    graph = build("file", path=str(numbered))
    assert [graph.nodes[n]["label"] for n in graph] == ["1", "2", "10"]
    assert set(graph.edges) == {(2, 1), (1, 0)}
    named = tmp_path / "named.csv"
    named.write_text("source,target\nlab,startup\nstartup,app\n")
    graph = build("file", path=str(named))
    assert [graph.nodes[n]["label"] for n in graph] == ["lab", "startup", "app"]
    assert set(graph.edges) == {(0, 1), (1, 2)}
    superscript = tmp_path / "superscript.csv"
    superscript.write_text("source,target\n2,²\n", encoding="utf-8")  # '²' is a digit, but not a number
    graph = build("file", path=str(superscript))
    assert [graph.nodes[n]["label"] for n in graph] == ["2", "²"]


def test_an_undirected_file_exchanges_both_ways(tmp_path) -> None:
    path = tmp_path / "path.graphml"
    nx.write_graphml(nx.path_graph(3), path)
    assert set(build("file", path=str(path)).edges) == {(0, 1), (1, 0), (1, 2), (2, 1)}


BAD_OPTIONS = {
    "unknown family": ("moebius", {}, "unknown topology 'moebius'; valid names: complete, ring, chain"),
    "too few nodes": ("complete", {"nodes": 1}, "complete: nodes must be at least 2 (got 1)"),
    "ring of two": ("ring", {"nodes": 2}, "ring: nodes must be at least 3 (got 2)"),
    "probability above 1": ("erdos_renyi", {"p": 1.5}, "erdos_renyi: p must be in [0, 1] (got 1.5)"),
    "negative probability": ("stochastic_block", {"p_out": -0.1}, "p_out must be in [0, 1] (got -0.1)"),
    "k not below n": ("watts_strogatz", {"nodes": 4, "k": 4}, "k must be less than nodes (got k=4, nodes=4)"),
    "odd k": ("watts_strogatz", {"k": 3}, "k must be even (got 3)"),
    "m not below n": ("barabasi_albert", {"nodes": 3, "m": 3}, "m must be less than nodes"),
    "odd degree sum": ("random_regular", {"nodes": 5, "degree": 3}, "nodes·degree must be even (got 5·3)"),
    "degree not below n": ("random_regular", {"nodes": 4, "degree": 4}, "degree must be less than nodes"),
    "too many communities": ("stochastic_block", {"nodes": 3, "communities": 4}, "communities must be at most nodes"),
    "small periodic grid": ("grid_2d", {"rows": 2, "periodic": True}, "at least 3 rows and 3 columns"),
    "too many sources": ("supply_chain", {"aggregators": 2, "sources": 3}, "sources must be at most aggregators"),
    "wrong type": ("watts_strogatz", {"k": 2.5}, "k must be an integer (got 2.5)"),
    "bool for a number": ("ring", {"nodes": True}, "nodes must be an integer (got True)"),
    "unknown parameter": ("ring", {"k": 2}, "ring: no parameter 'k'; the parameters are: nodes"),
    "too large": ("complete", {"nodes": 1200}, "complete would have 1200 nodes, more than max_nodes (1000)"),
    "too large tree": ("lineage_tree", {"branching": 4, "depth": 4, "max_nodes": 100}, "341 nodes, more than"),
    "weight above 1": ("ring", {"edge_weight": 1.2}, "edge_weight is a share of the sender's pairs, in [0, 1]"),
    "bad weight range": ("ring", {"weights": "random", "weight_range": (0.8, 0.2)}, "0 ≤ low ≤ high ≤ 1"),
    "unknown domains mode": ("ring", {"domains": "alphabetical"}, "domains must be one of round_robin, random"),
    "unknown weights mode": ("ring", {"weights": "heavy"}, "weights must be one of uniform, random, file"),
    "file mode without a file": ("ring", {"weights": "file"}, "need a graph from a file, not 'ring'"),
    "no path": ("file", {}, "file: path is required"),
    "NaN edge weight": ("ring", {"edge_weight": NAN}, "edge_weight is a share of the sender's pairs, in [0, 1]"),
    "infinite edge weight": ("ring", {"edge_weight": INF}, "edge_weight is a share of the sender's pairs, in [0, 1]"),
    "NaN in the weight range": ("ring", {"weights": "random", "weight_range": (NAN, 0.5)}, "(got [nan, 0.5])"),
    "infinite weight range": ("ring", {"weights": "random", "weight_range": (-INF, INF)}, "(got [-inf, inf])"),
}


@pytest.mark.parametrize("case", BAD_OPTIONS)
def test_bad_options_are_refused_with_their_message(case) -> None:
    name, options, message = BAD_OPTIONS[case]
    with pytest.raises(TopologyError) as error:
        build(name, **options)
    assert message in str(error.value) and "\n" not in str(error.value)


FLOAT_PARAMS = [
    (name, key)
    for name, family in topologies.FAMILIES.items()
    for key, field in family.model_fields.items()
    if field.annotation is float
]


@pytest.mark.parametrize("value", [NAN, INF, -INF])
@pytest.mark.parametrize(("name", "key"), FLOAT_PARAMS)
def test_non_finite_parameters_are_refused(name, key, value) -> None:
    with pytest.raises(TopologyError) as error:
        topologies.check(name, **{key: value})
    assert str(error.value) == f"{name}: {key} must be a finite number (got {value})"


def test_names_with_newlines_keep_messages_on_one_line(tmp_path) -> None:
    labelled = tmp_path / "labelled.graphml"
    nx.write_graphml(nx.DiGraph([("a\nb", "c")]), labelled)
    attempts = [
        ("ring\nx", {}),
        ("ring", {"k\nx": 1}),
        ("file", {"path": str(tmp_path / "a\nb.csv")}),
        ("file", {"path": str(labelled), "domains": "file"}),
    ]
    for name, options in attempts:
        with pytest.raises(TopologyError) as error:
            topologies.check(name, **options)
        assert "\n" not in str(error.value)


def graphml(body: str, weight_type: str = "double") -> str:
    """A directed GraphML graph around `body`, with a `weight` edge key `w` of type `weight_type`."""
    return (
        '<graphml xmlns="http://graphml.graphdrawing.org/xmlns">'
        f'<key id="w" for="edge" attr.name="weight" attr.type="{weight_type}"/>'
        f'<graph edgedefault="directed">{body}</graph></graphml>'
    )


SECRET = "SECRET-LINE"  # content that a message must never quote: the file could be any file
WEIGHED_EDGE = f'<node id="a"/><node id="b"/><edge source="a" target="b"><data key="w">{SECRET}</data></edge>'
BAD_FILES = {
    "missing": (None, "graph.csv", "graph.csv': No such file or directory"),
    "unknown type": ("a,b\n", "graph.txt", "graph.txt': unknown file type '.txt'; use .graphml, .gml or .csv"),
    "bad header": (f"{SECRET},to\n0,1\n", "graph.csv", "csv': line 1: the header must be source,target or source"),
    "short row": (f"source,target\n0,1\n{SECRET}\n", "graph.csv", "graph.csv': line 3: expected 2 fields, got 1"),
    "field too long": (f"source,target\n0,1\n{SECRET * 20_000},1\n", "graph.csv", "graph.csv': line 3: not valid CSV"),
    "weight not a number": (f"source,target,weight\n0,1,{SECRET}\n", "graph.csv", "'0' → '1': the weight is not a"),
    "self-loop": ("source,target\na,b\nb,b\n", "graph.csv", "graph.csv': self-loop at node 'b'"),
    "binary": (SECRET.encode() + bytes(range(256)), "graph.csv", "graph.csv': line 2 is not UTF-8 text"),
    "broken graphml": ("<graphml><graph>", "graph.graphml", "graph.graphml': not well-formed XML (line 1)"),
    "not xml": (f"<graphml>\n<{SECRET}>\n</graphml>\n", "graph.graphml", "graphml': not well-formed XML (line 3)"),
    "graphml weight not a number": (graphml(WEIGHED_EDGE, "string"), "graph.graphml", "the weight is not a number"),
    "graphml weight not a double": (graphml(WEIGHED_EDGE), "graph.graphml", "graphml': not a valid GraphML graph"),
    "graphml unknown key": (graphml(f'<node id="a"><data key="{SECRET}"/></node>'), "graph.graphml", "not a valid"),
    "broken gml": (f"graph [\n  {SECRET} = 1\n]", "graph.gml", "graph.gml': not a valid GML graph (line 2)"),
    "gml node not a list": ("graph [ node 5 ]", "graph.gml", "graph.gml': not a valid GML graph"),
    "gml not ascii": (f'graph [\n  label "{SECRET}é"\n]', "graph.gml", "graph.gml': line 2 is not ASCII text"),
    "one node": ("graph [ node [ id 0 ] ]", "graph.gml", "file has 1 node(s); an ecosystem needs at least 2"),
}


@pytest.mark.parametrize("case", BAD_FILES)
def test_bad_files_are_refused_with_their_message(case, tmp_path) -> None:
    content, filename, message = BAD_FILES[case]
    path = tmp_path / filename
    if content is not None:
        path.write_bytes(content if isinstance(content, bytes) else content.encode())
    with pytest.raises(TopologyError) as error:
        build("file", path=str(path))
    assert message in str(error.value) and "\n" not in str(error.value) and SECRET not in str(error.value)


@pytest.mark.parametrize("weight", [NAN, INF, -INF])
@pytest.mark.parametrize("suffix", WRITERS)
def test_non_finite_weights_in_files_are_refused(suffix, weight, tmp_path) -> None:
    path = tmp_path / f"graph.{suffix}"
    WRITERS[suffix](nx.DiGraph([("a", "b", {"weight": weight}), ("b", "a", {"weight": 0.5})]), path)
    with pytest.raises(TopologyError) as error:
        topologies.check("file", path=str(path))  # refused even where the file's weights go unused
    assert str(error.value) == (
        f"topology file {str(path)!r}: edge 'a' → 'b': the weight is {weight}; a weight must be a finite number"
    )


def test_a_graphml_edge_to_an_undeclared_node_is_refused_as_in_gml(tmp_path) -> None:
    path = tmp_path / "graph.graphml"
    path.write_text(graphml('<node id="a"/><node id="b"/><edge source="a" target="b"/><edge source="b" target="c"/>'))
    with pytest.raises(TopologyError) as error:
        topologies.check("file", path=str(path))
    assert str(error.value) == (
        f"cannot read topology file {str(path)!r}: an edge refers to node 'c', which the file does not declare"
    )
    gml = tmp_path / "graph.gml"
    gml.write_text("graph [ node [ id 0 ] node [ id 1 ] edge [ source 0 target 1 ] edge [ source 1 target 2 ] ]")
    with pytest.raises(TopologyError, match="not a valid GML graph"):
        topologies.check("file", path=str(gml))
    without_namespace = tmp_path / "plain.graphml"  # networkx reads it too; its nodes are declared all the same
    without_namespace.write_text(
        '<graphml><graph><node id="a"/><node id="b"/><edge source="a" target="b"/></graph></graphml>'
    )
    assert topologies.check("file", path=str(without_namespace)).nodes == 2


def test_paths_that_are_not_readable_files_are_refused_unread(tmp_path) -> None:
    (tmp_path / "directory.csv").mkdir()
    os.mkfifo(tmp_path / "pipe.gml")  # opening it would wait for a writer
    (tmp_path / "zero.csv").symlink_to("/dev/zero")  # reading it would never end
    (tmp_path / "file").touch()
    reasons = {
        "directory.csv": "not a regular file",
        "pipe.gml": "not a regular file",
        "zero.csv": "not a regular file",
        "file/graph.csv": "Not a directory",
        "x" * 300 + ".csv": "File name too long",
    }
    for name, reason in reasons.items():
        path = tmp_path / name
        with pytest.raises(TopologyError) as error:
            topologies.check("file", path=str(path))
        assert str(error.value) == f"cannot read topology file {str(path)!r}: {reason}"


def test_a_file_without_read_permission_is_refused(tmp_path, monkeypatch) -> None:
    path = tmp_path / "graph.csv"
    path.write_text("source,target\n0,1\n")

    def denied(file: Path, *_: object) -> None:  # as chmod would, but it does not stop root
        raise PermissionError(errno.EACCES, os.strerror(errno.EACCES), str(file))

    monkeypatch.setattr(Path, "open", denied)
    with pytest.raises(TopologyError) as error:
        topologies.check("file", path=str(path))
    assert str(error.value) == f"cannot read topology file {str(path)!r}: Permission denied"


def test_a_huge_file_is_refused_unparsed(tmp_path) -> None:
    path = tmp_path / "graph.gml"
    with path.open("wb") as file:
        file.truncate(MAX_FILE_BYTES + 1)  # a sparse file: it takes no disk space
    with pytest.raises(TopologyError) as error:
        topologies.check("file", path=str(path))
    assert str(error.value) == (
        f"cannot read topology file {str(path)!r}: larger than 50 MB, the most a topology file may be"
    )


def test_file_weights_and_domains_are_checked_before_building(tmp_path) -> None:
    path = tmp_path / "graph.csv"
    path.write_text("source,target,weight\nlab,app,1.5\n")
    with pytest.raises(TopologyError, match=r"edge 'lab' → 'app' has weight 1.5; a weight is a share, in \[0, 1\]"):
        topologies.check("file", path=str(path), weights="file")
    path.write_text("source,target\nlab,app\n")
    with pytest.raises(TopologyError, match="edge 'lab' → 'app' has no weight in the file"):
        topologies.check("file", path=str(path), weights="file")
    with pytest.raises(TopologyError, match="node 'lab' has domain None; valid domains: code, medical"):
        topologies.check("file", path=str(path), domains="file")


def test_a_disconnected_graph_is_built_with_a_warning_naming_its_components() -> None:
    with pytest.warns(UserWarning, match=r"2 disconnected components: \{0, 1, 2\}, \{3, 4, 5\}; drift cannot cross"):
        graph = build("stochastic_block", nodes=6, communities=2, p_in=1.0, p_out=0.0)
    assert nx.number_weakly_connected_components(graph) == 2


def test_graph_measures_of_known_graphs() -> None:
    ring = topologies.graph_measures(build("ring", nodes=6))
    assert ring == pytest.approx(
        {"nodes": 6, "edges": 12, "components": 1, "diameter": 3, "clustering": 0.0}
        | {"spectral_radius": 2.0, "epidemic_threshold": 0.5}
    )
    complete = topologies.graph_measures(build("complete", nodes=5))
    assert complete["spectral_radius"] == pytest.approx(4.0) and complete["clustering"] == 1.0
    chain = topologies.graph_measures(build("chain", nodes=30))
    assert chain["spectral_radius"] == 0.0 and chain["epidemic_threshold"] is None and chain["diameter"] == 29
    split = topologies.graph_measures(build_quietly("stochastic_block", nodes=7, communities=2, p_in=1.0, p_out=0.0))
    assert split["components"] == 2 and split["diameter"] == 1


def test_the_layout_draws_a_graph_the_same_way_every_time_in_layers_when_it_flows_one_way() -> None:
    ring = build("ring", nodes=6)
    assert topologies.layout(ring) == topologies.layout(build("ring", nodes=6))
    chain = topologies.layout(build("chain", nodes=3))  # a DAG: one layer per step, from left to right
    assert [x for x, _ in chain.values()] == sorted(x for x, _ in chain.values()) and chain[0][0] < chain[2][0]


def test_eigenvector_centrality_is_none_where_it_is_undefined() -> None:
    assert all(m["eigenvector"] is None for m in topologies.node_measures(build("chain", nodes=4)).values())
    star = topologies.node_measures(build("star", nodes=5))
    assert star[0]["eigenvector"] > star[1]["eigenvector"] > 0


def test_a_topology_section_configures_the_graph(tmp_path) -> None:
    config = tmp_path / "config.toml"
    config.write_text(
        '[topology]\nname = "lineage_tree"\ndomains = "community"\nweights = "random"\nweight_range = [0.3, 0.6]\n'
        "[topology.params]\nbranching = 3\ndepth = 2\n"
    )
    topology = load_config(config).topology
    assert topology.nodes == 13
    graph = topology.graph(seed=0)
    assert len(graph) == 13 and all(0.3 <= w <= 0.6 for *_, w in graph.edges(data="weight"))
    saved = tmp_path / "saved.toml"
    saved.write_text(load_config(config).to_toml())  # as a run directory records it
    assert load_config(saved).topology == topology


def test_file_topologies_take_their_node_count_from_the_file(tmp_path) -> None:
    path = tmp_path / "graph.csv"
    path.write_text("source,target\n0,1\n1,2\n2,3\n3,4\n")
    file = ["topology.name=file", f"topology.params.path='{path}'"]
    assert load_config(overrides=[*file, "attack.0.targets=[4]"]).topology.nodes == 5
    with pytest.raises(ConfigError, match="node 5 does not exist"):
        load_config(overrides=[*file, "attack.0.targets=[5]"])


BAD_SECTIONS = {
    "unknown family": (["topology.name=moebius"], "topology.name: unknown topology 'moebius'; valid names: complete"),
    "nodes in params": (["topology.params.nodes=5"], "set topology.nodes, not topology.params.nodes"),
    "nodes that the family decides": (
        ["topology.name=lineage_tree", "topology.nodes=5"],
        "lineage_tree with these params has 7 nodes, not 5",
    ),
    "bad parameter": (["topology.name=watts_strogatz", "topology.params.k=3"], "watts_strogatz: k must be even"),
    "unknown domains mode": (["topology.domains=alphabetical"], "topology.domains: Input should be 'round_robin'"),
    "too large": (["topology.nodes=20", "topology.max_nodes=10"], "more than max_nodes (10)"),
    "missing file": (["topology.name=file", "topology.params.path=none.gml"], "cannot read topology file 'none.gml'"),
}


@pytest.mark.parametrize("case", BAD_SECTIONS)
def test_bad_topology_sections_are_refused_when_the_config_loads(case) -> None:
    overrides, message = BAD_SECTIONS[case]
    with pytest.raises(ConfigError) as error:
        load_config(overrides=overrides)
    assert message in str(error.value)


def test_cascade_graph_draws_the_configured_graph(tmp_path) -> None:
    out = tmp_path / "graph.png"
    arguments = ["graph", "--set", "topology.name=grid_2d", "--set", "topology.params.rows=2", "--out", str(out)]
    result = CliRunner().invoke(app, arguments)
    assert result.exit_code == 0, result.output
    assert out.read_bytes().startswith(b"\x89PNG") and "nodes 6, edges 14" in result.output
    refused = CliRunner().invoke(app, ["graph", "--set", "topology.name=moebius", "--out", str(tmp_path / "x.png")])
    assert refused.exit_code == 2 and "unknown topology 'moebius'" in refused.stderr


def test_a_run_records_the_graph_and_its_measures(tmp_path) -> None:
    config = small_config(
        "topology.name=barabasi_albert",
        "topology.params.m=1",
        "topology.weights=random",
        "topology.domains=random",
        "seed=11",
        "cycles=1",
        "attack.0.targets=[2]",
    )
    result = ecosystem.run(config, tmp_path / "r")
    graph = nx.read_graphml(result.path / "graph.graphml", node_type=int)
    built = config.topology.graph(config.seed)
    assert dict(graph.nodes(data=True)) == dict(built.nodes(data=True))
    assert sorted(graph.edges(data="weight")) == sorted(built.edges(data="weight"))

    metrics = pl.read_parquet(result.path / "metrics.parquet")
    betweenness = nx.betweenness_centrality(graph)
    pagerank = nx.pagerank(graph, weight="weight")
    eigenvector = nx.eigenvector_centrality_numpy(graph)
    expected = pl.DataFrame(
        {
            "node": list(graph),
            "expected_domain": [graph.nodes[n]["domain"] for n in graph],
            "expected_hops": [nx.shortest_path_length(graph, 2, n) for n in graph],
            "expected_in": [graph.in_degree(n) for n in graph],
            "expected_out": [graph.out_degree(n) for n in graph],
            "expected_betweenness": [betweenness[n] for n in graph],
            "expected_pagerank": [pagerank[n] for n in graph],
            "expected_eigenvector": [eigenvector[n] for n in graph],
        },
        schema_overrides={"node": pl.Int32},
    )
    joined = metrics.join(expected, on="node")
    assert len(joined) == len(metrics) == (config.cycles + 1) * len(graph)
    for column, truth in [
        ("domain", "expected_domain"),
        ("hops_from_attack", "expected_hops"),
        ("in_degree", "expected_in"),
        ("out_degree", "expected_out"),
    ]:
        assert joined[column].to_list() == joined[truth].to_list()
    for column in ("betweenness", "pagerank", "eigenvector"):
        assert np.allclose(joined[column].to_numpy(), joined[f"expected_{column}"].to_numpy(), atol=1e-4)
    assert len(set(joined["pagerank"].to_list())) > 1  # not a graph on which every node looks alike

    summary = json.loads((result.path / "summary.json").read_text())["graph"]
    radius = max(abs(np.linalg.eigvals(nx.to_numpy_array(graph, weight=None))))
    assert summary["spectral_radius"] == pytest.approx(radius)
    assert summary["diameter"] == nx.diameter(graph.to_undirected()) and summary["components"] == 1
    assert summary["clustering"] == pytest.approx(nx.average_clustering(graph.to_undirected()))
