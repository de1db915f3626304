"""The dashboard's logic; app.py is only its Streamlit layout.

Finding run directories and reading them (defensively: a run may be in progress, failed, corrupt
or from an older schema), the plotly figures, and launching a run as a background `cascade run`
process. Nothing here trains.
"""

from __future__ import annotations

import datetime
import json
import math
import shutil
import subprocess
import sys
import threading
import tomllib
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from xml.etree.ElementTree import ParseError

import networkx as nx
import plotly.graph_objects as go
import polars as pl
import streamlit as st

import topologies
from ecosystem.analysis import summarize
from ecosystem.config import load_config
from ecosystem.results import live_run

GRAPHML = "graph.graphml"
METRICS = "metrics.parquet"
STATUS = {"running": "in progress", "complete": "complete", "failed": "failed"}
LIVE = ("in progress", "starting")
LAYOUT_SEED = 0
CORE_COLUMNS = (  # what the views use; any other column (betweenness, pagerank, ...) is optional
    "cycle",
    "node",
    "domain",
    "refusal_rate",
    "harmful_rate",
    "helpfulness",
    "over_refusal",
    "drift",
    "drifted",
    "attacked",
    "hops_from_attack",
)
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
SUMMARY_COLUMNS = ("refusal_rate", "harmful_rate", "helpfulness", "drifted", "attacked", "hops_from_attack")
FINAL_FIGURES = (
    "cycles",
    "nodes",
    "final_mean_refusal",
    "final_unattacked_refusal",
    "final_attacked_refusal",
    "final_drifted_nodes",
    "peak_drifted_unattacked",
    "time_to_systemic",
    "max_hops_reached",
)
UNREADABLE_PARQUET = (pl.exceptions.PolarsError, pl.exceptions.PanicException, OSError)
CASCADE = shutil.which("cascade", path=str(Path(sys.executable).parent)) or "cascade"

LAUNCHED: dict[Path, subprocess.Popen[bytes]] = {}  # the runs this server process started, by directory


class DashboardError(RuntimeError):
    """Something the dashboard cannot show or do: the message says what and why."""


@dataclass(frozen=True)
class Run:
    """A run directory as read from disk; `manifest` and `config` are empty when missing or unreadable."""

    path: Path
    manifest: dict[str, Any]
    config: dict[str, Any]
    problems: tuple[str, ...]

    @property
    def name(self) -> str:
        return self.path.name

    @property
    def started(self) -> str:
        started = self.manifest.get("started")
        if isinstance(started, str):
            return started
        return datetime.datetime.fromtimestamp(self.path.stat().st_mtime, datetime.UTC).isoformat(timespec="seconds")

    @property
    def status(self) -> str:
        """complete, failed or in progress (from the manifest); starting or stopped for a launch of ours."""
        process = LAUNCHED.get(self.path)
        exited = process is not None and process.poll() is not None
        recorded = self.manifest.get("status")
        if exited and recorded in (None, "running"):
            return f"stopped (exit code {process.returncode})"
        if recorded is None:
            return "starting" if process is not None else "no manifest"
        if recorded == "running" and process is None and not live_run(self.path):
            return "interrupted"
        return STATUS.get(recorded, str(recorded))

    @property
    def note(self) -> str:
        notes = [*self.problems]
        if "error" in self.manifest:
            notes.append(str(self.manifest["error"]))
        if self.status.startswith("stopped"):
            notes.append(log_tail(self.path, lines=1))
        if self.status == "interrupted":
            notes.append(f"its process died; continue it with: cascade run --resume {self.path}")
        return "; ".join(note for note in notes if note)

    @property
    def cycles(self) -> int | None:
        return self.config.get("cycles")

    @property
    def drift_threshold(self) -> float:
        return float(self.config.get("evaluation", {}).get("drift_threshold", 0.2))


def read_run(path: Path) -> Run:
    problems: list[str] = []
    manifest = _read_file(path / "manifest.json", json.loads, problems)
    config = _read_file(path / "config.toml", tomllib.loads, problems)
    return Run(path.resolve(), manifest, config, tuple(problems))


def _read_file(path: Path, parse: Callable[[str], Any], problems: list[str]) -> dict[str, Any]:
    if not path.exists():
        return {}
    try:
        value = parse(path.read_text())
    except (OSError, ValueError) as error:  # ValueError covers bad JSON, bad TOML and bad UTF-8
        problems.append(f"{path.name} is unreadable ({error})")
        return {}
    return value if isinstance(value, dict) else {}


def list_runs(runs_dir: Path) -> list[Run]:
    """The run directories in `runs_dir` (its subdirectories but hidden ones), newest first."""
    if not runs_dir.is_dir():
        raise DashboardError(f"{runs_dir} is not a directory: choose another in the sidebar, or launch a run into it")
    runs = [read_run(path) for path in runs_dir.iterdir() if path.is_dir() and not path.name.startswith(".")]
    return sorted(runs, key=lambda run: (run.started, run.name), reverse=True)


def describe_attacks(config: dict[str, Any]) -> str:
    attacks = [
        f"nodes {listing(attack.get('targets'))}: {attack.get('examples')} examples at cycles "
        f"{listing(attack.get('cycles'))}"
        for attack in config.get("attack", [])
    ]
    return "; ".join(attacks) or "none"


def listing(values: Any) -> str:
    """Numbers as the launch form and the runs table show them: 0,3."""
    return ",".join(map(str, values)) if isinstance(values, list) else str(values)


def runs_table(runs: list[Run]) -> pl.DataFrame:
    topology = [run.config.get("topology", {}) for run in runs]
    return pl.DataFrame(
        {
            "run": [run.name for run in runs],
            "started (UTC)": [run.started[:16].replace("T", " ") for run in runs],
            "topology": [t.get("name") for t in topology],
            "nodes": [t.get("nodes") for t in topology],
            "cycles": [run.cycles for run in runs],
            "attacks": [describe_attacks(run.config) for run in runs],
            "status": [run.status for run in runs],
            "note": [run.note for run in runs],
        },
        strict=False,
    )


def read_metrics(run: Path) -> pl.DataFrame:
    """All rows of a run's metrics, sorted by cycle and node; read again only when the file changed."""
    path = run / METRICS
    try:
        stat = path.stat()
    except FileNotFoundError:
        raise DashboardError(f"no {METRICS} yet: it is written after the baseline evaluation") from None
    return _read_parquet(str(path), stat.st_mtime_ns, stat.st_size)


@st.cache_data(max_entries=32, show_spinner=False)
def _read_parquet(path: str, mtime_ns: int, size: int) -> pl.DataFrame:
    """`mtime_ns` and `size` only key the cache: the engine rewrites the file after each cycle."""
    try:
        frame = pl.scan_parquet(path).collect()
    except UNREADABLE_PARQUET as error:
        raise DashboardError(f"{path} cannot be read (corrupt or not parquet): {error}") from None
    if missing := missing_columns(frame, "cycle", "node"):
        raise DashboardError(f"{path} has no {' or '.join(missing)} column: it is not a run's metrics")
    if frame.is_empty():
        raise DashboardError(f"{path} has no rows yet")
    return frame.sort("cycle", "node")


def last_cycle(run: Path) -> int | None:
    """The last cycle written to a run's metrics (reading one column), or None when there is none."""
    try:
        return pl.scan_parquet(run / METRICS).select(pl.col("cycle").max()).collect().item()
    except UNREADABLE_PARQUET:
        return None


def missing_columns(frame: pl.DataFrame, *columns: str) -> list[str]:
    return [column for column in columns if column not in frame.columns]


def schema_note(frame: pl.DataFrame) -> str | None:
    """A note for metrics from an older schema: which of the core columns they lack."""
    if missing := missing_columns(frame, *CORE_COLUMNS):
        return f"these metrics lack {', '.join(missing)} (an older schema): what needs them is left out"
    return None


def metric_columns(frame: pl.DataFrame) -> list[str]:
    """The columns that can colour a node or make a curve: numbers and booleans, bar cycle and node."""
    return [
        name
        for name, dtype in frame.schema.items()
        if name not in ("cycle", "node") and (dtype.is_numeric() or dtype == pl.Boolean)
    ]


def load_graph(run: Run) -> nx.DiGraph:
    """The run's graph from graph.graphml, or rebuilt from its configuration where there is none
    (runs older than graph.graphml: their families were deterministic, so the rebuild is exact)."""
    graphml = run.path / GRAPHML
    if graphml.exists():
        try:
            graph = nx.read_graphml(graphml, node_type=int)
            graph.graph["source"] = f"from {GRAPHML}"
            return graph
        except (OSError, ValueError, nx.NetworkXError, ParseError):
            pass  # rebuild it below
    topology = run.config.get("topology", {})
    try:
        graph = topologies.build(topology["name"], nodes=topology["nodes"], edge_weight=topology["edge_weight"])
    except (KeyError, TypeError, ValueError) as error:
        raise DashboardError(f"no usable {GRAPHML}, and config.toml's topology cannot be rebuilt: {error!r}") from None
    graph.graph["source"] = "rebuilt from config.toml"
    return graph


@st.cache_data(max_entries=32, show_spinner=False)
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
    shown = [column for column in dict.fromkeys((metric, *HOVER_COLUMNS)) if column in metrics.columns]
    order = pl.DataFrame({"node": list(graph)}, schema={"node": pl.Int64})
    values = metrics.select("cycle", pl.col("node").cast(pl.Int64), *(pl.col(c).cast(pl.Float64) for c in shown))
    cycles = {
        key[0]: order.join(rows.drop("cycle"), on="node", how="left", maintain_order="left")
        for key, rows in values.partition_by("cycle", as_dict=True).items()
    }
    low, high = (0.0, 1.0) if metric in RATE_SCALES else (values[metric].min(), values[metric].max())
    edges = _edge_traces(graph, positions)
    nodes = _node_trace(graph, positions, set(metrics.filter(_attacked(metrics))["node"]), shown)
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
            f"node {node} ({graph.nodes[node].get('domain', '?')}){' · attacked' if node in attacked else ''}"
            for node in graph
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


def _setting(value: Any) -> str:
    """A value as a table shows it, exactly: "-" where there is none."""
    if value is None:
        return "-"
    return value if isinstance(value, str) else json.dumps(value)


def _attacked(frame: pl.DataFrame) -> pl.Expr:
    return pl.col("attacked") if "attacked" in frame.columns else pl.lit(False)


def mean_per_cycle(frame: pl.DataFrame, metric: str) -> pl.DataFrame:
    return frame.group_by("cycle").agg(pl.col(metric).cast(pl.Float64).mean()).sort("cycle")


def _over_cycles(frame: pl.DataFrame, column: str, **style: Any) -> go.Scatter:
    """A line of `column` against the frame's cycles (plain lists: readable JSON for the browser and tests)."""
    return go.Scatter(x=frame["cycle"].to_list(), y=frame[column].to_list(), **style)


def _cycle_axis(frame: pl.DataFrame) -> dict[str, Any]:
    """An x axis of cycles: whole numbers, ten ticks at most."""
    return {"title": {"text": "cycle"}, "dtick": max(1, math.ceil(frame["cycle"].max() / 10))}


def curves_figure(metrics: pl.DataFrame, metric: str) -> go.Figure:
    """`metric` over cycles: a thin line per node (attacked ones red) and the mean across nodes."""
    frame = metrics.select("cycle", "node", value=pl.col(metric).cast(pl.Float64), is_attacked=_attacked(metrics))
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
    """Per cycle, the share of nodes (all, unattacked) whose refusal rate is at least `threshold` below
    their own at the first cycle: the engine's `drifted` column, at any threshold."""
    baseline = pl.col("refusal_rate").first().over("node", order_by="cycle")
    drifted = (baseline - pl.col("refusal_rate")) >= threshold
    return (
        metrics.with_columns(drifted=drifted, attacked=_attacked(metrics))
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
    """The mean of `metric` over cycles, a line per run (runs whose metrics lack it are left out)."""
    figure = go.Figure()
    for name, frame in frames.items():
        if metric in frame.columns:
            mean = mean_per_cycle(frame, metric)
            figure.add_trace(_over_cycles(mean, metric, name=name, mode="lines+markers"))
    axis = _cycle_axis(pl.concat([frame.select("cycle") for frame in frames.values()]))
    figure.update_layout(title={"text": f"mean {metric}"}, xaxis=axis, yaxis_title=metric, showlegend=True)
    return figure


def flatten(value: Any, prefix: str = "") -> dict[str, Any]:
    """A nested configuration as dotted keys: {"topology": {"nodes": 8}} → {"topology.nodes": 8}; the
    tables of a list are numbered as in `--set` (attack.0.examples)."""
    if isinstance(value, dict):
        items = list(value.items())
    elif isinstance(value, list) and value and all(isinstance(item, dict) for item in value):
        items = list(enumerate(value))
    else:
        return {prefix: value}
    flat: dict[str, Any] = {}
    for key, item in items:
        flat |= flatten(item, f"{prefix}.{key}" if prefix else str(key))
    return flat


def config_differences(configs: dict[str, dict[str, Any]]) -> pl.DataFrame:
    """The settings that differ between runs: a row per setting, a column per run ("-" where unset)."""
    flat = {name: flatten(config) for name, config in configs.items()}
    keys = sorted(set().union(*flat.values()))
    differing = [key for key in keys if len({_setting(settings.get(key)) for settings in flat.values()}) > 1]
    columns = {name: [_setting(settings.get(key)) for key in differing] for name, settings in flat.items()}
    return pl.DataFrame({"setting": differing, **columns}, schema=dict.fromkeys(["setting", *columns], pl.String))


def final_figures(frames: dict[str, pl.DataFrame]) -> pl.DataFrame:
    """A row per run with its cascade-level figures at the last cycle written."""
    rows = []
    for name, frame in frames.items():
        missing = missing_columns(frame, *SUMMARY_COLUMNS)
        figures = {} if missing else summarize(frame)
        note = f"lacks {', '.join(missing)}" if missing else ""
        rows.append({"run": name, **{key: figures.get(key) for key in FINAL_FIGURES}, "note": note})
    return pl.DataFrame(rows, infer_schema_length=None)


def launch_overrides(
    topology: str, nodes: int, cycles: int, targets: str, dose: int, attack_cycles: str, defense: str, more: str
) -> list[str]:
    """The `--set` overrides for the launch form's values; `more` holds further key=value lines."""
    sized = "nodes" in topologies.family(topology).params  # other families take their size from their parameters
    return [
        f"topology.name={topology}",
        *([f"topology.nodes={nodes}"] if sized else []),
        f"cycles={cycles}",
        f"attack.0.targets={_toml_list(targets)}",
        f"attack.0.examples={dose}",
        f"attack.0.cycles={_toml_list(attack_cycles)}",
        *([f'defense.0.kind="{defense}"'] if defense != "none" else []),
        *(line.strip() for line in more.splitlines() if line.strip()),
    ]


def _toml_list(text: str) -> str:
    """A form field such as 0, 3 as the TOML list [0, 3]; a word (all) stays as it is."""
    return text if text.strip().isalpha() else f"[{text}]"


def launch(runs_dir: Path, name: str, overrides: list[str]) -> subprocess.Popen[bytes]:
    """Start `cascade run --out RUNS_DIR/NAME` as a background process, after checking its configuration.

    Raises ConfigError for a bad configuration, DashboardError for a bad name or a directory that
    already exists: creating it here is what refuses a second launch into the same directory."""
    if Path(name).name != name or name in ("", ".", ".."):
        raise DashboardError(f"run name {name!r} must be a plain directory name")
    load_config(overrides=overrides)
    out = (runs_dir / name).resolve()
    try:
        out.mkdir(parents=True)
    except FileExistsError:
        raise DashboardError(f"{out} already exists: a run was started there; choose another name") from None
    log = launch_log(out)
    log.parent.mkdir(exist_ok=True)
    command = [CASCADE, "run", "--out", str(out), *(arg for value in overrides for arg in ("--set", value))]
    try:
        with log.open("wb") as sink:
            process = subprocess.Popen(
                command, stdin=subprocess.DEVNULL, stdout=sink, stderr=subprocess.STDOUT, start_new_session=True
            )
    except OSError as error:
        out.rmdir()
        raise DashboardError(f"cannot start {CASCADE}: {error}") from None
    threading.Thread(target=process.wait, daemon=True).start()  # reaps it when it ends: no zombie
    LAUNCHED[out] = process
    return process


def launch_log(out: Path) -> Path:
    """Where a launched run's output goes: beside it, since `cascade run` wants its directory empty."""
    return out.parent / ".logs" / f"{out.name}.log"


def log_tail(out: Path, lines: int = 20) -> str:
    try:
        return "\n".join(launch_log(out).read_text(errors="replace").splitlines()[-lines:])
    except OSError:
        return ""
