"""The dashboard: `streamlit run app.py`. It reads run directories and never trains; a launched run is a
separate `cascade run` process. This script is the layout and the caching; ecosystem/dashboard/ holds
the logic."""

from __future__ import annotations

import datetime
from pathlib import Path

import polars as pl
import streamlit as st

import topologies
from ecosystem.config import Config, ConfigError
from ecosystem.dashboard import figures, launch, runs
from ecosystem.results import ResultsError

st.set_page_config(page_title="Ecosystem cascade", layout="wide")

# Metrics are read again only when the file changed (its modification time and size key the cache).
read_metrics = st.cache_data(max_entries=32, show_spinner=False)(runs.read_metrics)
layout = st.cache_data(max_entries=32, show_spinner=False)(figures.layout)


def choose(label: str, options: list[str], preferred: str, key: str) -> str:
    index = options.index(preferred) if preferred in options else 0
    return st.selectbox(label, options, index=index, key=key)


def launch_form(runs_dir: Path) -> None:
    default = Config()
    attack = default.attack[0]
    with st.sidebar.expander("Launch a run"), st.form("launch"):
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
        more = st.text_area("more settings", help="key=value lines, as `cascade run --set`", key="launch_more")
        name = st.text_input("run name", help="default: launch-DATE-TIME", key="launch_name")
        submitted = st.form_submit_button("Launch")
    if not submitted:
        return
    name = name.strip() or datetime.datetime.now().strftime("launch-%Y%m%d-%H%M%S")
    overrides = launch.launch_overrides(topology, nodes, cycles, targets, dose, attack_cycles, defense, more)
    try:
        process = launch.launch(runs_dir, name, overrides)
    except (ConfigError, launch.LaunchError) as error:
        st.sidebar.error(f"not launched: {error}")
        return
    st.sidebar.success(f"launched {name} (process {process.pid})")
    st.session_state.run = name  # select it below


def progress(runs_dir: Path) -> None:
    """The runs in progress, with a bar each; the whole app reruns when one of them writes a cycle."""
    seen = []
    for run in runs.list_runs(runs_dir) if runs_dir.is_dir() else []:
        if run.status in runs.LIVE:
            cycle, total = runs.last_cycle(run.path), run.config.cycles if run.config else None
            counted = f", cycle {cycle or 0}/{total}" if total else ""
            st.progress(min((cycle or 0) / (total or 1), 1.0), text=f"{run.name}: {run.status}{counted}")
            seen.append((run.name, run.status, cycle))
    if st.session_state.setdefault("progress_seen", seen) != seen:
        st.session_state.progress_seen = seen
        st.rerun()


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
    positions = layout(tuple(graph), tuple(graph.edges()))
    st.plotly_chart(figures.network_figure(graph, positions, metrics, metric, cycle), key="network")
    st.caption("◆ attacked node · edge width: weight · ▶ play animates every cycle")


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


st.title("Ecosystem cascade")
runs_dir = Path(st.sidebar.text_input("runs directory", "runs", key="runs_dir"))
launch_form(runs_dir)
try:
    listed = runs.list_runs(runs_dir)
except ResultsError as error:
    st.warning(str(error))
    st.stop()
with st.sidebar:
    live = any(run.status in runs.LIVE for run in listed)
    st.fragment(progress, run_every=2 if live else None)(runs_dir)
if not listed:
    st.info(f"no runs in {runs_dir} yet: launch one from the sidebar, or `cascade run --out {runs_dir}/NAME`")
    st.stop()

st.dataframe(runs.runs_table(listed), hide_index=True)
by_name = {run.name: run for run in listed}
run = by_name[st.selectbox("run", list(by_name), key="run")]
st.caption(f"{run.status} · {run.path}")
if run.note:
    st.warning(run.note)
if run.status.startswith("stopped"):
    st.code(launch.log_tail(run.path), language=None)
if run.config is None:
    st.stop()  # starting, or unreadable: there is nothing to show yet

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
