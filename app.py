"""The dashboard: `streamlit run app.py [-- --runs DIR]`. It reads run, sweep and experiment directories and
never trains; a launched run is a separate `cascade run` process. This script is the layout and the caching;
ecosystem/dashboard/ holds the logic. The folder, section, run, view, cycle and metrics are in the URL's
query parameters, so that a link reopens the same view."""

from __future__ import annotations

import argparse
import contextlib
import datetime
import os
import sys
import urllib.parse
from collections.abc import Sequence
from pathlib import Path
from typing import TypeVar

import networkx as nx
import plotly.graph_objects as go
import polars as pl
import streamlit as st

import topologies
from ecosystem.analysis import clean_cost, defense_effect
from ecosystem.config import Config, ConfigError
from ecosystem.dashboard import columns, experiments, figures, launch, runs, sweeps
from ecosystem.results import Annotation, ResultsError, RunDirectory

st.set_page_config(page_title="Ecosystem cascade", layout="wide")

RUNS_VARIABLE = "CASCADE_RUNS"  # the folder to look at, when the command line names none
PLAY_SECONDS = 1.0  # between two cycles while playing
NONE = "(none)"

# Results are read again only when their file changed (its modification time and size key the cache).
read_metrics = st.cache_data(max_entries=32, show_spinner=False)(runs.read_metrics)
read_edges = st.cache_data(max_entries=32, show_spinner=False)(runs.read_edges)
read_transmission = st.cache_data(max_entries=32, show_spinner=False)(runs.read_transmission)
read_sweep_results = st.cache_data(max_entries=8, show_spinner=False)(sweeps.read_results)
# A sweep's intervals bootstrap each cell (and cycle): computed once per sweep and choice, not at every rerun.
metric_over_seeds = st.cache_data(max_entries=32, show_spinner=False)(sweeps.metric_over_seeds)
cells_table = st.cache_data(max_entries=32, show_spinner=False)(sweeps.cells_table)
figure_over_axis = st.cache_data(max_entries=32, show_spinner=False)(sweeps.figure_over_axis)
# A graph's node positions, cached by its nodes and weighted edges (streamlit cannot hash a graph itself).
layout = st.cache_data(
    max_entries=32,
    show_spinner=False,
    hash_funcs={nx.DiGraph: lambda graph: (tuple(graph), tuple(graph.edges.data("weight")))},
)(topologies.layout)


def default_folder() -> str:
    """The folder named by `streamlit run app.py -- --runs DIR`, else by $CASCADE_RUNS, else runs/."""
    parser = argparse.ArgumentParser(add_help=False)
    parser.add_argument("--runs")
    named, _ = parser.parse_known_args(sys.argv[1:])
    return named.runs or os.environ.get(RUNS_VARIABLE) or "runs"


def choose(
    label: str, options: Sequence[str], preferred: str, key: str, help: str | None = None, linked: bool = True
) -> str:
    """A selectbox starting at `preferred`; `linked`, its choice is a query parameter of the URL (`key`)."""
    index = options.index(preferred) if preferred in options else 0
    bind = "query-params" if linked else None
    return st.selectbox(label, options, index=index, key=key, help=help, bind=bind)


def choose_listed(label: str, options: Sequence[str], key: str) -> str:
    """A choice of one directory by name, always in the URL (`key`): a link names the run it shows even
    after newer runs come first, where a bound selectbox would leave its default out of the URL."""
    state = st.session_state
    if state.get(key) not in options:  # first shown, or hidden since (widget state goes): the link's, if any
        linked = st.query_params.get(key)
        state[key] = linked if linked in options else options[0]
    chosen = st.selectbox(label, options, key=key)
    st.query_params[key] = chosen
    return chosen


def choose_metric(label: str, options: Sequence[str], preferred: str, key: str) -> str:
    """A metric's selectbox, its tooltip the chosen metric's definition."""
    current = st.session_state.get(key, preferred)
    return choose(label, options, preferred, key, help=columns.definition(current))


def table(frame: pl.DataFrame, key: str) -> None:
    """A table with each known column's definition as its tooltip, and a CSV download of it."""
    config = {name: st.column_config.Column(help=text) for name in frame.columns if (text := columns.column_help(name))}
    st.dataframe(frame, hide_index=True, column_config=config)
    st.download_button("CSV", data=frame.write_csv, file_name=f"{key}.csv", mime="text/csv", key=f"csv:{key}")


def chart(figure: go.Figure, key: str) -> None:
    """A plotly chart whose camera button saves an SVG, and an HTML download of it (plotly.js included)."""
    config = {"toImageButtonOptions": {"format": "svg", "filename": key}}
    st.plotly_chart(figure, key=key, config=config)
    html = lambda: figure.to_html(include_plotlyjs=True, full_html=True)  # noqa: E731 (made on click only)
    st.download_button("HTML", data=html, file_name=f"{key}.html", mime="text/html", key=f"html:{key}")


def write_report(path: Path, key: str) -> None:
    """A button that writes the report (report/report.md and its PNGs) of a finished run or sweep."""
    if not st.button("write its report", key=key, help="cascade report: report/report.md and its PNG figures"):
        return
    from ecosystem.reporting import report  # matplotlib: loaded only when asked

    try:
        with st.spinner("writing the report"):
            written = report(path)
    except ResultsError as error:
        st.error(f"no report: {error}")
        return
    st.success(f"written: {written}")


GROUPS_HELP = (
    "A line per combination of the chosen axes; cells that differ only in other axes are pooled, their runs "
    "together. None chosen: a line per cell."
)
CHECKPOINT_HELP = (
    "The checkpoint world needs its files, as more settings: world.model_path=/models/my-llama, "
    "world.harmful_prompts=FILE.csv, world.borderline_prompts=FILE.csv, world.task_data=FILE.jsonl "
    "(README, Real-LLM mode); vllm needs vLLM installed."
)
BAND_NOTE = (
    "thin lines: each run (its mean over nodes); thick line: their mean; band: its 95% bootstrap interval "
    "(resampling the bases the runs were on, then the runs on each; none with one run), which stays within the "
    "values the runs took. n: the runs each line rests on, and their bases."
)


def launch_form(runs_dir: Path) -> None:
    default = Config()
    attack = default.attack[0]
    with st.sidebar.expander("Launch a run"), st.form("launch"):
        world = choose(
            "world", launch.WORLD_CHOICES, default.world.kind, key="launch_world", help=CHECKPOINT_HELP, linked=False
        )
        engine = choose(
            "generation engine", launch.ENGINE_CHOICES, default.generation.engine, key="launch_engine", linked=False
        )
        families = sorted(topologies.FAMILIES)
        topology = choose("topology", families, default.topology.name, key="launch_topology", linked=False)
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
    """The runs and sweeps in progress, with a bar and a stage each; the whole app reruns when a run
    writes a cycle or a sweep completes a run."""
    seen = []
    for run in runs.list_runs(runs_dir) if runs_dir.is_dir() else []:
        if run.status in runs.LIVE:
            cycle, total = runs.last_cycle(run.path), run.config.cycles if run.config else None
            st.progress(min((cycle or 0) / (total or 1), 1.0), text=f"{run.name}: {run.status}, {live_stage(run)}")
            seen.append((run.name, run.status, cycle))
    for sweep in sweeps.list_sweeps(runs_dir) if runs_dir.is_dir() else []:
        if sweep.live:
            sweep_progress(sweep)
            seen.append((sweep.name, sweep.status, sweep.complete))
    if st.session_state.setdefault("progress_seen", seen) != seen:
        st.session_state.progress_seen = seen
        st.rerun()


def live_stage(run: runs.Run) -> str:
    return "starting" if run.config is None else runs.stage(run)


def sweep_progress(sweep: sweeps.Sweep) -> None:
    text = f"{sweep.name}: sweep {sweep.status}, {sweep.complete}/{sweep.total} runs complete"
    st.progress(sweep.complete / (sweep.total or 1), text=text)


def selected_metrics(run: runs.Run) -> pl.DataFrame | None:
    """The run's metrics; a live run that has written none yet gives its stage instead of an error."""
    try:
        return read_metrics(runs.metrics_file(run.path))
    except ResultsError as error:
        if run.status in runs.LIVE:
            st.info(f"{run.name} is {live_stage(run)}: its views appear once cycle 0 is evaluated")
        else:
            st.error(str(error))
        return None


def cycle_slider(run: runs.Run, cycles: list[int]) -> int:
    """The cycle the network shows. It keeps its place: on the same run it stays where the user put it
    while a live run adds cycles (it follows them only when it was at the latest), and while ▶ play
    runs it moves a cycle at a time. A link's `cycle` places it when the page opens."""
    state = st.session_state
    kept = state.get("kept_cycle")  # (run, cycle, latest cycle) when last drawn: widget state goes when hidden
    if kept is None or kept[0] != run.name:
        linked = st.query_params.get("cycle") if kept is None else None
        wanted = int(linked) if linked is not None and linked.isdigit() and int(linked) in cycles else cycles[-1]
    else:
        wanted = state.get("cycle", kept[1])
        wanted = wanted if wanted in cycles else kept[1]
        if wanted == kept[2] and cycles[-1] > kept[2]:
            wanted = cycles[-1]
    if state.get("playing"):
        wanted = cycles[cycles.index(wanted) + 1] if wanted != cycles[-1] else wanted
        state.playing = wanted != cycles[-1]
    state.cycle = wanted
    cycle = st.select_slider("cycle", cycles, key="cycle") if len(cycles) > 1 else cycles[0]
    state.kept_cycle = (run.name, cycle, cycles[-1])
    st.query_params["cycle"] = str(cycle)
    return cycle


def play_button(cycles: list[int]) -> None:
    state = st.session_state
    if st.button("⏸ pause" if state.get("playing") else "▶ play", key="play", disabled=len(cycles) < 2):
        state.playing = not state.get("playing")
        if state.playing and state.get("cycle") == cycles[-1]:
            state.kept_cycle = (*state.kept_cycle[:1], cycles[0], state.kept_cycle[2])
            state.cycle = cycles[0]  # from the start again
        st.rerun()


def network_view(run: runs.Run, metrics: pl.DataFrame) -> None:
    try:
        graph = run.directory.read_graph()
    except ResultsError as error:
        st.error(str(error))
        return
    cycles = metrics["cycle"].unique().sort().to_list()
    playing = bool(st.session_state.get("playing"))
    st.fragment(network_panel, run_every=PLAY_SECONDS if playing else None)(run, metrics, graph, cycles)


def network_panel(run: runs.Run, metrics: pl.DataFrame, graph: nx.DiGraph, cycles: list[int]) -> None:
    was_playing = bool(st.session_state.get("playing"))
    left, middle, right = st.columns([2, 1, 6], vertical_alignment="bottom")
    with left:
        metric = choose_metric("colour nodes by", runs.metric_columns(metrics), "refusal_rate", key="network_metric")
    with right:
        cycle = cycle_slider(run, cycles)
    with middle:
        play_button(cycles)
    edges = selected_edges(run)
    positions = layout(graph)
    chart(figures.network_figure(graph, positions, metrics, metric, cycle, edges, transmission(run)), key="network")
    st.caption(network_caption(graph))
    if was_playing and not st.session_state.playing:
        st.rerun()  # the last cycle: stop the timer


def selected_edges(run: runs.Run) -> pl.DataFrame | None:
    """The run's edge flows, or None (with a note) for a run without a readable edges.parquet."""
    try:
        return read_edges(runs.edges_file(run.path))
    except ResultsError as error:
        st.caption(f"the edges show no flows: {error}")
        return None


def transmission(run: runs.Run) -> pl.DataFrame | None:
    """An attacked run's transmission tree (who infected whom), or None for a run without a twin."""
    try:
        return read_transmission(runs.transmission_file(run.path))
    except ResultsError:
        return None


def network_caption(graph: nx.DiGraph) -> str:
    flows = (
        "◆ attacked node · an edge's colour and width: the harmful pairs it carried at the cycle (dotted: cut by "
        "a quarantine); hover over its middle for its flows · ▶ play moves the cycle slider through every cycle"
    )
    if figures.is_small(graph):
        return f"{flows} · arrows point from sender to receiver"
    return (
        f"{flows} · with {graph.number_of_edges()} edges (over {figures.SMALL_GRAPH_EDGES}), edges are lines without "
        "arrowheads, each direction drawn to its right"
    )


def curves_view(config: Config, metrics: pl.DataFrame) -> None:
    metrics_shown = runs.metric_columns(metrics)
    metric = choose_metric("metric", metrics_shown, "refusal_rate", key="curves_metric")
    chart(figures.curves_figure(metrics, metric), key="curves")
    left, right = st.columns(2)
    with left:
        default = config.evaluation.drift_threshold
        threshold = st.slider("drift threshold", 0.01, 1.0, default, 0.01, key="threshold")
        chart(figures.drifted_figure(figures.drifted_share(metrics, threshold), threshold), key="drifted")
    with right:
        heat_metric = choose_metric("heatmap metric", metrics_shown, "refusal_rate", key="heatmap_metric")
        chart(figures.hop_heatmap(metrics, heat_metric), key="heatmap")
        st.caption("the colours are the network view's: a rate on [0, 1], anything else on its range over the run")


def defense_view(run: runs.Run, metrics: pl.DataFrame) -> None:
    """A defended run against its control run: protection (refusal kept, infection prevented) and cost, per
    node and on average; with twins, the same two without the attack: the defense's cost without any attack."""
    control = runs.control_of(run)
    if control is None:
        defended = run.config is not None and run.config.defense
        st.info("its control run has not started yet" if defended else "no defense in this run: nothing to compare")
        return
    try:
        without = read_metrics(runs.metrics_file(control.path))
    except ResultsError as error:
        st.info(f"the control run has no metrics yet: {error}")
        return
    names = list(figures.ARMS)
    arms = {names[0]: metrics, names[1]: without} | twin_arms(run, control, names[2:])
    cycle = runs.common_cycle(arms)
    effect = defense_effect(metrics.filter(pl.col("cycle") <= cycle), without.filter(pl.col("cycle") <= cycle))
    if len(arms) == len(names):
        effect |= clean_cost(*(arms[name].filter(pl.col("cycle") <= cycle) for name in names[2:]))
    shown = ["refusal_kept", "protection", "helpfulness_lost", "over_refusal_gained", "clean_helpfulness_lost"]
    for place, key in zip(st.columns(len(shown) + 1), shown, strict=False):
        value = effect.get(key)
        place.metric(key.replace("_", " "), "-" if value is None else f"{value:+.3f}", help=columns.definition(key))
    seconds = runs.defense_cost(run.manifest)
    st.caption(
        f"at cycle {cycle}, the last every arm reached · one run, one seed: no interval · the control run took "
        + ("-" if seconds is None else f"{seconds[0]:.0f} s of the run's {seconds[1]:.0f} s")
    )
    left, right = st.columns([1, 3])
    with left:
        metric = choose_metric("metric", runs.metric_columns(metrics), "refusal_rate", key="defense_metric")
        nodes = sorted(metrics["node"].unique().to_list())
        unattacked = sorted(metrics.filter(~pl.col("attacked"))["node"].unique().to_list())
        groups = {"unattacked nodes (mean)": unattacked, "all nodes (mean)": nodes}
        groups |= {f"node {node}": [node] for node in nodes}
        label = choose("nodes", list(groups), "unattacked nodes (mean)", key="defense_nodes")
    with right:
        chart(figures.defense_figure(arms, metric, groups[label] or nodes, label), key="defense")


def twin_arms(run: runs.Run, control: RunDirectory, names: list[str]) -> dict[str, pl.DataFrame]:
    """The clean arms of a defended study (the run's twin and its control's), those readable yet."""
    arms = {}
    for name, directory in zip(names, (RunDirectory(run.path).twin, control.twin), strict=True):
        with contextlib.suppress(ResultsError):
            arms[name] = read_metrics(runs.metrics_file(directory.path))
    return arms


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
    differences = runs.config_differences({name: by_name[name].config for name in frames})
    left, right = st.columns(2)
    with left:
        metric = choose_metric(
            "metric", runs.metric_columns(next(iter(frames.values()))), "refusal_rate", "compare_metric"
        )
    with right:
        keys = [NONE, *differences["setting"]]
        key = choose("group runs by", keys, NONE, key="compare_group", help="a band per value, over its runs")
    if key == NONE:
        chart(figures.compare_figure(frames, metric), key="compare")
    else:
        values = dict(zip(frames, differences.row(by_predicate=pl.col("setting") == key)[1:], strict=True))
        bases = {name: runs.base_of(by_name[name]) for name in frames}
        curves, per_run = runs.over_runs(frames, metric, key, values, bases)
        chart(figures.interval_figure(curves, [key], metric, per_run), key="compare")
        st.caption(BAND_NOTE)
    st.subheader("Configuration differences")
    if differences.is_empty():
        st.caption("the configurations are identical")
    else:
        table(differences, key="differences")
    st.subheader("Final figures")
    finals = runs.final_figures(frames)
    table(finals, key="final_figures")
    if finals["last cycle written"].n_unique() > 1:
        st.warning(
            f"the runs end at different cycles ({', '.join(map(str, finals['last cycle written'].unique().sort()))}): "
            f"their figures are at cycle {runs.common_cycle(frames)}, the last all of them reached"
        )


Listed = TypeVar("Listed", runs.Run, sweeps.Sweep)


def pick(listed: list[Listed], label: str) -> Listed:
    """A choice of one by name (kept in the URL), and its status and note."""
    by_name = {item.name: item for item in listed}
    chosen = by_name[choose_listed(label, list(by_name), key=label)]
    st.caption(f"{chosen.status} · {chosen.path}")
    if chosen.note:
        st.warning(chosen.note)
    return chosen


def run_table(frame: pl.DataFrame) -> None:
    """The runs table to work in: filter by any column, sort, group by a setting or figure, choose the columns."""
    filters, order, grouping = st.columns(3)
    with filters:
        kept = {}
        for column in st.multiselect("filter by", frame.columns, key="filter_by"):
            values = frame[column].drop_nulls()
            if frame.schema[column].is_numeric() and values.n_unique() > 1:
                low, high = float(values.min()), float(values.max())
                kept[column] = st.slider(column, low, high, (low, high), key=f"filter:{column}")
            elif not frame.schema[column].is_numeric():
                options = sorted(values.cast(pl.String).unique().to_list())
                kept[column] = st.multiselect(column, options, default=options, key=f"filter:{column}")
    with order:
        by = st.selectbox("sort by", [NONE, *frame.columns], key="sort_by", help=f"{NONE}: newest first")
        descending = st.toggle("descending", key="sort_descending")
    with grouping:
        key = st.selectbox("group by", [NONE, *frame.columns], key="group_by", help="a row per value, with means")
    shown = runs.filter_runs(frame, kept)
    if by != NONE:
        shown = runs.sort_runs(shown, by, descending)
    defaults = default_columns(frame)
    chosen = st.multiselect("columns", frame.columns, default=defaults, key="table_columns")
    st.caption(f"{shown.height} of {frame.height} runs")
    table(shown.select(list(dict.fromkeys(["run", *chosen]))), key="runs")
    if key != NONE:
        numbers = [column for column in runs.numeric_columns(shown) if column in chosen and column != key]
        st.subheader(f"Runs grouped by {key}")
        table(runs.group_runs(shown, key, numbers), key="groups")


def default_columns(frame: pl.DataFrame) -> list[str]:
    """What the runs table shows at first: its description, the main figures and the settings that differ."""
    figures_shown = ("final_mean_refusal", "final_unattacked_refusal", "refusal_kept", "helpfulness_lost")
    described = [name for name in (*runs.DESCRIBED, *figures_shown) if name in frame.columns]
    differing = [
        name
        for name in frame.columns[frame.columns.index("note") + 1 :]
        if "." in name and name not in described and frame[name].n_unique() > 1
    ]
    return [*described, *differing]


def runs_view(runs_dir: Path) -> None:
    with_sweeps = st.toggle("with the runs of sweeps", value=True, key="with_sweeps")
    listed = runs.list_runs(runs_dir, with_sweeps)
    if not listed:
        st.info(f"no runs in {runs_dir} yet: launch one from the sidebar")
        return
    run_table(runs.runs_table(listed))
    run = pick(listed, "run")
    by_name = {item.name: item for item in listed}
    if run.status.startswith("stopped"):
        st.code(launch.log_tail(run.path), language=None)
    if run.status in runs.LIVE:
        st.info(f"{run.name} is {live_stage(run)}")
    elif run.status == "complete":
        write_report(run.path, key="run_report")
        annotate(run)
    if run.config is not None:  # else starting, or unreadable: there is nothing to show yet
        run_views(by_name, run)


def annotate(run: runs.Run) -> None:
    """Tags and a note for a finished run, saved in its annotation.json: the runs table shows, filters and
    groups them like any column. The only file the dashboard writes into a run, and only on "save"."""
    with st.expander("tags and note"):
        said = runs.annotation(run.directory)
        tags = st.text_input("tags (comma-separated)", said["tags"], key=f"tags:{run.name}")
        note = st.text_area("note", said["notes"], key=f"note:{run.name}")
        if st.button("save", key=f"annotate:{run.name}"):
            chosen = [tag.strip() for tag in tags.split(",") if tag.strip()]
            try:
                run.directory.write_annotation(Annotation(tags=chosen, note=note))
            except OSError as error:
                st.error(f"not saved: {error.strerror}")
                return
            st.rerun()


def run_views(by_name: dict[str, runs.Run], run: runs.Run) -> None:
    if run.config is not None and run.config.world.kind == "checkpoint":  # a real model: say what the judge sees
        st.caption(f"`harmful_rate` in this run: {run.config.world.harmful_means}")
    network, curves, defense, compare = st.tabs(
        ["Network", "Curves", "Defense", "Compare"], key="view", on_change="rerun", bind="query-params"
    )
    with network:
        if network.open and (metrics := selected_metrics(run)) is not None:
            network_view(run, metrics)
    with curves:
        if curves.open and (metrics := selected_metrics(run)) is not None:
            curves_view(run.config, metrics)
    with defense:
        if defense.open and (metrics := selected_metrics(run)) is not None:
            defense_view(run, metrics)
    with compare:
        if compare.open:
            compare_view(by_name, run)


def sweep_view(runs_dir: Path) -> None:
    found = sweeps.list_sweeps(runs_dir)
    if not found:
        st.info(f"no sweeps in {runs_dir}: `cascade sweep SPEC --out {runs_dir}/NAME` makes one")
        return
    table(sweeps.sweeps_table(found), key="sweeps")
    sweep = pick(found, "sweep")
    if sweep.status == runs.UNREADABLE:
        return
    if sweep.unfinished:
        sweep_progress(sweep)
    try:
        results = read_sweep_results(sweeps.results_files(sweep.path))
    except ResultsError as error:
        st.info(str(error))
        return
    write_report(sweep.path, key="sweep_report")
    sweep_curves(sweep, results.metrics, results.cells)
    sweep_cells(sweep, results.cells)


def sweep_curves(sweep: sweeps.Sweep, metrics: pl.DataFrame, cells: pl.DataFrame) -> None:
    left, right = st.columns([1, 3])
    with left:
        options = sweeps.sweep_metric_columns(metrics, sweep.axes)
        metric = choose_metric("metric", options, "refusal_rate", key="sweep_metric")
        groups = st.multiselect(
            "group cells by", sweep.axes, default=sweep.axes, key=f"sweep_groups:{sweep.name}", help=GROUPS_HELP
        )
    keys = groups or ["cell"]
    curves = metric_over_seeds(metrics, cells, metric, keys)
    with right:
        chart(
            figures.interval_figure(curves, keys, metric, sweeps.metric_per_run(metrics, metric, keys)), "sweep_curves"
        )
        st.caption(BAND_NOTE)


def sweep_cells(sweep: sweeps.Sweep, cells: pl.DataFrame) -> None:
    st.subheader("Cells")
    options = sweeps.figure_columns(cells, sweep.axes)
    preferred = [figure for figure in sweeps.CELL_FIGURES if figure in options]
    shown = st.multiselect("figures", options, default=preferred, key=f"sweep_figures:{sweep.name}")
    table(cells_table(cells, sweep.axes, shown), key="cells")
    st.caption(
        "a row per cell: each figure's mean over seeds, its 95% bootstrap interval (low, high: resampling the "
        "bases, then the seeds on each) and the seeds and bases it rests on; a seed where a figure never happened "
        "(such as time_to_systemic) is left out, and `_censored` counts them"
    )
    figure_against_axis(cells, sweep.axes, options, key=f"sweep_axis:{sweep.name}")
    with st.expander("every run (cells.parquet)"):
        table(cells, key="runs_of_sweep")


def figure_against_axis(cells: pl.DataFrame, axes: list[str], options: list[str], key: str) -> None:
    """A figure against the values of one axis (dose-response), a line per combination of the others."""
    if not axes or not options:
        return
    st.subheader("A figure against an axis")
    left, middle, right = st.columns(3)
    preferred = next((figure for figure in sweeps.CELL_FIGURES if figure in options), options[0])
    with left:
        figure = choose_metric("figure", options, preferred, key=f"{key}:figure")
    axis = middle.selectbox("against", axes, key=f"{key}:axis")
    others = [other for other in axes if other != axis]
    groups = right.multiselect("a line per", others, default=others, key=f"{key}:groups")
    summary = figure_over_axis(cells, axis, figure, groups)
    chart(figures.figure_against_axis(cells, summary, axis, figure, groups), key=f"{key}:chart")


def experiments_view(folder: Path) -> None:
    found = experiments.list_experiments(folder)
    if not found:
        st.info(f"no experiments in {folder}: `cascade experiment NAME --out {folder}/NAME` makes one")
        return
    table(experiments.experiments_table(found), key="experiments")
    by_name = {experiment.name: experiment for experiment in found}
    experiment = by_name[choose_listed("experiment", list(by_name), key="experiment")]
    st.caption(str(experiment.path))
    if experiment.note:
        st.warning(experiment.note)
        return
    verdict = experiment.verdict
    st.subheader(verdict.get("title", experiment.name))
    st.markdown(f"> {verdict.get('claim', '')}\n>\n> — {verdict.get('source', '')}")
    quick = " · quick (smaller settings than the full experiment)" if verdict.get("quick") else ""
    st.caption(f"computed {verdict.get('created', '?')} · seeds {verdict.get('seeds')}{quick}")
    table(experiments.findings_table(experiment), key="findings")
    for finding in experiment.findings:
        with st.expander(f"{finding.get('name')}: {finding.get('verdict')}", expanded=True):
            st.markdown(
                f"*Claim:* {finding.get('claim', '')}\n\n*Rule (written before the data):* {finding.get('rule', '')}"
            )
            st.markdown(f"*Verdict:* **{finding.get('verdict')}**: {finding.get('reason', '')}")
            if finding.get("figures"):
                chart(figures.finding_figure(finding["figures"]), key=f"finding:{finding.get('name')}")
                table(experiments.figures_table(finding), key=f"figures:{finding.get('name')}")
    experiment_sweeps(experiment)
    experiment_cells(experiment)
    parts = experiments.report_parts(experiment)
    if parts:
        with st.expander("the report (report/report.md)"):
            for kind, part in parts:
                if kind == "image":
                    st.image(str(part))
                else:
                    st.markdown(part)


def experiment_sweeps(experiment: experiments.Experiment) -> None:
    """Links that open the experiment's sweeps, and their runs, in this dashboard."""
    found = experiments.experiment_sweeps(experiment)
    if not found:
        st.caption("its sweeps' run directories are not here (committed results keep cells.parquet only)")
        return
    folder = experiment.path / experiments.SWEEPS
    links = []
    for sweep in found:
        sweep_link = urllib.parse.urlencode({"runs_dir": str(folder), "section": "Sweeps", "sweep": sweep})
        runs_link = urllib.parse.urlencode({"runs_dir": str(folder), "section": "Runs"})
        links.append(f"- `{sweep}`: [the sweep](?{sweep_link}) · [its runs](?{runs_link})")
    st.markdown("**Its sweeps**\n\n" + "\n".join(links))


def experiment_cells(experiment: experiments.Experiment) -> None:
    cells = experiments.read_cells(experiment)
    if cells is None or "sweep" not in cells.columns:
        return
    with st.expander("every run's figures (cells.parquet)"):
        parts = cells["sweep"].unique(maintain_order=True).to_list()
        part = st.selectbox("sweep", parts, key=f"cells_sweep:{experiment.name}")
        rows = cells.filter(pl.col("sweep") == part)
        axes = experiments.cell_axes(cells, part)
        figure_against_axis(rows, axes, sweeps.figure_columns(rows, axes), key=f"experiment_axis:{experiment.name}")
        table(rows, key=f"cells:{experiment.name}")


st.title("Ecosystem cascade")
folder = st.sidebar.text_input(
    "runs directory",
    default_folder(),
    key="runs_dir",
    bind="query-params",
    help=f"also `streamlit run app.py -- --runs DIR`, or ${RUNS_VARIABLE}",
)
runs_dir = Path(folder)
launch_form(runs_dir)
try:
    listed = runs.list_runs(runs_dir)
    found = sweeps.list_sweeps(runs_dir)
    verdicts = experiments.list_experiments(runs_dir)
except ResultsError as error:
    st.warning(str(error))
    st.stop()
with st.sidebar:
    live = any(run.status in runs.LIVE for run in listed) or any(sweep.live for sweep in found)
    st.fragment(progress, run_every=2 if live else None)(runs_dir)
if not listed and not found and not verdicts:
    st.info(
        f"no runs in {runs_dir} yet: launch one from the sidebar, or `cascade run --out {runs_dir}/NAME` "
        f"(`cascade sweep SPEC --out {runs_dir}/NAME` for a sweep)"
    )
    st.stop()

if "section" not in st.session_state and "section" not in st.query_params and not listed:
    st.session_state.section = "Sweeps" if found else "Experiments"  # a folder of sweeps or experiments only
sections = st.tabs(["Runs", "Sweeps", "Experiments"], key="section", on_change="rerun", bind="query-params")
for section, view in zip(sections, (runs_view, sweep_view, experiments_view), strict=True):
    with section:
        if section.open:
            view(runs_dir)
