"""Every matplotlib drawing: a run's and a sweep's report figures, an experiment's charts and `cascade graph`'s
picture of a topology. Each returns a `Figure`, drawn without pyplot's global state and saved by its caller;
matplotlib is imported only inside the functions that draw, so importing this module stays light."""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

import networkx as nx
import numpy as np
import polars as pl

import topologies
from ecosystem.analysis import SYSTEMIC_SHARE, Interval, per_cycle

if TYPE_CHECKING:
    from matplotlib.axes import Axes
    from matplotlib.figure import Figure

NODE_SIZE = 500  # points², for nodes and for where arrows stop
ANNOTATED_CELLS = 200  # the hop heatmap writes its values in the cells up to this many cells
CYCLE_LABEL = "cycle"
REFUSAL_LABEL = "refusal rate (share of held-out harmful prompts)"
SHARE_LABEL = "share of unattacked nodes"
REFUSAL_COLOURS = "RdYlGn"  # red is bad: low refusal
BAND_NOTE = "line: mean over seeds; band: 95% bootstrap interval (bases, then seeds)"


# ---- a run's and a sweep's report


def _figure(columns: int = 1, rows: int = 1, size: tuple[float, float] = (7.5, 4.5)) -> tuple[Figure, np.ndarray]:
    """A figure of `rows` by `columns` panels of `size` inches each, laid out so that labels fit."""
    from matplotlib.figure import Figure

    figure = Figure(figsize=(size[0] * columns, size[1] * rows), layout="constrained")
    return figure, figure.subplots(rows, columns, squeeze=False)


def _cycle_axis(axes: Axes, ylabel: str) -> None:
    from matplotlib.ticker import MaxNLocator

    axes.set_xlabel(CYCLE_LABEL)
    axes.set_ylabel(ylabel)
    axes.xaxis.set_major_locator(MaxNLocator(integer=True))
    axes.set_ylim(-0.03, 1.03)
    axes.grid(alpha=0.3)


def draw_refusal(metrics: pl.DataFrame) -> Figure:
    """A run's refusal per node over cycles: unattacked nodes in blue, attacked ones in red, the mean in black."""
    figure, ((axes,),) = _figure()
    for (_, attacked), rows in metrics.sort("cycle").group_by("node", "attacked", maintain_order=True):
        colour, label = ("tab:red", "attacked node") if attacked else ("tab:blue", "unattacked node")
        axes.plot(rows["cycle"], rows["refusal_rate"], color=colour, alpha=0.6, lw=1.2, label=label)
    mean = per_cycle(metrics)
    axes.plot(mean["cycle"], mean["mean_refusal"], color="black", lw=2.5, ls="--", label="mean over all nodes")
    _cycle_axis(axes, REFUSAL_LABEL)
    handles, labels = axes.get_legend_handles_labels()
    unique = dict(zip(labels, handles, strict=True))  # one entry per kind of line, not per node
    axes.legend(unique.values(), unique.keys(), loc="lower left")
    axes.set_title("Refusal per node")
    return figure


def _plot_curves(axes: Axes, curves: pl.DataFrame, figure: str, labels: dict[int, str]) -> None:
    """A line per cell of `figure`'s mean over seeds, with a band for its interval (none with one seed)."""
    for (cell,), rows in curves.sort("cycle").group_by("cell", maintain_order=True):
        (line,) = axes.plot(rows["cycle"], rows[f"{figure}_mean"].cast(pl.Float64), marker="o", label=labels[cell])
        low, high = (rows[f"{figure}_{part}"].cast(pl.Float64).to_numpy() for part in ("low", "high"))
        axes.fill_between(rows["cycle"].to_numpy(), low, high, color=line.get_color(), alpha=0.2, lw=0)


def draw_drifted_share(curves: pl.DataFrame, labels: dict[int, str] | None = None) -> Figure:
    """The drifted share of the unattacked nodes per cycle, a line per cell (one for a run), and the systemic
    threshold."""
    figure, ((axes,),) = _figure()
    _plot_curves(axes, curves, "drifted_share", labels or {0: "drifted share"})
    axes.axhline(SYSTEMIC_SHARE, color="grey", ls=":", label=f"systemic drift ({SYSTEMIC_SHARE:.0%})")
    _cycle_axis(axes, SHARE_LABEL)
    axes.legend(loc="upper left")
    axes.set_title("Drifted share" + (f" per cell ({BAND_NOTE})" if labels else ""))
    return figure


def draw_refusal_over_seeds(curves: pl.DataFrame, labels: dict[int, str]) -> Figure:
    """A sweep's mean refusal per cycle and cell, for the unattacked and the attacked nodes side by side."""
    figure, panels = _figure(columns=2, size=(6.5, 4.5))
    for axes, group in zip(panels[0], ("unattacked", "attacked"), strict=True):
        _plot_curves(axes, curves, f"{group}_refusal", labels)
        _cycle_axis(axes, REFUSAL_LABEL)
        axes.set_title(f"{group} nodes")
    panels[0][0].legend(loc="lower left")
    figure.suptitle(f"Mean refusal per cell ({BAND_NOTE})")
    return figure


def _hop_matrix(profile: pl.DataFrame) -> tuple[list[str], list[str], np.ndarray]:
    """(hop labels, cycle labels, mean refusal per hop and cycle, NaN where no node was)."""
    wide = profile.pivot(on="cycle", index="hops_from_attack", values="mean_refusal").sort(
        "hops_from_attack", nulls_last=True
    )
    hops = ["unreachable" if hop is None else str(hop) for hop in wide["hops_from_attack"]]
    values = wide.drop("hops_from_attack")
    return hops, values.columns, values.cast(pl.Float64).to_numpy()


def draw_hops(profiles: dict[str, pl.DataFrame]) -> Figure:
    """Mean refusal by hop distance from the nearest attacked node (rows) and cycle (columns), a panel per
    profile (one for a run, one per cell for a sweep)."""
    from matplotlib.cm import ScalarMappable
    from matplotlib.colors import Normalize

    columns = min(3, len(profiles))
    rows = -(-len(profiles) // columns)
    figure, panels = _figure(columns, rows, size=(5.5, 4.2))
    for axes, (title, profile) in zip(panels.flat, profiles.items(), strict=False):
        hops, cycles, matrix = _hop_matrix(profile)
        axes.imshow(matrix, cmap=REFUSAL_COLOURS, vmin=0, vmax=1, aspect="auto")
        axes.set_xticks(range(len(cycles)), cycles)
        axes.set_yticks(range(len(hops)), hops)
        axes.set_xlabel(CYCLE_LABEL)
        axes.set_ylabel("hops from the nearest attacked node")
        axes.set_title(title)
        if matrix.size <= ANNOTATED_CELLS:
            for (row, column), value in np.ndenumerate(matrix):
                if not np.isnan(value):
                    axes.text(column, row, f"{value:.2f}", ha="center", va="center", fontsize=9)
    for unused in panels.flat[len(profiles) :]:
        unused.set_visible(False)
    colour_scale = ScalarMappable(Normalize(0, 1), cmap=REFUSAL_COLOURS)
    figure.colorbar(colour_scale, ax=panels, label=f"mean {REFUSAL_LABEL}", shrink=0.9)
    figure.suptitle("Mean refusal by hop distance from the attack")
    return figure


def _edge_flows(graph: nx.DiGraph, edges: pl.DataFrame | None, cycle: int) -> dict[tuple[int, int], float]:
    """What an edge's width shows at `cycle`: harmful pairs sent along it, or without edges.parquet its weight."""
    if edges is None:
        return {(sender, receiver): weight for sender, receiver, weight in graph.edges(data="weight", default=1.0)}
    rows = edges.filter(pl.col("cycle") == cycle)
    return dict.fromkeys(graph.edges, 0.0) | {
        (sender, receiver): float(harmful)
        for sender, receiver, harmful in rows.select("sender", "receiver", "harmful_pairs").rows()
    }


def _cut_edges(edges: pl.DataFrame | None, cycle: int) -> set[tuple[int, int]]:
    if edges is None:
        return set()
    return set(edges.filter((pl.col("cycle") == cycle) & pl.col("cut")).select("sender", "receiver").rows())


def _edge_legend(largest: float, unit: str, cuts: bool) -> list[Any]:
    """Lines of the thinnest and thickest edge, labelled with what they stand for; the cut edges' style."""
    from matplotlib.lines import Line2D

    entries = [
        Line2D([], [], color="0.4", lw=_edge_width(step, largest), label=f"{unit}: {step:.3g}")
        for step in sorted({0.0, largest})
    ]
    if cuts:
        entries.append(Line2D([], [], color="0.4", lw=1, ls=":", label="cut by quarantine"))
    return entries


def _edge_width(flow: float, largest: float) -> float:
    return 0.6 + 4 * flow / largest if largest else 0.6


def draw_network(
    graph: nx.DiGraph, metrics: pl.DataFrame, cycles: Sequence[int], edges: pl.DataFrame | None = None
) -> Figure:
    """The graph at each of `cycles`: nodes coloured by refusal, attacked nodes as diamonds; an edge's width
    shows the harmful pairs sent along it that cycle (from `edges`, as edges.parquet holds them), or without
    `edges` its weight. Widths share one scale over the panels, so they compare."""
    from matplotlib.cm import ScalarMappable
    from matplotlib.colors import Normalize
    from matplotlib.lines import Line2D

    positions = topologies.layout(graph)
    flows = {cycle: _edge_flows(graph, edges, cycle) for cycle in cycles}
    cuts = {cycle: _cut_edges(edges, cycle) for cycle in cycles}
    largest = max((flow for by_edge in flows.values() for flow in by_edge.values()), default=0.0)
    attacked = set(metrics.filter(pl.col("attacked"))["node"])
    figure, panels = _figure(len(cycles), size=(5.0, 5.0))
    for axes, cycle in zip(panels[0], cycles, strict=True):
        widths = {edge: _edge_width(flow, largest) for edge, flow in flows[cycle].items()}
        refusal = dict(metrics.filter(pl.col("cycle") == cycle).select("node", "refusal_rate").rows())
        _draw_network_panel(axes, graph, positions, widths, cuts[cycle], refusal, attacked)
        axes.set_title(f"cycle {cycle}")
    figure.colorbar(ScalarMappable(Normalize(0, 1), cmap=REFUSAL_COLOURS), ax=panels, label=REFUSAL_LABEL, shrink=0.8)
    markers = [
        Line2D([], [], marker=shape, ls="", color="0.8", markeredgecolor="black", markersize=9, label=label)
        for shape, label in (("o", "unattacked node"), ("D", "attacked node"))
    ]
    unit = "weight" if edges is None else "harmful pairs sent"
    legend = markers + _edge_legend(largest, unit, any(cuts.values()))
    figure.legend(handles=legend, loc="outside lower center", ncols=len(legend))
    figure.suptitle(f"The network: node colour is refusal, edge width {unit}")
    return figure


def _draw_network_panel(
    axes: Axes,
    graph: nx.DiGraph,
    positions: dict[int, Any],
    widths: dict[tuple[int, int], float],
    cut: set[tuple[int, int]],
    refusal: dict[int, float],
    attacked: set[int],
) -> None:
    """One cycle of the network: edges (cut ones dotted), arcs so that u → v and v → u both show, then nodes."""
    for style, shown in (("solid", [edge for edge in graph.edges if edge not in cut]), ("dotted", sorted(cut))):
        nx.draw_networkx_edges(
            graph,
            positions,
            shown,
            width=[widths[edge] for edge in shown],
            style=style,
            edge_color="0.4",
            connectionstyle="arc3,rad=0.12",
            arrowsize=12,
            node_size=NODE_SIZE,
            ax=axes,
        )
    _draw_nodes(axes, graph, positions, refusal, attacked, REFUSAL_COLOURS, 1)
    nx.draw_networkx_labels(graph, positions, font_size=9, ax=axes)
    axes.axis("off")


def draw_against_twin(metrics: pl.DataFrame) -> Figure:
    """A panel per node: its refusal (red if attacked, else blue) against its poison-free twin's (grey), the
    cycles it was infected shaded: what the poison did, apart from what fine-tuning eroded anyway."""
    nodes = sorted(metrics["node"].unique())
    columns = min(4, len(nodes))
    rows = -(-len(nodes) // columns)
    figure, panels = _figure(columns, rows, size=(3.2, 2.4))
    for axes in panels.flat[len(nodes) :]:
        axes.axis("off")
    for axes, node in zip(panels.flat, nodes, strict=False):
        own = metrics.filter(pl.col("node") == node).sort("cycle")
        attacked = bool(own["attacked"][0])
        axes.plot(own["cycle"], own["twin_refusal_rate"], color="0.55", lw=2, label="twin (no attack)")
        axes.plot(own["cycle"], own["refusal_rate"], color="tab:red" if attacked else "tab:blue", lw=1.6, label="run")
        for cycle in own.filter(pl.col("infected"))["cycle"]:
            axes.axvspan(cycle - 0.5, cycle + 0.5, color="tab:red", alpha=0.12, lw=0)
        _cycle_axis(axes, "refusal")
        hops = own["hops_from_attack"][0]
        where = " (attacked)" if attacked else "" if hops is None else f", {hops} hop{'s' * (hops != 1)}"
        axes.set_title(f"node {node}{where}")
    panels.flat[0].legend(loc="lower left", fontsize=8)
    figure.suptitle("Refusal against the poison-free twin (shaded: infected)")
    return figure


def draw_infection(metrics: pl.DataFrame, twin: pl.DataFrame) -> Figure:
    """The infected share of the unattacked nodes (excess loss over the twin) and the eroded share of the same
    nodes in the twin (drift from their own cycle 0 without any poison), per cycle."""
    figure, ((axes,),) = _figure()
    unattacked = metrics.filter(~pl.col("attacked"))["node"].unique().implode()
    infected = metrics.filter(pl.col("node").is_in(unattacked)).group_by("cycle").agg(pl.col("infected").mean())
    eroded = twin.filter(pl.col("node").is_in(unattacked)).group_by("cycle").agg(pl.col("drifted").mean())
    for frame, column, colour, label in (
        (infected, "infected", "tab:red", "infected (run against its twin)"),
        (eroded, "drifted", "0.45", "eroded (the twin against its cycle 0)"),
    ):
        frame = frame.sort("cycle")
        axes.plot(frame["cycle"], frame[column], marker="o", color=colour, label=label)
    axes.axhline(SYSTEMIC_SHARE, color="black", ls=":", lw=1, label=f"systemic ({SYSTEMIC_SHARE:.0%})")
    _cycle_axis(axes, SHARE_LABEL)
    axes.legend(loc="upper left")
    axes.set_title("Contagion against erosion")
    return figure


def draw_transmission(graph: nx.DiGraph, tree: pl.DataFrame, metrics: pl.DataFrame) -> Figure:
    """The transmission tree on the graph: who likely infected whom (red arrows, labelled with the cycle),
    nodes coloured by their generation (attacked nodes are generation 0), the graph's other edges faint."""
    from matplotlib.cm import ScalarMappable
    from matplotlib.colors import Normalize

    positions = topologies.layout(graph)
    attacked = set(metrics.filter(pl.col("attacked"))["node"])
    generation = {node: 0 for node in attacked} | dict(
        tree.drop_nulls("generation").select("node", "generation").rows()
    )
    links = [(infector, node) for node, infector in tree.drop_nulls("infector").select("node", "infector").rows()]
    figure, ((axes,),) = _figure(size=(7.0, 6.0))
    nx.draw_networkx_edges(graph, positions, edge_color="0.85", arrows=False, node_size=NODE_SIZE, ax=axes)
    nx.draw_networkx_edges(
        graph, positions, links, edge_color="tab:red", width=2.2, arrowsize=16, node_size=NODE_SIZE, ax=axes
    )
    cycles = {
        (infector, node): cycle
        for node, infector, cycle in tree.drop_nulls("infector").select("node", "infector", "cycle").rows()
    }
    nx.draw_networkx_edge_labels(graph, positions, {edge: f"c{c}" for edge, c in cycles.items()}, font_size=8, ax=axes)
    deepest = max(generation.values(), default=0)
    colours = "viridis"
    _draw_nodes(axes, graph, positions, generation, attacked, colours, max(1, deepest))
    nx.draw_networkx_labels(graph, positions, font_size=9, ax=axes)
    figure.colorbar(ScalarMappable(Normalize(0, max(1, deepest)), cmap=colours), ax=axes, label="generation")
    axes.set_title("Transmission tree (uncoloured: never infected)")
    axes.axis("off")
    return figure


def _draw_nodes(
    axes: Axes,
    graph: nx.DiGraph,
    positions: dict[int, Any],
    values: dict[int, float],
    attacked: set[int],
    colours: str,
    highest: float,
) -> None:
    """Nodes coloured by `values` on [0, `highest`] (uncoloured where a node has none), attacked ones as diamonds."""
    for shape, nodes in (("o", [n for n in graph if n not in attacked]), ("D", [n for n in graph if n in attacked])):
        nx.draw_networkx_nodes(
            graph,
            positions,
            nodes,
            node_color=[values.get(node, np.nan) for node in nodes],
            node_shape=shape,
            cmap=colours,
            vmin=0,
            vmax=highest,
            node_size=NODE_SIZE,
            edgecolors="black",
            ax=axes,
        )


# ---- an experiment's charts


def draw_bars(bars: Sequence[tuple[str, Interval]], ylabel: str) -> Figure:
    """One bar per label with its 95% interval as an error bar."""
    from matplotlib.figure import Figure

    figure = Figure(figsize=(max(5.0, 0.9 * len(bars) + 2), 4.5), layout="constrained")
    axes = figure.subplots()
    means = [bar.mean or 0.0 for _, bar in bars]
    errors = [
        [(bar.mean - bar.low) if bar.low is not None else 0 for _, bar in bars],
        [(bar.high - bar.mean) if bar.high is not None else 0 for _, bar in bars],
    ]
    axes.bar(range(len(bars)), means, yerr=errors, capsize=4, color="tab:blue", alpha=0.8)
    axes.set_xticks(range(len(bars)), [label for label, _ in bars], rotation=30, ha="right")
    axes.set_ylabel(ylabel)
    axes.grid(axis="y", alpha=0.3)
    return figure


def draw_lines(
    lines: dict[str, tuple[Sequence[float], Sequence[Interval]]], xlabel: str, ylabel: str, log_x: bool = False
) -> Figure:
    """A line per label through its (x, mean) points, with its 95% interval as a band."""
    from matplotlib.figure import Figure

    figure = Figure(figsize=(7.5, 4.5), layout="constrained")
    axes = figure.subplots()
    for label, (x, values) in lines.items():
        axes.plot(x, [value.mean for value in values], marker="o", label=label)
        if all(value.low is not None for value in values):
            axes.fill_between(x, [v.low for v in values], [v.high for v in values], alpha=0.2)
    if log_x:
        axes.set_xscale("symlog", linthresh=1)
    axes.set_xlabel(xlabel)
    axes.set_ylabel(ylabel)
    axes.grid(alpha=0.3)
    axes.legend()
    return figure


# ---- `cascade graph`


def draw_graph(graph: nx.DiGraph, title: str) -> Figure:
    """A topology: colour is the node's domain, an edge's width its weight; a graph whose edges all go both
    ways is drawn without arrows."""
    from matplotlib.figure import Figure
    from matplotlib.lines import Line2D

    colours = {domain: f"C{index}" for index, domain in enumerate(topologies.DOMAINS)}
    symmetric = all(graph.has_edge(target, source) for source, target in graph.edges)
    shown = graph.to_undirected() if symmetric else graph
    figure = Figure(figsize=(8, 8))
    axes = figure.subplots()
    nx.draw_networkx(
        shown,
        topologies.layout(graph),
        ax=axes,
        node_color=[colours[graph.nodes[node]["domain"]] for node in shown],
        edge_color="grey",
        width=[0.5 + 2 * weight for _, _, weight in shown.edges(data="weight")],
        font_size=8,
    )
    axes.legend(handles=[Line2D([], [], marker="o", ls="", color=c, label=d) for d, c in colours.items()])
    axes.set_title(title)
    axes.axis("off")
    return figure
