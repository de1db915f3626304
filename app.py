"""The dashboard: `streamlit run app.py`. It reads run and sweep directories and never trains; a launched
run is a separate `cascade run` process. This script is the layout and the caching; ecosystem/dashboard/ holds
the logic."""

from __future__ import annotations

import datetime
from collections.abc import Sequence
from pathlib import Path
from typing import TypeVar

import networkx as nx
import polars as pl
import streamlit as st

import topologies
from ecosystem.config import Config, ConfigError
from ecosystem.dashboard import figures, launch, runs, sweeps
from ecosystem.results import ResultsError

st.set_page_config(page_title="Ecosystem cascade", layout="wide")

# Results are read again only when their file changed (its modification time and size key the cache).
read_metrics = st.cache_data(max_entries=32, show_spinner=False)(runs.read_metrics)
read_edges = st.cache_data(max_entries=32, show_spinner=False)(runs.read_edges)
read_sweep_results = st.cache_data(max_entries=8, show_spinner=False)(sweeps.read_results)
layout = st.cache_data(max_entries=32, show_spinner=False)(figures.layout)


def choose(label: str, options: Sequence[str], preferred: str, key: str, help: str | None = None) -> str:
    index = options.index(preferred) if preferred in options else 0
    return st.selectbox(label, options, index=index, key=key, help=help)


GROUPS_HELP = (
    "A line per combination of the chosen axes; cells that differ only in other axes are pooled, their runs "
    "together. None chosen: a line per cell."
)
CHECKPOINT_HELP = (
    "The checkpoint world needs its files, as more settings: world.model_path=/models/my-llama, "
    "world.harmful_prompts=FILE.csv, world.borderline_prompts=FILE.csv, world.task_data=FILE.jsonl "
    "(README, Real-LLM mode); vllm needs vLLM installed."
)


def launch_form(runs_dir: Path) -> None:
    default = Config()
    attack = default.attack[0]
    with st.sidebar.expander("Launch a run"), st.form("launch"):
        world = choose("world", launch.WORLD_CHOICES, default.world.kind, key="launch_world", help=CHECKPOINT_HELP)
        engine = choose("generation engine", launch.ENGINE_CHOICES, default.generation.engine, key="launch_engine")
        families = sorted(topologies.FAMILIES)
        topology = choose("topology", families, default.topology.name, key="launch_topology")
        nodes = st.number_input("nodes", min_value=2, value=default.topology.nodes, key="launch_nodes")
        cycles = st.number_input("cycles", min_value=1, value=default.cycles, key="launch_cycles")
        targets = st.text_input(
            "attacked nodes", launch.listing(attack.targets), help="comma-separated", key="launch_targets"
        )
        dose = st.number_input("dose (poison examples)", min_value=0, value=attack.examples, key="launch_dose")
        attack_cycles = st.text_input("attack at cycles", launch.listing(attack.cycles), key="launch_attack")
        defense = st.selectbox("defense (all nodes)", launch.DEFENSE_CHOICES, key="launch_defense")
        more = st.text_area(
            "more settings", help=f"key=value lines, as `cascade run --set`. {CHECKPOINT_HELP}", key="launch_more"
        )
        name = st.text_input(
            "run name",
            help=f"default: launch-DATE-TIME. The launch writes only inside {runs_dir}: NAME/ and .logs/NAME.log",
            key="launch_name",
        )
        submitted = st.form_submit_button("Launch")
    if not submitted:
        return
    name = name.strip() or datetime.datetime.now().strftime("launch-%Y%m%d-%H%M%S")
    overrides = launch.launch_overrides(
        world=world,
        engine=engine,
        topology=topology,
        nodes=nodes,
        cycles=cycles,
        targets=targets,
        dose=dose,
        attack_cycles=attack_cycles,
        defense=defense,
        more=more,
    )
    try:
        process = launch.launch(runs_dir, name, overrides)
    except (ConfigError, launch.LaunchError) as error:
        st.sidebar.error(f"not launched: {error}")
        return
    st.sidebar.success(f"launched {name} (process {process.pid})")
    st.session_state.run = name  # select it below


def progress(runs_dir: Path) -> None:
    """The runs and sweeps in progress, with a bar each; the whole app reruns when a run writes a cycle or
    a sweep completes a run."""
    seen = []
    for run in runs.list_runs(runs_dir) if runs_dir.is_dir() else []:
        if run.status in runs.LIVE:
            cycle, total = runs.last_cycle(run.path), run.config.cycles if run.config else None
            counted = f", cycle {cycle or 0}/{total}" if total else ""
            st.progress(min((cycle or 0) / (total or 1), 1.0), text=f"{run.name}: {run.status}{counted}")
            seen.append((run.name, run.status, cycle))
    for sweep in sweeps.list_sweeps(runs_dir) if runs_dir.is_dir() else []:
        if sweep.live:
            sweep_progress(sweep)
            seen.append((sweep.name, sweep.status, sweep.complete))
    if st.session_state.setdefault("progress_seen", seen) != seen:
        st.session_state.progress_seen = seen
        st.rerun()


def sweep_progress(sweep: sweeps.Sweep) -> None:
    text = f"{sweep.name}: sweep {sweep.status}, {sweep.complete}/{sweep.total} runs complete"
    st.progress(sweep.complete / (sweep.total or 1), text=text)


def selected_metrics(run: runs.Run) -> pl.DataFrame | None:
    try:
        return read_metrics(runs.metrics_file(run.path))
    except ResultsError as error:
        st.error(str(error))
        return None


def network_view(run: runs.Run, metrics: pl.DataFrame) -> None:
    try:
        graph = run.directory.read_graph()
    except ResultsError as error:
        st.error(str(error))
        return
    left, right = st.columns([1, 3])
    with left:
        metric = choose("colour nodes by", runs.metric_columns(metrics), "refusal_rate", key="network_metric")
    cycles = metrics["cycle"].unique().sort().to_list()
    with right:  # a new slider, at the latest cycle, for another run or when a live run writes a cycle
        key = f"cycle:{run.name}:{cycles[-1]}"
        cycle = st.select_slider("cycle", cycles, value=cycles[-1], key=key) if len(cycles) > 1 else cycles[0]
    edges = selected_edges(run)
    positions = layout(tuple(graph), tuple(graph.edges()))
    st.plotly_chart(figures.network_figure(graph, positions, metrics, metric, cycle, edges), key="network")
    st.caption(network_caption(graph))


def selected_edges(run: runs.Run) -> pl.DataFrame | None:
    """The run's edge flows, or None (with a note) for a run without a readable edges.parquet."""
    try:
        return read_edges(runs.edges_file(run.path))
    except ResultsError as error:
        st.caption(f"the edges show no flows: {error}")
        return None


def network_caption(graph: nx.DiGraph) -> str:
    flows = (
        "◆ attacked node · an edge's colour and width: the harmful pairs it carried at the cycle (dotted: cut by "
        "a quarantine); hover over its middle for its flows"
    )
    if figures.is_small(graph):
        return f"{flows} · arrows point from sender to receiver · ▶ play animates every cycle, nodes and edges"
    return (
        f"{flows} · with {graph.number_of_edges()} edges (over {figures.SMALL_GRAPH_EDGES}), edges are lines without "
        "arrowheads, each direction drawn to its right, and ▶ play recolours the nodes only while the edges stay "
        "at the chosen cycle: frames holding every edge at every cycle would weigh megabytes, sent again at every "
        "change of a control"
    )


def curves_view(config: Config, metrics: pl.DataFrame) -> None:
    metrics_shown = runs.metric_columns(metrics)
    metric = choose("metric", metrics_shown, "refusal_rate", key="curves_metric")
    st.plotly_chart(figures.curves_figure(metrics, metric), key="curves")
    left, right = st.columns(2)
    with left:
        default = config.evaluation.drift_threshold
        threshold = st.slider("drift threshold", 0.01, 1.0, default, 0.01, key="threshold")
        st.plotly_chart(figures.drifted_figure(figures.drifted_share(metrics, threshold), threshold), key="drifted")
    with right:
        heat_metric = choose("heatmap metric", metrics_shown, "drift", key="heatmap_metric")
        st.plotly_chart(figures.hop_heatmap(metrics, heat_metric), key="heatmap")


def compare_view(by_name: dict[str, runs.Run], selected: runs.Run) -> None:
    readable = [name for name, run in by_name.items() if run.config is not None]
    names = st.multiselect("runs to compare", readable, default=[selected.name], key="compare_runs")
    frames = {}
    for name in names:
        try:
            frames[name] = read_metrics(runs.metrics_file(by_name[name].path))
        except ResultsError as error:
            st.warning(f"{name} is left out: {error}")
    if not frames:
        st.info("choose runs with metrics to compare")
        return
    metric = choose("metric", runs.metric_columns(next(iter(frames.values()))), "refusal_rate", key="compare_metric")
    st.plotly_chart(figures.compare_figure(frames, metric), key="compare")
    st.subheader("Configuration differences")
    differences = runs.config_differences({name: by_name[name].config for name in frames})
    if differences.is_empty():
        st.caption("the configurations are identical")
    else:
        st.dataframe(differences, hide_index=True)
    st.subheader("Final figures")
    st.dataframe(runs.final_figures(frames), hide_index=True)


Listed = TypeVar("Listed", runs.Run, sweeps.Sweep)


def pick(listed: list[Listed], table: pl.DataFrame, label: str) -> Listed:
    """The table of what is listed, a choice of one by name, and its status and note."""
    st.dataframe(table, hide_index=True)
    by_name = {item.name: item for item in listed}
    chosen = by_name[st.selectbox(label, list(by_name), key=label)]
    st.caption(f"{chosen.status} · {chosen.path}")
    if chosen.note:
        st.warning(chosen.note)
    return chosen


def runs_view(listed: list[runs.Run], runs_dir: Path) -> None:
    if not listed:
        st.info(f"no runs in {runs_dir} yet, only sweeps: launch one from the sidebar")
        return
    run = pick(listed, runs.runs_table(listed), "run")
    by_name = {item.name: item for item in listed}
    if run.status.startswith("stopped"):
        st.code(launch.log_tail(run.path), language=None)
    if run.config is not None:  # else starting, or unreadable: there is nothing to show yet
        run_views(by_name, run)


def run_views(by_name: dict[str, runs.Run], run: runs.Run) -> None:
    network, curves, compare = st.tabs(["Network", "Curves", "Compare"], key="view", on_change="rerun")
    with network:
        if network.open and (metrics := selected_metrics(run)) is not None:
            network_view(run, metrics)
    with curves:
        if curves.open and (metrics := selected_metrics(run)) is not None:
            curves_view(run.config, metrics)
    with compare:
        if compare.open:
            compare_view(by_name, run)


def sweep_view(found: list[sweeps.Sweep], runs_dir: Path) -> None:
    if not found:
        st.info(f"no sweeps in {runs_dir}: `cascade sweep SPEC --out {runs_dir}/NAME` makes one")
        return
    sweep = pick(found, sweeps.sweeps_table(found), "sweep")
    if sweep.status == runs.UNREADABLE:
        return
    if sweep.unfinished:
        sweep_progress(sweep)
    try:
        results = read_sweep_results(sweeps.results_files(sweep.path))
    except ResultsError as error:
        st.info(str(error))
        return
    sweep_curves(sweep, results.metrics)
    sweep_cells(sweep, results.cells)


def sweep_curves(sweep: sweeps.Sweep, metrics: pl.DataFrame) -> None:
    left, right = st.columns([1, 3])
    with left:
        metric = choose("metric", sweeps.sweep_metric_columns(metrics, sweep.axes), "refusal_rate", key="sweep_metric")
        groups = st.multiselect(
            "group cells by", sweep.axes, default=sweep.axes, key=f"sweep_groups:{sweep.name}", help=GROUPS_HELP
        )
    keys = groups or ["cell"]
    curves = sweeps.metric_over_seeds(metrics, metric, keys)
    with right:
        st.plotly_chart(figures.interval_figure(curves, keys, metric), key="sweep_curves")
        st.caption(
            "each run's mean over its nodes, then per cycle their mean over seeds with its 95% Student-t interval "
            "(the band; none with one seed)"
        )


def sweep_cells(sweep: sweeps.Sweep, cells: pl.DataFrame) -> None:
    st.subheader("Cells")
    options = sweeps.figure_columns(cells, sweep.axes)
    preferred = [figure for figure in sweeps.CELL_FIGURES if figure in options]
    shown = st.multiselect("figures", options, default=preferred, key=f"sweep_figures:{sweep.name}")
    st.dataframe(sweeps.cells_table(cells, sweep.axes, shown), hide_index=True)
    st.caption(
        "a row per cell: each figure's mean over seeds, its 95% interval (low, high) and the seeds it rests on "
        "(a seed where a figure never happened, such as time_to_systemic, is left out)"
    )
    with st.expander("every run (cells.parquet)"):
        st.dataframe(cells, hide_index=True)


st.title("Ecosystem cascade")
runs_dir = Path(st.sidebar.text_input("runs directory", "runs", key="runs_dir"))
launch_form(runs_dir)
try:
    listed, found = runs.list_runs(runs_dir), sweeps.list_sweeps(runs_dir)
except ResultsError as error:
    st.warning(str(error))
    st.stop()
with st.sidebar:
    live = any(run.status in runs.LIVE for run in listed) or any(sweep.live for sweep in found)
    st.fragment(progress, run_every=2 if live else None)(runs_dir)
if not listed and not found:
    st.info(
        f"no runs in {runs_dir} yet: launch one from the sidebar, or `cascade run --out {runs_dir}/NAME` "
        f"(`cascade sweep SPEC --out {runs_dir}/NAME` for a sweep)"
    )
    st.stop()

runs_section, sweeps_section = st.tabs(["Runs", "Sweeps"], key="section", on_change="rerun")
with runs_section:
    if runs_section.open:
        runs_view(listed, runs_dir)
with sweeps_section:
    if sweeps_section.open:
        sweep_view(found, runs_dir)
