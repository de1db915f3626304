"""The dashboard's plotly figures, from a run's graph and metrics."""

from __future__ import annotations

import math
from typing import Any

import networkx as nx
import plotly.graph_objects as go
import polars as pl

from ecosystem.analysis import drifted, mean_per_cycle

LAYOUT_SEED = 0
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
    "helpfulness": "RdYlGn",
    "harmful_rate": "RdYlGn_r",
    "over_refusal": "RdYlGn_r",
    "drift": "RdYlGn_r",
    "drifted": "RdYlGn_r",
}


def layout(nodes: tuple[int, ...], edges: tuple[tuple[int, int], ...]) -> dict[int, tuple[float, float]]:
    """Node positions by a spring layout with a fixed seed: a graph is drawn the same way every time."""
    graph = nx.Graph()
    graph.add_nodes_from(nodes)
    graph.add_edges_from(edges)
    positions = nx.spring_layout(graph, seed=LAYOUT_SEED)
    return {node: (float(x), float(y)) for node, (x, y) in positions.items()}


def network_figure(
    graph: nx.DiGraph, positions: dict[int, tuple[float, float]], metrics: pl.DataFrame, metric: str, cycle: int
) -> go.Figure:
    """The graph with nodes coloured by `metric` at `cycle`, and an animation frame per cycle.

    A rate is coloured on [0, 1], anything else on its range over the run: a colour means the same in
    every frame. Frames only change the colours and the numbers that hover labels show, as numpy arrays
    (sent in binary): 500 nodes by 50 cycles stay light."""
    shown = list(dict.fromkeys((metric, *HOVER_COLUMNS)))
    order = pl.DataFrame({"node": list(graph)}, schema={"node": pl.Int64})
    values = metrics.select("cycle", pl.col("node").cast(pl.Int64), *(pl.col(c).cast(pl.Float64) for c in shown))
    cycles = {
        key[0]: order.join(rows.drop("cycle"), on="node", how="left", maintain_order="left")
        for key, rows in values.partition_by("cycle", as_dict=True).items()
    }
    low, high = (0.0, 1.0) if metric in RATE_SCALES else (values[metric].min(), values[metric].max())
    edges = _edge_traces(graph, positions)
    nodes = _node_trace(graph, positions, set(metrics.filter(pl.col("attacked"))["node"]), shown)
    nodes.update(marker={"cmin": low, "cmax": high, "colorscale": RATE_SCALES.get(metric, "Viridis")})
    nodes.update(_cycle_values(cycles[cycle], metric, shown))
    frames = [
        go.Frame(name=str(c), data=[_cycle_values(rows, metric, shown)], traces=[len(edges)], layout=_title(metric, c))
        for c, rows in sorted(cycles.items())
    ]
    figure = go.Figure(data=[*edges, nodes], frames=frames, layout=_title(metric, cycle))
    play = {"frame": {"duration": 800, "redraw": True}, "transition": {"duration": 0}, "fromcurrent": False}
    pause = {"frame": {"duration": 0, "redraw": False}, "mode": "immediate"}
    figure.update_layout(
        height=560,
        xaxis={"visible": False},
        yaxis={"visible": False, "scaleanchor": "x"},
        legend={
            "title": {"text": "edge weight"},
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


def _cycle_values(rows: pl.DataFrame, metric: str, shown: list[str]) -> go.Scatter:
    """What changes from cycle to cycle: the node colours and the numbers of the hover labels."""
    return go.Scatter(marker={"color": rows[metric].to_numpy()}, customdata=rows.select(shown).to_numpy())


def _title(metric: str, cycle: int) -> dict[str, Any]:
    return {"title": {"text": f"{metric} at cycle {cycle}"}}


def _edge_traces(graph: nx.DiGraph, positions: dict[int, tuple[float, float]]) -> list[go.Scatter]:
    """One line trace per edge weight (to a tenth): line width grows with the weight."""
    groups: dict[float, list[tuple[int, int]]] = {}
    for sender, receiver, weight in graph.edges(data="weight", default=1.0):
        groups.setdefault(round(float(weight), 1), []).append((sender, receiver))
    traces = []
    for weight, edges in sorted(groups.items()):
        xs: list[float | None] = []
        ys: list[float | None] = []
        for sender, receiver in edges:
            xs += [positions[sender][0], positions[receiver][0], None]
            ys += [positions[sender][1], positions[receiver][1], None]
        line = {"width": 0.5 + 6 * weight, "color": "rgba(110, 110, 130, 0.5)"}
        traces.append(go.Scatter(x=xs, y=ys, mode="lines", line=line, name=f"{weight:g}", hoverinfo="skip"))
    return traces


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
