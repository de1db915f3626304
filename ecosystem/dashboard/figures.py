"""The dashboard's plotly figures: a run's graph, metrics and edge flows, runs and sweeps over seeds, a
defended run against its control, and an experiment's figures."""

from __future__ import annotations

import itertools
import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import networkx as nx
import numpy as np
import plotly.colors
import plotly.graph_objects as go
import polars as pl

from ecosystem.analysis import drifted, mean_per_cycle
from ecosystem.dashboard import columns

HOVER_COLUMNS = (
    "refusal_rate",
    "harmful_rate",
    "helpfulness",
    "over_refusal",
    "drift",
    "drifted",
    "hops_from_attack",
)
PALETTE = (  # Okabe and Ito's colour-blind-safe set (without its yellow), then plotly's Dark24: no near pairs
    "#0072B2",
    "#E69F00",
    "#009E73",
    "#D55E00",
    "#CC79A7",
    "#56B4E9",
    "#000000",
    *plotly.colors.qualitative.Dark24,
)
LABELLED_NODES = 200  # nodes drawn with their number, up to this many
# Edges: a graph with this many or fewer gets arrowheads; a bigger one plain lines (fast to draw).
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
    tree: pl.DataFrame | None = None,
) -> go.Figure:
    """The graph at `cycle`: nodes coloured by `metric`, edges by the harmful pairs that flowed along
    them (`edges`, edges.parquet's rows; None for a run without them), and the transmission tree's links
    made by then (`tree`, transmission.parquet's rows: who likely infected whom).

    The colours mean the same at every cycle and in every view: a rate on [0, 1], anything else on
    its range over the run (`columns.colour_range`), and the flow classes span the run's flows. The
    dashboard plays the cycles itself (its slider moves), so the figure holds one cycle only."""
    shown = list(dict.fromkeys((metric, *HOVER_COLUMNS)))
    order = pl.DataFrame({"node": list(graph)}, schema={"node": pl.Int64})
    at_cycle = metrics.filter(pl.col("cycle") == cycle).select(
        pl.col("node").cast(pl.Int64), *(pl.col(c).cast(pl.Float64) for c in shown)
    )
    rows = order.join(at_cycle, on="node", how="left", maintain_order="left")
    flows, geometry = edge_flows(graph, edges, cycle), EdgeGeometry.of(graph, positions)
    lines = [
        *FlowClasses.of(edges, arrows=is_small(graph)).traces(flows, geometry),
        _edge_hover(graph, flows, geometry),
        *_transmission_trace(tree, positions, cycle),
    ]
    nodes = _node_trace(graph, positions, set(metrics.filter(pl.col("attacked"))["node"]), shown)
    low, high = columns.colour_range(metric, metrics[metric])
    nodes.update(
        marker={
            "cmin": low,
            "cmax": high,
            "colorscale": columns.colour_scale(metric),
            "color": rows[metric].to_numpy(),
        },
        customdata=rows.select(shown).to_numpy(),
    )
    figure = go.Figure(data=[*lines, nodes], layout={"title": {"text": f"{metric} at cycle {cycle}"}})
    figure.update_layout(
        height=max(560, min(900, 14 * len(graph))),  # a big graph gets more room for its labels
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
    )
    return figure


def _transmission_trace(tree: pl.DataFrame | None, positions: dict[int, Any], cycle: int) -> list[go.Scatter]:
    """The transmission tree's links up to `cycle`, infector to infected, as one dashed trace (none without any)."""
    if tree is None:
        return []
    links = tree.drop_nulls("infector").filter(pl.col("cycle") <= cycle)
    if links.is_empty():
        return []
    xs: list[float | None] = []
    ys: list[float | None] = []
    for infector, node in links.select("infector", "node").iter_rows():
        (x0, y0), (x1, y1) = positions[infector], positions[node]
        xs += [x0, x1, None]
        ys += [y0, y1, None]
    return [
        go.Scatter(
            x=xs,
            y=ys,
            mode="lines",
            name="transmission (who infected whom)",
            line={"color": "crimson", "width": 5, "dash": "dot"},
            hoverinfo="skip",
        )
    ]


def edge_flows(graph: nx.DiGraph, edges: pl.DataFrame | None, cycle: int) -> pl.DataFrame:
    """The graph's edges in its order with what flowed along them at `cycle`: `sender`, `receiver`, the
    FLOWS and `cut`. Nothing flows at a cycle without rows (cycle 0, the baseline); without `edges` at
    all, the flows are unknown (null)."""
    order = pl.DataFrame(list(graph.edges()), schema={"sender": pl.Int64, "receiver": pl.Int64}, orient="row")
    if edges is None:
        return order.with_columns(*(pl.lit(None, pl.Int64).alias(flow) for flow in FLOWS), cut=pl.lit(False))
    recorded = edges.filter(pl.col("cycle") == cycle).select(pl.col("sender", "receiver", *FLOWS).cast(pl.Int64), "cut")
    return order.join(recorded, on=["sender", "receiver"], how="left", maintain_order="left").with_columns(
        pl.col(FLOWS).fill_null(0), pl.col("cut").fill_null(False)
    )


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
        # float32: half the bytes of the edges sent to the browser
        xs = np.column_stack([start[:, 0], end[:, 0], gap]).astype(np.float32)
        ys = np.column_stack([start[:, 1], end[:, 1], gap]).astype(np.float32)
        return cls(xs, ys, (start + end) / 2)


@dataclass(frozen=True)
class FlowClasses:
    """Edges by the harmful pairs that flowed along them at a cycle: none, then up to four bins
    spanning the run's flows (wider and redder), then cut ones. A class is one line trace, since a
    trace has one colour and width; the bins are the run's, so that a colour means the same at every cycle."""

    bounds: list[int]  # each harmful bin's highest count
    has_cut: bool
    arrows: bool

    @classmethod
    def of(cls, edges: pl.DataFrame | None, arrows: bool) -> FlowClasses:
        if edges is None or edges.is_empty():
            return cls([], False, arrows)
        most = edges["harmful_pairs"].max() or 0
        bounds = sorted({math.ceil(most * (i + 1) / len(FLOW_COLOURS)) for i in range(len(FLOW_COLOURS))})
        return cls(bounds if most else [], bool(edges["cut"].any()), arrows)

    def styles(self) -> list[tuple[str, dict[str, Any]]]:
        """Each class's legend name and line, in the order of its trace."""
        shade = len(FLOW_COLOURS) - len(self.bounds)  # fewer bins take the darker colours
        styles = [("none", NO_FLOW_LINE)]
        for index, (below, high) in enumerate(itertools.pairwise([0, *self.bounds])):
            line = {"color": FLOW_COLOURS[shade + index], "width": 1.5 + shade + index}
            styles.append((f"{below + 1}-{high}" if high > below + 1 else str(high), line))
        return [*styles, *([("cut", CUT_LINE)] if self.has_cut else [])]

    def traces(self, flows: pl.DataFrame, geometry: EdgeGeometry) -> list[go.Scatter]:
        """A line trace per class with its edges at a cycle (its `flows`), then the edges' hover labels."""
        harmful = flows["harmful_pairs"].fill_null(0).to_numpy()
        classes = np.where(harmful > 0, 1 + np.searchsorted(self.bounds, harmful), 0)
        classes = np.where(flows["cut"].to_numpy(), len(self.bounds) + 1, classes)
        traces = []
        for index, (name, line) in enumerate(self.styles()):
            chosen = classes == index
            trace = go.Scatter(
                x=geometry.xs[chosen].ravel(),
                y=geometry.ys[chosen].ravel(),
                mode="lines+markers" if self.arrows else "lines",
                name=name,
                line=line,
                hoverinfo="skip",
            )
            if self.arrows:  # an arrowhead at the receiver's end only, as wide as its line allows
                head = np.array([0, 8 + 2 * line["width"], 0], np.float32)
                size = np.tile(head, int(chosen.sum()))
                trace.update(marker={"symbol": "arrow", "angleref": "previous", "color": line["color"], "size": size})
            traces.append(trace)
        return traces


def is_small(graph: nx.DiGraph) -> bool:
    """Whether the network figure draws the graph's edges with arrowheads and animates their flows."""
    return graph.number_of_edges() <= SMALL_GRAPH_EDGES


def _edge_hover(graph: nx.DiGraph, flows: pl.DataFrame, geometry: EdgeGeometry) -> go.Scatter:
    """An invisible marker in the middle of each edge, whose hover label shows its flows at the cycle
    (NaN where unknown)."""
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
        customdata=flows.select(pl.col(FLOWS).cast(pl.Float32)).to_numpy(),
        hovertemplate="<b>%{text}</b><br>harmful pairs: %{customdata[0]}<br>pairs sent: %{customdata[1]}"
        "<extra></extra>",
        showlegend=False,
    )


def node_size(nodes: int) -> float:
    """A node's marker size in pixels: large for a few nodes, smaller for many, so that 40 to 200 still
    fit the panel with their labels readable."""
    return float(np.clip(22 * math.sqrt(40 / max(nodes, 1)), 7, 22))


def _node_trace(
    graph: nx.DiGraph, positions: dict[int, tuple[float, float]], attacked: set[int], shown: list[str]
) -> go.Scatter:
    """The nodes, but for their colours and numbers at the cycle; attacked nodes are diamonds. Up to
    LABELLED_NODES they carry their number, smaller as there are more."""
    size = node_size(len(graph))
    labelled = len(graph) <= LABELLED_NODES
    hit = [node in attacked for node in graph]
    return go.Scatter(
        x=[positions[node][0] for node in graph],
        y=[positions[node][1] for node in graph],
        mode="markers+text" if labelled else "markers",
        name="nodes",
        text=[str(node) for node in graph] if labelled else None,
        textposition="top center",
        textfont={"size": 13 if len(graph) <= 40 else 10},
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


def _value_axis(metric: str) -> dict[str, Any]:
    """A y axis titled by the metric: fixed to [0, 1] for a rate, so that no difference looks bigger than it is."""
    return {"title": {"text": metric}, **columns.rate_axis(metric)}


def curves_figure(metrics: pl.DataFrame, metric: str) -> go.Figure:
    """`metric` over cycles: a thin line per node (attacked ones red) and the mean across nodes."""
    frame = metrics.select("cycle", "node", value=pl.col(metric).cast(pl.Float64), is_attacked=pl.col("attacked"))
    figure = go.Figure()
    for attacked, name, colour in ((False, "nodes", "rgba(120, 120, 140, 0.45)"), (True, "attacked nodes", "crimson")):
        group = frame.filter(pl.col("is_attacked") == attacked)
        if not group.is_empty():
            figure.add_trace(_lines(group, "node", name, {"width": 1.5, "color": colour}))
    twin = metrics.get_column("twin_refusal_rate", default=pl.Series([], dtype=pl.Float64))
    if metric == "refusal_rate" and twin.is_not_null().any():  # an attacked run's twin
        twin = metrics.select("cycle", "node", value=pl.col("twin_refusal_rate"))
        figure.add_trace(
            _lines(twin, "node", "each node's twin (no attack)", {"width": 1, "color": "grey", "dash": "dot"})
        )
        twin_mean = mean_per_cycle(metrics, "twin_refusal_rate")
        figure.add_trace(
            _over_cycles(
                twin_mean, "twin_refusal_rate", name="twin mean", line={"width": 3, "color": "grey", "dash": "dash"}
            )
        )
    mean = mean_per_cycle(metrics, metric)
    figure.add_trace(_over_cycles(mean, metric, name="mean", line={"width": 4, "color": "black"}))
    nodes = metrics["node"].n_unique()
    figure.update_layout(
        title={"text": f"{metric} per node (n = {nodes} nodes)"}, xaxis=_cycle_axis(metrics), yaxis=_value_axis(metric)
    )
    return figure


def _lines(frame: pl.DataFrame, by: str, name: str, line: dict[str, Any], **style: Any) -> go.Scatter:
    """A line of `value` over cycles per value of `by` (a node, a run), all in one trace separated by
    gaps: a trace per line would not scale to 500 nodes."""
    xs: list[int | None] = []
    ys: list[float | None] = []
    labels: list[str] = []
    for (key,), rows in frame.sort(by, "cycle").partition_by(by, as_dict=True, maintain_order=True).items():
        xs += [*rows["cycle"], None]
        ys += [*rows["value"], None]
        labels += [f"{by} {key}"] * (rows.height + 1)
    return go.Scatter(
        x=xs,
        y=ys,
        text=labels,
        mode="lines",
        name=name,
        line=line,
        hovertemplate="%{text}<br>cycle %{x}: %{y:.3g}<extra></extra>",
        **style,
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
    """The mean of `metric` by hop distance from the nearest attacked node (rows) and cycle (columns),
    on the colour scale and range the network view gives `metric`."""
    cycles = metrics["cycle"].unique().sort().to_list()
    grid = (
        metrics.group_by("hops_from_attack", "cycle")
        .agg(pl.col(metric).cast(pl.Float64).mean(), nodes=pl.len())
        .sort("hops_from_attack", "cycle", nulls_last=True)
    )
    wide = grid.pivot(on="cycle", index="hops_from_attack", values=metric).sort("hops_from_attack", nulls_last=True)
    counts = grid.group_by("hops_from_attack").agg(pl.col("nodes").max()).sort("hops_from_attack", nulls_last=True)
    hops = [
        f"{'unreachable' if hop is None else hop} (n={nodes})"
        for hop, nodes in zip(counts["hops_from_attack"], counts["nodes"], strict=True)
    ]
    z = [list(row) for row in wide.select(str(c) for c in cycles).rows()]
    low, high = columns.colour_range(metric, metrics[metric])
    heatmap = go.Heatmap(
        z=z,
        x=cycles,
        y=hops,
        zmin=low,
        zmax=high,
        colorscale=columns.colour_scale(metric),
        colorbar={"title": {"text": metric}},
        hovertemplate="hops %{y}, cycle %{x}: %{z:.3g}<extra></extra>",
    )
    figure = go.Figure(heatmap)
    figure.update_layout(
        title={"text": f"mean {metric} by hops from the attack"},
        xaxis=_cycle_axis(metrics),
        yaxis={"title": {"text": "hops from the nearest attacked node (nodes)"}, "type": "category"},
    )
    return figure


def colour(index: int) -> str:
    return PALETTE[index % len(PALETTE)]


def _label(groups: Sequence[str], values: Sequence[Any]) -> str:
    return ", ".join(f"{group}={value}" for group, value in zip(groups, values, strict=True))


def _counted(rows: pl.DataFrame, figure: str) -> str:
    """What a line's intervals rest on, as its legend says: n=3 runs on 1 base, or n=2..3 runs where some
    cycles have fewer."""
    counted = rows.filter(pl.col(f"{figure}_seeds") > 0)  # a cycle without the metric (train_loss at cycle 0)
    runs, bases = (_how_many(counted[f"{figure}_{part}"], unit) for part, unit in (("seeds", "run"), ("bases", "base")))
    return f"n={runs} on {bases}"


def _how_many(counts: pl.Series, unit: str) -> str:
    """3 runs, 1 base, or 2..3 runs where the count varies."""
    low, high = counts.min() or 0, counts.max() or 0
    return f"{high if low == high else f'{low}..{high}'} {unit}{'' if high == 1 else 's'}"


def interval_figure(
    curves: pl.DataFrame, groups: list[str], metric: str, runs: pl.DataFrame | None = None
) -> go.Figure:
    """`metric` over cycles from `metric_over_seeds`: per group, its runs as thin lines (`runs`: a row
    per group, `run` and cycle with the run's `value`), the mean as a thick line and its 95% interval
    over the runs as a band where there are two runs or more. The legend gives the runs each group
    rests on and their bases (n)."""
    figure = go.Figure()
    for index, (values, rows) in enumerate(curves.sort("cycle").group_by(groups, maintain_order=True)):
        label = _label(groups, values)
        shade = colour(index)
        name = f"{label} ({_counted(rows, metric)})"
        band = rows.drop_nulls(f"{metric}_low")
        figure.add_trace(
            go.Scatter(
                x=[*band["cycle"], *band["cycle"].reverse()],
                y=[*band[f"{metric}_high"], *band[f"{metric}_low"].reverse()],
                mode="lines",  # no markers: the band's corners are not data
                fill="toself",
                fillcolor=f"rgba{(*plotly.colors.hex_to_rgb(shade), 0.18)}",
                line={"width": 0},
                name=f"{label}: 95% interval",
                legendgroup=label,
                showlegend=False,
                hoverinfo="skip",
            )
        )
        if runs is not None:
            mine = runs.filter(
                pl.all_horizontal(pl.col(group) == value for group, value in zip(groups, values, strict=True))
            )
            figure.add_trace(
                _lines(
                    mine, "run", f"{label}: each run", {"width": 1, "color": shade}, opacity=0.45, legendgroup=label
                ).update(showlegend=False)
            )
        mean = _over_cycles(rows, f"{metric}_mean", name=name, legendgroup=label, mode="lines+markers")
        figure.add_trace(mean.update(line={"color": shade, "width": 3}))
    figure.update_layout(
        title={"text": f"mean {metric} over runs, with 95% intervals and each run"},
        xaxis=_cycle_axis(curves),
        yaxis=_value_axis(metric),
        showlegend=True,
    )
    return figure


def compare_figure(frames: dict[str, pl.DataFrame], metric: str) -> go.Figure:
    """The mean of `metric` over nodes per cycle, a line per run, each its own colour."""
    figure = go.Figure()
    for index, (name, frame) in enumerate(frames.items()):
        line = _over_cycles(mean_per_cycle(frame, metric), metric, name=name, mode="lines+markers")
        figure.add_trace(line.update(line={"color": colour(index)}))
    axis = _cycle_axis(pl.concat([frame.select("cycle") for frame in frames.values()]))
    figure.update_layout(title={"text": f"mean {metric}"}, xaxis=axis, yaxis=_value_axis(metric), showlegend=True)
    return figure


def _groups(frame: pl.DataFrame, groups: list[str]) -> list[tuple[tuple[Any, ...], pl.DataFrame]]:
    """The frame's rows by the values of `groups`, in order; all of them as one group when there are none."""
    if not groups:
        return [((), frame)]
    return [(tuple(values), rows) for values, rows in frame.group_by(groups, maintain_order=True)]


def figure_against_axis(
    cells: pl.DataFrame, summary: pl.DataFrame, axis: str, figure: str, groups: list[str]
) -> go.Figure:
    """A sweep's `figure` against the values of one `axis` (a dose-response chart): per group (the
    other axes chosen), each run as a faint point, and the mean over runs with its 95% interval
    (`summary`: `over_seeds` by the groups and the axis). A figure a run never reached
    (`columns.CENSORED`) is drawn at the run's last cycle as an open triangle: its value is later than that."""
    chart = go.Figure()
    for index, (values, rows) in enumerate(_groups(summary.sort(axis), groups)):
        label = _label(groups, values) or figure
        shade = colour(index)
        mine = cells
        for group, value in zip(groups, values, strict=True):
            mine = mine.filter(pl.col(group) == value)
        reached = mine.filter(pl.col(figure).is_not_null())
        chart.add_trace(
            go.Scatter(
                x=reached[axis].to_list(),
                y=reached[figure].to_list(),
                mode="markers",
                marker={"color": shade, "opacity": 0.45, "size": 7},
                name=f"{label}: each run",
                legendgroup=label,
                hovertemplate=f"{axis}=%{{x}}<br>{figure}: %{{y:.3g}}<extra>a run</extra>",
            )
        )
        never = mine.filter(pl.col(figure).is_null())
        if figure in columns.CENSORED and not never.is_empty() and "cycles" in never.columns:
            chart.add_trace(
                go.Scatter(
                    x=never[axis].to_list(),
                    y=never["cycles"].to_list(),
                    mode="markers",
                    marker={"color": shade, "symbol": "triangle-up-open", "size": 10},
                    name=f"{label}: censored ({columns.CENSORED[figure]})",
                    legendgroup=label,
                    hovertemplate=f"{axis}=%{{x}}<br>{figure}: later than %{{y}}<extra>censored</extra>",
                )
            )
        mean, low, high = (rows[f"{figure}_{part}"] for part in ("mean", "low", "high"))
        chart.add_trace(
            go.Scatter(
                x=rows[axis].to_list(),
                y=mean.to_list(),
                mode="lines+markers",
                line={"color": shade, "width": 3},
                marker={"size": 10},
                error_y={
                    "type": "data",
                    "array": (high - mean).to_list(),
                    "arrayminus": (mean - low).to_list(),
                    "thickness": 2,
                },
                name=f"{label}: mean ({_counted(rows, figure)})",
                legendgroup=label,
            )
        )
    category = not cells.schema[axis].is_numeric()
    chart.update_layout(
        title={"text": f"{figure} against {axis}: each run, and the mean over runs with its 95% interval"},
        xaxis={"title": {"text": axis}, **({"type": "category"} if category else {})},
        yaxis=_value_axis(figure),
        showlegend=True,
    )
    return chart


ARMS = {  # a defended study's arms, as the defense view names and draws them
    "with the defense": ("solid", 0),
    "without it (control run)": ("dash", 3),
    "no attack, with the defense (twin)": ("dot", 0),
    "no attack, without it (control's twin)": ("dashdot", 3),
}


def defense_figure(arms: dict[str, pl.DataFrame], metric: str, nodes: list[int], label: str) -> go.Figure:
    """A defended run against its control run (the same run, every random stream the same, without its
    defenses), and with twins the same two without the attack (the 2x2): the mean of `metric` over `nodes`
    per cycle, each arm a line (named as in `ARMS`)."""
    chart = go.Figure()
    for name, frame in arms.items():
        dash, shade = ARMS[name]
        mean = mean_per_cycle(frame.filter(pl.col("node").is_in(nodes)), metric)
        chart.add_trace(
            _over_cycles(mean, metric, name=name, mode="lines+markers", line={"color": colour(shade), "dash": dash})
        )
    chart.update_layout(
        title={"text": f"{metric}, {label} (n = {len(nodes)} node{'s' if len(nodes) != 1 else ''})"},
        xaxis=_cycle_axis(next(iter(arms.values()))),
        yaxis=_value_axis(metric),
        showlegend=True,
    )
    return chart


def finding_figure(figures: dict[str, dict[str, Any]]) -> go.Figure:
    """A finding's figures (verdict.json: mean, low, high, seeds each): a point per figure with its 95%
    interval as given, a row each, and the seeds it rests on."""
    names = list(figures)
    means = [figures[name].get("mean") for name in names]
    lows = [figures[name].get("low") for name in names]
    highs = [figures[name].get("high") for name in names]
    labels = [f"{name} (n={figures[name].get('seeds')})" for name in names]
    chart = go.Figure(
        go.Scatter(
            x=means,
            y=labels,
            mode="markers",
            marker={"size": 10, "color": colour(0)},
            error_x={
                "type": "data",
                "array": [None if m is None or h is None else h - m for m, h in zip(means, highs, strict=True)],
                "arrayminus": [None if m is None or lo is None else m - lo for m, lo in zip(means, lows, strict=True)],
            },
            hovertemplate="%{y}: %{x:.3g}<extra></extra>",
        )
    )
    chart.update_layout(
        height=120 + 40 * len(names),
        margin={"t": 30, "b": 40},
        xaxis={"title": {"text": "mean and 95% interval over seeds"}, "zeroline": True},
        yaxis={"autorange": "reversed"},
    )
    return chart
