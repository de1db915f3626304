"""The layers of the code: no import cycle between the units of `ecosystem/`, `topologies/` and
`poisoning/`, counting imports inside functions too. A unit is a subpackage of `ecosystem`
(`ecosystem.world`, `ecosystem.models`, ...) or any other module; run this file as a script to
print the import cycles and the imports that close them."""

from __future__ import annotations

import ast
from pathlib import Path

import networkx as nx

ROOT = Path(__file__).resolve().parent.parent
PACKAGES = ("ecosystem", "topologies", "poisoning")


def unit(module: str) -> str:
    """The unit a module belongs to: `ecosystem.world.tiny` -> `ecosystem.world`."""
    parts = module.split(".")
    if parts[0] == "ecosystem" and len(parts) > 2:
        return ".".join(parts[:2])
    if parts[0] == "ecosystem" and len(parts) == 2 and (ROOT / "ecosystem" / parts[1]).is_dir():
        return module
    return module


def modules() -> dict[str, Path]:
    found = {}
    for package in PACKAGES:
        for path in sorted((ROOT / package).rglob("*.py")):
            parts = list(path.relative_to(ROOT).with_suffix("").parts)
            if parts[-1] == "__init__":
                parts = parts[:-1]
            found[".".join(parts)] = path
    return found


def imported(module: str, path: Path, known: set[str]) -> set[str]:
    """The project modules that `module` imports, anywhere in its file."""
    names = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            names.add(node.module)
            names.update(f"{node.module}.{alias.name}" for alias in node.names)
    return {name for name in names if name in known and name != module}


def import_graph() -> nx.DiGraph:
    """Units and the imports between them; each edge lists the (importer, imported) modules behind it."""
    found = modules()
    graph = nx.DiGraph()
    graph.add_nodes_from({unit(module) for module in found})
    for module, path in found.items():
        for target in imported(module, path, set(found)):
            source, destination = unit(module), unit(target)
            if source != destination:
                graph.add_edge(source, destination)
                graph.edges[source, destination].setdefault("by", []).append((module, target))
    return graph


def cycles(graph: nx.DiGraph) -> list[set[str]]:
    return [component for component in nx.strongly_connected_components(graph) if len(component) > 1]


def test_no_import_cycle_between_units():
    graph = import_graph()
    found = cycles(graph)
    described = [
        f"{sorted(component)}: "
        + "; ".join(f"{a} -> {b}" for s, d in graph.subgraph(component).edges for a, b in graph.edges[s, d]["by"])
        for component in found
    ]
    assert not found, "import cycles:\n" + "\n".join(described)


if __name__ == "__main__":
    graph = import_graph()
    for component in cycles(graph):
        print(sorted(component))
        for source, destination in graph.subgraph(component).edges:
            for importer, target in graph.edges[source, destination]["by"]:
                print(f"    {importer} -> {target}")
