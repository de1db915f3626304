"""The dashboard's plotly figures, from a run's graph, metrics and edge flows, and a sweep's curves."""

from __future__ import annotations

import itertools
import math
from dataclasses import dataclass
from typing import Any

import networkx as nx
import numpy as np
import plotly.colors
import plotly.graph_objects as go
import polars as pl

from ecosystem.analysis import drifted, mean_per_cycle

HOVER_COLUMNS = (
    "refusal_rate",
    "harmful_rate",
    "helpfulness",
    "over_refusal",
    "drift",
    "drifted",
    "hops_from_attack",
)
RATE_SCALES = {  # shares in [0, 1], coloured on that fixed range; red is bad, so reversed where higher is worse
    "refusal_rate": "RdYlGn",
    "refusal_rate_id": "RdYlGn",
    "refusal_rate_ood": "RdYlGn",
    "helpfulness": "RdYlGn",
    "harmful_rate": "RdYlGn_r",
    "over_refusal": "RdYlGn_r",
    "drift": "RdYlGn_r",
    "drifted": "RdYlGn_r",
}
# Edges: a graph with this many or fewer gets arrowheads, and animation frames with its edge flows. A bigger
# one gets plain lines (fast to draw), and frames with its nodes only: a frame per cycle with every
# edge weighs megabytes for 500 nodes by 50 cycles, resent each time a control changes.
SMALL_GRAPH_EDGES = 300
FLOWS = ("harmful_pairs", "pairs_sent")  # what an edge's hover label shows at a cycle (edges.parquet's columns)
FLOW_COLOURS = ("#fc9272", "#fb6a4a", "#de2d26", "#a50f15")  # harmful-flow classes, light to dark red
NO_FLOW_LINE = {"color": "rgba(140, 140, 160, 0.6)", "width": 1.0}
CUT_LINE = {"color": "rgba(90, 90, 90, 0.8)", "width": 1.5, "dash": "dot"}
EDGE_SIDE = 0.02  # layout units: the two directions of an edge are drawn side by side, each to its right
EDGE_SHORTEN = 0.05  # layout units: an edge ends before its receiver's marker, so that its arrowhead shows


def network_figure(
    graph: nx.DiGraph,
    positions: dict[int, tuple[float, float]],
    metrics: pl.DataFrame,
    metric: str,
    cycle: int,
    edges: pl.DataFrame | None,
) -> go.Figure:
    """The graph with nodes coloured by `metric` and edges by the harmful pairs that flowed along them
    (`edges`, edges.parquet's rows; None for a run without them) at `cycle`, and an animation frame
    per cycle.

    A rate is coloured on [0, 1], anything else on its range over the run, and the flow classes span
    the run's flows: a colour means the same in every frame. Frames change the node colours, the
    numbers that hover labels show and, in a small graph (`is_small`), the edges of each flow class,
    as numpy arrays (sent in binary)."""
    shown = list(dict.fromkeys((metric, *HOVER_COLUMNS)))
    order = pl.DataFrame({"node": list(graph)}, schema={"node": pl.Int64})
    values = metrics.select("cycle", pl.col("node").cast(pl.Int64), *(pl.col(c).cast(pl.Float64) for c in shown))
    cycles = {
        key[0]: order.join(rows.drop("cycle"), on="node", how="left", maintain_order="left")
        for key, rows in values.partition_by("cycle", as_dict=True).items()
    }
    flows = edge_flows(graph, edges, list(cycles))
    small = is_small(graph)
    classes = FlowClasses.of(flows, arrows=small)
    geometry = EdgeGeometry.of(graph, positions)
    low, high = (0.0, 1.0) if metric in RATE_SCALES else (values[metric].min(), values[metric].max())
    lines = [*classes.traces(), _edge_hover(graph, geometry)]
    for line, at_cycle in zip(lines, _edge_values(classes, flows[cycle], geometry), strict=True):
        line.update(at_cycle)
    nodes = _node_trace(graph, positions, set(metrics.filter(pl.col("attacked"))["node"]), shown)
    nodes.update(marker={"cmin": low, "cmax": high, "colorscale": RATE_SCALES.get(metric, "Viridis")})
    nodes.update(_cycle_values(cycles[cycle], metric, shown))
    frames = [
        go.Frame(
            name=str(c),
            data=[*(_edge_values(classes, flows[c], geometry) if small else []), _cycle_values(rows, metric, shown)],
            traces=list(range(0 if small else len(lines), len(lines) + 1)),
            layout=_title(metric, c),
        )
        for c, rows in sorted(cycles.items())
    ]
    figure = go.Figure(data=[*lines, nodes], frames=frames, layout=_title(metric, cycle))
    play = {"frame": {"duration": 800, "redraw": True}, "transition": {"duration": 0}, "fromcurrent": False}
    pause = {"frame": {"duration": 0, "redraw": False}, "mode": "immediate"}
    figure.update_layout(
        height=560,
        xaxis={"visible": False},
        yaxis={"visible": False, "scaleanchor": "x"},
        legend={
            "title": {"text": "harmful pairs along an edge"},
            "orientation": "h",
            "x": 1,
            "xanchor": "right",
            "y": 0,
            "yanchor": "top",
        },
        updatemenus=[
            {
                "type": "buttons",
                "direction": "left",
                "x": 0,
                "y": 0,
                "xanchor": "left",
                "yanchor": "top",
                "showactive": False,
                "buttons": [
                    {"label": "▶ play", "method": "animate", "args": [None, play]},
                    {"label": "pause", "method": "animate", "args": [[None], pause]},
                ],
            }
        ],
    )
    return figure


def edge_flows(graph: nx.DiGraph, edges: pl.DataFrame | None, cycles: list[int]) -> dict[int, pl.DataFrame]:
    """Per cycle, the graph's edges in its order with what flowed along them: `sender`, `receiver`, the
    FLOWS and `cut`. Nothing flows at a cycle without rows (cycle 0, the baseline); without `edges` at
    all, the flows are unknown (null)."""
    order = pl.DataFrame(list(graph.edges()), schema={"sender": pl.Int64, "receiver": pl.Int64}, orient="row")
    if edges is None:
        unknown = order.with_columns(*(pl.lit(None, pl.Int64).alias(flow) for flow in FLOWS), cut=pl.lit(False))
        return dict.fromkeys(cycles, unknown)
    recorded = edges.select(pl.col("cycle", "sender", "receiver", *FLOWS).cast(pl.Int64), "cut")
    return {
        cycle: order.join(
            recorded.filter(pl.col("cycle") == cycle).drop("cycle"),
            on=["sender", "receiver"],
            how="left",
            maintain_order="left",
        ).with_columns(pl.col(FLOWS).fill_null(0), pl.col("cut").fill_null(False))
        for cycle in cycles
    }


@dataclass(frozen=True)
class EdgeGeometry:
    """Each edge (in the graph's order) as a segment: its ends, then a gap (NaN) before the next edge's,
    so that many edges make one line trace; and its middle, where its hover label is."""

    xs: np.ndarray  # (edges, 3)
    ys: np.ndarray
    middles: np.ndarray  # (edges, 2)

    @classmethod
    def of(cls, graph: nx.DiGraph, positions: dict[int, tuple[float, float]]) -> EdgeGeometry:
        start = np.array([positions[sender] for sender, _ in graph.edges()], dtype=float).reshape(-1, 2)
        end = np.array([positions[receiver] for _, receiver in graph.edges()], dtype=float).reshape(-1, 2)
        length = np.linalg.norm(end - start, axis=1, keepdims=True)
        unit = (end - start) / np.maximum(length, 1e-9)
        right = np.column_stack([unit[:, 1], -unit[:, 0]]) * EDGE_SIDE
        start, end = start + right, end + right - unit * np.minimum(EDGE_SHORTEN, length / 3)
        gap = np.full(len(start), np.nan)
        # float32: half the bytes of every frame's edges
        xs = np.column_stack([start[:, 0], end[:, 0], gap]).astype(np.float32)
        ys = np.column_stack([start[:, 1], end[:, 1], gap]).astype(np.float32)
        return cls(xs, ys, (start + end) / 2)


@dataclass(frozen=True)
class FlowClasses:
    """Edges by the harmful pairs that flowed along them at a cycle: none, then up to four bins
    spanning the run's flows (wider and redder), then cut ones. A class is one line trace, since a
    trace has one colour and width; the classes are the same in every cycle, so that each animation
    frame gives each class its edges."""

    bounds: list[int]  # each harmful bin's highest count
    has_cut: bool
    arrows: bool

    @classmethod
    def of(cls, flows: dict[int, pl.DataFrame], arrows: bool) -> FlowClasses:
        every = pl.concat(flows.values())
        most = every["harmful_pairs"].max() or 0
        bounds = sorted({math.ceil(most * (i + 1) / len(FLOW_COLOURS)) for i in range(len(FLOW_COLOURS))})
        return cls(bounds if most else [], bool(every["cut"].any()), arrows)

    def styles(self) -> list[tuple[str, dict[str, Any]]]:
        """Each class's legend name and line, in the order of its trace."""
        shade = len(FLOW_COLOURS) - len(self.bounds)  # fewer bins take the darker colours
        styles = [("none", NO_FLOW_LINE)]
        for index, (below, high) in enumerate(itertools.pairwise([0, *self.bounds])):
            line = {"color": FLOW_COLOURS[shade + index], "width": 1.5 + shade + index}
            styles.append((f"{below + 1}-{high}" if high > below + 1 else str(high), line))
        return [*styles, *([("cut", CUT_LINE)] if self.has_cut else [])]

    def traces(self) -> list[go.Scatter]:
        """A styled trace per class, without its edges (`at` gives them)."""
        return [
            go.Scatter(
                mode="lines+markers" if self.arrows else "lines",
                name=name,
                line=line,
                marker={"symbol": "arrow", "angleref": "previous", "color": line["color"]},
                hoverinfo="skip",
            )
            for name, line in self.styles()
        ]

    def at(self, flows: pl.DataFrame, geometry: EdgeGeometry) -> list[go.Scatter]:
        """Each class's edges at a cycle (its `flows`): their segments, and their arrowheads' sizes."""
        harmful = flows["harmful_pairs"].fill_null(0).to_numpy()
        classes = np.where(harmful > 0, 1 + np.searchsorted(self.bounds, harmful), 0)
        classes = np.where(flows["cut"].to_numpy(), len(self.bounds) + 1, classes)
        updates = []
        for index, (_, line) in enumerate(self.styles()):
            chosen = classes == index
            update = go.Scatter(x=geometry.xs[chosen].ravel(), y=geometry.ys[chosen].ravel())
            if self.arrows:  # an arrowhead at the receiver's end only, as wide as its line allows
                head = np.array([0, 8 + 2 * line["width"], 0], np.float32)
                update.update(marker={"size": np.tile(head, int(chosen.sum()))})
            updates.append(update)
        return updates


def is_small(graph: nx.DiGraph) -> bool:
    """Whether the network figure draws the graph's edges with arrowheads and animates their flows."""
    return graph.number_of_edges() <= SMALL_GRAPH_EDGES


def _edge_values(classes: FlowClasses, flows: pl.DataFrame, geometry: EdgeGeometry) -> list[go.Scatter]:
    """What changes in the edges from cycle to cycle: each flow class's edges, then the hover labels' flows."""
    return [*classes.at(flows, geometry), _flow_values(flows)]


def _edge_hover(graph: nx.DiGraph, geometry: EdgeGeometry) -> go.Scatter:
    """An invisible marker in the middle of each edge, whose hover label shows its flows at the cycle."""
    return go.Scatter(
        x=geometry.middles[:, 0],
        y=geometry.middles[:, 1],
        mode="markers",
        name="edge flows",
        marker={"size": 12, "color": "rgba(0, 0, 0, 0)"},
        text=[
            f"{sender} → {receiver} (weight {weight:g})"
            for sender, receiver, weight in graph.edges(data="weight", default=1.0)
        ],
        hovertemplate="<b>%{text}</b><br>harmful pairs: %{customdata[0]}<br>pairs sent: %{customdata[1]}"
        "<extra></extra>",
        showlegend=False,
    )


def _flow_values(flows: pl.DataFrame) -> go.Scatter:
    """What changes from cycle to cycle in the edges' hover labels: their flows (NaN where unknown)."""
    return go.Scatter(customdata=flows.select(pl.col(FLOWS).cast(pl.Float32)).to_numpy())


def _cycle_values(rows: pl.DataFrame, metric: str, shown: list[str]) -> go.Scatter:
    """What changes from cycle to cycle: the node colours and the numbers of the hover labels."""
    return go.Scatter(marker={"color": rows[metric].to_numpy()}, customdata=rows.select(shown).to_numpy())


def _title(metric: str, cycle: int) -> dict[str, Any]:
    return {"title": {"text": f"{metric} at cycle {cycle}"}}


def _node_trace(
    graph: nx.DiGraph, positions: dict[int, tuple[float, float]], attacked: set[int], shown: list[str]
) -> go.Scatter:
    """The nodes, but for what changes from cycle to cycle; attacked nodes are diamonds."""
    small = len(graph) <= 40
    size = 22 if small else 9
    hit = [node in attacked for node in graph]
    return go.Scatter(
        x=[positions[node][0] for node in graph],
        y=[positions[node][1] for node in graph],
        mode="markers+text" if small else "markers",
        name="nodes",
        text=[str(node) for node in graph] if small else None,
        textposition="top center",
        hovertext=[
            f"node {node} ({graph.nodes[node]['domain']}){' · attacked' if node in attacked else ''}" for node in graph
        ],
        hovertemplate="<br>".join(
            ["<b>%{hovertext}</b>", *(f"{column}: %{{customdata[{i}]:.3~g}}" for i, column in enumerate(shown))]
        )
        + "<extra></extra>",
        showlegend=False,
        marker={
            "size": [size * 1.5 if h else size for h in hit],
            "symbol": ["diamond" if h else "circle" for h in hit],
            "line": {"width": [3 if h else 1 for h in hit], "color": "black"},
            "showscale": True,
            "colorbar": {"title": {"text": shown[0]}},
        },
    )


def _over_cycles(frame: pl.DataFrame, column: str, **style: Any) -> go.Scatter:
    """A line of `column` against the frame's cycles (plain lists: readable JSON for the browser and tests)."""
    return go.Scatter(x=frame["cycle"].to_list(), y=frame[column].to_list(), **style)


def _cycle_axis(frame: pl.DataFrame) -> dict[str, Any]:
    """An x axis of cycles: whole numbers, ten ticks at most."""
    return {"title": {"text": "cycle"}, "dtick": max(1, math.ceil(frame["cycle"].max() / 10))}


def curves_figure(metrics: pl.DataFrame, metric: str) -> go.Figure:
    """`metric` over cycles: a thin line per node (attacked ones red) and the mean across nodes."""
    frame = metrics.select("cycle", "node", value=pl.col(metric).cast(pl.Float64), is_attacked=pl.col("attacked"))
    figure = go.Figure()
    for attacked, name, colour in ((False, "nodes", "rgba(120, 120, 140, 0.45)"), (True, "attacked nodes", "crimson")):
        group = frame.filter(pl.col("is_attacked") == attacked)
        if not group.is_empty():
            figure.add_trace(_node_lines(group, name, colour))
    mean = mean_per_cycle(metrics, metric)
    figure.add_trace(_over_cycles(mean, metric, name="mean", line={"width": 4, "color": "black"}))
    figure.update_layout(title={"text": f"{metric} per node"}, xaxis=_cycle_axis(metrics), yaxis_title=metric)
    return figure


def _node_lines(frame: pl.DataFrame, name: str, colour: str) -> go.Scatter:
    """All nodes' lines in one trace, separated by gaps: a trace per node would not scale to 500."""
    xs: list[int | None] = []
    ys: list[float | None] = []
    labels: list[str] = []
    for (node,), rows in frame.sort("node", "cycle").partition_by("node", as_dict=True, maintain_order=True).items():
        xs += [*rows["cycle"], None]
        ys += [*rows["value"], None]
        labels += [f"node {node}"] * (rows.height + 1)
    return go.Scatter(
        x=xs,
        y=ys,
        text=labels,
        mode="lines",
        name=name,
        line={"width": 1.5, "color": colour},
        hovertemplate="%{text}<br>cycle %{x}: %{y:.3g}<extra></extra>",
    )


def drifted_share(metrics: pl.DataFrame, threshold: float) -> pl.DataFrame:
    """Per cycle, the share of nodes (all, unattacked) that drifted by `threshold`: the engine's
    `drifted` column, at any threshold."""
    baseline = pl.col("refusal_rate").first().over("node", order_by="cycle")
    return (
        metrics.with_columns(drifted=drifted(baseline, pl.col("refusal_rate"), threshold))
        .group_by("cycle")
        .agg(all=pl.col("drifted").mean(), unattacked=pl.col("drifted").filter(~pl.col("attacked")).mean())
        .sort("cycle")
    )


def drifted_figure(share: pl.DataFrame, threshold: float) -> go.Figure:
    figure = go.Figure(
        [
            _over_cycles(share, "all", name="all nodes", mode="lines+markers"),
            _over_cycles(share, "unattacked", name="unattacked nodes", mode="lines+markers"),
        ]
    )
    figure.update_layout(
        title={"text": f"share of nodes drifted (refusal down by ≥ {threshold:g})"},
        xaxis=_cycle_axis(share),
        yaxis={"title": {"text": "share of nodes"}, "range": [-0.02, 1.02]},
    )
    return figure


def hop_heatmap(metrics: pl.DataFrame, metric: str) -> go.Figure:
    """The mean of `metric` by hop distance from the nearest attacked node (rows) and cycle (columns)."""
    cycles = metrics["cycle"].unique().sort().to_list()
    grid = (
        metrics.group_by("hops_from_attack", "cycle")
        .agg(pl.col(metric).cast(pl.Float64).mean())
        .pivot(on="cycle", index="hops_from_attack", values=metric)
        .sort("hops_from_attack", nulls_last=True)
    )
    hops = ["unreachable" if h is None else str(h) for h in grid["hops_from_attack"]]
    z = [list(row) for row in grid.select(str(c) for c in cycles).rows()]
    heatmap = go.Heatmap(
        z=z, x=cycles, y=hops, colorscale=RATE_SCALES.get(metric, "Viridis"), colorbar={"title": {"text": metric}}
    )
    figure = go.Figure(heatmap)
    figure.update_layout(
        title={"text": f"mean {metric} by hops from the attack"},
        xaxis=_cycle_axis(metrics),
        yaxis={"title": {"text": "hops from the nearest attacked node"}, "type": "category"},
    )
    return figure


def compare_figure(frames: dict[str, pl.DataFrame], metric: str) -> go.Figure:
    """The mean of `metric` over cycles, a line per run."""
    figure = go.Figure()
    for name, frame in frames.items():
        figure.add_trace(_over_cycles(mean_per_cycle(frame, metric), metric, name=name, mode="lines+markers"))
    axis = _cycle_axis(pl.concat([frame.select("cycle") for frame in frames.values()]))
    figure.update_layout(title={"text": f"mean {metric}"}, xaxis=axis, yaxis_title=metric, showlegend=True)
    return figure


def interval_figure(curves: pl.DataFrame, groups: list[str], metric: str) -> go.Figure:
    """A sweep's `metric` over cycles from `metric_over_seeds`: per group, the mean as a line and its
    95% interval over seeds as a band (where there are two seeds or more to make one)."""
    figure = go.Figure()
    palette = plotly.colors.qualitative.Plotly
    for index, (values, rows) in enumerate(curves.sort("cycle").group_by(groups, maintain_order=True)):
        label = ", ".join(f"{group}={value}" for group, value in zip(groups, values, strict=True))
        colour = palette[index % len(palette)]
        band = rows.drop_nulls(f"{metric}_low")
        figure.add_trace(
            go.Scatter(
                x=[*band["cycle"], *band["cycle"].reverse()],
                y=[*band[f"{metric}_high"], *band[f"{metric}_low"].reverse()],
                fill="toself",
                fillcolor=f"rgba{(*plotly.colors.hex_to_rgb(colour), 0.2)}",
                line={"width": 0},
                name=f"{label}: 95% interval",
                legendgroup=label,
                showlegend=False,
                hoverinfo="skip",
            )
        )
        mean = _over_cycles(rows, f"{metric}_mean", name=label, legendgroup=label, mode="lines+markers")
        figure.add_trace(mean.update(line={"color": colour}))
    figure.update_layout(
        title={"text": f"mean {metric} over seeds, with 95% intervals"},
        xaxis=_cycle_axis(curves),
        yaxis_title=metric,
        showlegend=True,
    )
    return figure
