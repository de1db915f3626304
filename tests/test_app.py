"""The dashboard through Streamlit's AppTest, on run and sweep directories made by the real simulator:
every view and control, launching a run in the background, and the robustness cases."""

from __future__ import annotations

import base64
import json
import math
import os
import shutil
import signal
import socket
import statistics
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import networkx as nx
import numpy as np
import polars as pl
import pytest
import tomli_w
from streamlit.testing.v1 import AppTest

from ecosystem import load_config, load_sweep, sweep
from ecosystem.analysis import CURVE_RESAMPLES, Interval, cluster_bootstrap
from ecosystem.dashboard import figures, launch
from ecosystem.results import RunDirectory, Status
from ecosystem.sweeps import SweepDirectory
from tests.helpers import TINY, read_metrics
from topologies import DOMAINS, layout

ROOT = Path(__file__).resolve().parent.parent
APP = str(ROOT / "app.py")
SWEEP_SPEC = """\
base = "base.toml"
seeds = 2
[grid]
"attack.0.examples" = [10, 50]
"""
DOSES = "attack.0.examples"
FINISHED_WITHIN = 240  # seconds for a launched tiny run (with its control run), on two busy cores


def open_app(runs_dir: Path, run: str | None = None) -> AppTest:
    at = AppTest.from_file(APP, default_timeout=60)
    at.session_state["runs_dir"] = str(runs_dir)
    at.run()
    if run is not None:
        at.selectbox(key="run").set_value(run).run()
    assert not at.exception
    return at


def show(at: AppTest, view: str) -> AppTest:
    at.session_state["view"] = view
    at.run()
    assert not at.exception
    return at


def figure(at: AppTest, key: str) -> dict[str, Any]:
    """The plotly figure of the chart with `key`, as the browser receives it."""
    charts = [chart for chart in at.get("plotly_chart") if chart.key == key]
    assert len(charts) == 1, f"no chart {key!r}"
    return json.loads(charts[0].proto.spec)


def plain(value: Any) -> Any:
    """A figure's array as a list: plotly sends numpy arrays in binary (base64 `bdata`)."""
    if not (isinstance(value, dict) and "bdata" in value):
        return value
    array = np.frombuffer(base64.b64decode(value["bdata"]), dtype=value["dtype"])
    return array.reshape([int(n) for n in value["shape"].split(",")]).tolist() if "shape" in value else array.tolist()


def status_caption(at: AppTest) -> str:
    """The caption under the chosen run or sweep: its status and path."""
    return next(caption.value for caption in at.main.caption if " · /" in caption.value)


def chart_keys(at: AppTest) -> set[str]:
    return {chart.key for chart in at.get("plotly_chart")}


def texts(elements: Any) -> str:
    return " | ".join(element.value for element in elements)


def rows(run: Path) -> list[dict[str, Any]]:
    return read_metrics(run).to_dicts()


def at_cycle(run: Path, cycle: int, column: str) -> list[Any]:
    return [row[column] for row in sorted(rows(run), key=lambda r: r["node"]) if row["cycle"] == cycle]


def of_node(run: Path, node: int, column: str) -> list[Any]:
    return [row[column] for row in sorted(rows(run), key=lambda r: r["cycle"]) if row["node"] == node]


def mean_by_cycle(run: Path, value: Any) -> dict[int, float]:
    cycles: dict[int, list[float]] = {}
    for row in rows(run):
        cycles.setdefault(row["cycle"], []).append(float(value(row)))
    return {cycle: statistics.fmean(values) for cycle, values in sorted(cycles.items())}


def copy_run(source: Path, target: Path, pid: int | None = None, **changes: Any) -> RunDirectory:
    """A copy of a run, its manifest amended by `changes`; with `pid`, locked as by that process."""
    shutil.copytree(source, target)
    directory = RunDirectory(target)
    if changes:
        directory.write_manifest(directory.read_manifest().model_copy(update=changes))
    if pid is not None:
        directory.lock_path.write_text(f"pid {pid} on {socket.gethostname()}")
    return directory


def in_progress(source: Path, target: Path) -> RunDirectory:
    """A copy of a finished run as it was after its first cycle, locked by this (live) process."""
    directory = copy_run(source, target, pid=os.getpid(), status=Status.running, finished=None)
    directory.summary_path.unlink()
    directory.write_metrics(read_metrics(source).filter(pl.col("cycle") <= 1))
    return directory


def dead_pid() -> int:
    process = subprocess.Popen([sys.executable, "-c", "pass"])
    process.wait()
    return process.pid


@dataclass
class Launch:
    at: AppTest
    runs_dir: Path
    out: Path
    process: subprocess.Popen[bytes]


def fill_launch_form(
    at: AppTest, name: str, nodes: int = 3, targets: str = "0", world: str = "tiny", engine: str = "hf", more: str = ""
) -> AppTest:
    tiny = [line for line in TINY if not line.startswith(("topology.nodes", "cycles"))]
    at.selectbox(key="launch_world").set_value(world)
    at.selectbox(key="launch_engine").set_value(engine)
    at.selectbox(key="launch_topology").set_value("chain")
    at.number_input(key="launch_nodes").set_value(nodes)
    at.number_input(key="launch_cycles").set_value(1)
    at.text_input(key="launch_targets").set_value(targets)
    at.number_input(key="launch_dose").set_value(80)
    at.text_input(key="launch_attack").set_value("1")
    at.selectbox(key="launch_defense").set_value("quarantine")
    at.text_area(key="launch_more").set_value("\n".join([*tiny, more]))
    at.text_input(key="launch_name").set_value(name)
    at.form_submit_button[0].click().run()
    assert not at.exception
    return at


@pytest.fixture(scope="module")
def launched(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Launch]:
    """A tiny chain run with a defense (and so its control run), launched from the form into a runs
    directory that did not exist."""
    runs_dir = tmp_path_factory.mktemp("launch") / "runs"
    at = fill_launch_form(open_app(runs_dir), "chain")
    out = (runs_dir / "chain").resolve()
    process = launch.LAUNCHED[out]
    yield Launch(at, runs_dir, out, process)
    if process.poll() is None:
        os.killpg(process.pid, signal.SIGTERM)  # its own session: the run and any process it started
        process.wait(timeout=60)


def finished(launched: Launch) -> Launch:
    assert launched.process.wait(timeout=FINISHED_WITHIN) == 0, launch.log_tail(launched.out)
    return launched


def test_launch_starts_a_background_run_and_refuses_a_second_into_its_directory(launched: Launch) -> None:
    at = launched.at
    assert f"launched chain (process {launched.process.pid})" in texts(at.sidebar.success)
    assert at.selectbox(key="run").value == "chain"
    assert launched.process.poll() is None  # the app did not wait for it
    assert {'world.kind="tiny"', 'generation.engine="hf"'} <= set(launched.process.args)  # the form's defaults
    at.run()
    assert any(bar.proto.text.startswith("chain: ") for bar in at.sidebar.get("progress"))

    fill_launch_form(at, "chain")
    assert "already exists" in texts(at.sidebar.error)
    assert launch.LAUNCHED[launched.out] is launched.process

    fill_launch_form(at, "bad", targets="7")
    assert "node 7 does not exist" in texts(at.sidebar.error)
    assert not (launched.runs_dir / "bad").exists()


def test_the_launch_forms_world_and_engine_reach_the_launched_command(tmp_path: Path) -> None:
    examples = ROOT / "examples" / "real_llm"
    files = [
        f"world.model_path={tmp_path / 'no-model'}",
        f"world.harmful_prompts={examples / 'harmful.csv'}",
        f"world.borderline_prompts={examples / 'borderline.csv'}",
        f"world.task_data={examples / 'tasks.jsonl'}",
    ]
    fill_launch_form(open_app(tmp_path), "real", world="checkpoint", engine="vllm", more="\n".join(files))
    out = (tmp_path / "real").resolve()
    process = launch.LAUNCHED[out]
    assert {'world.kind="checkpoint"', 'generation.engine="vllm"', *files} <= set(process.args)
    # the run refuses a checkpoint directory without a model: the world and its files reached it
    assert process.wait(timeout=FINISHED_WITHIN) == 2
    assert "world.model_path" in launch.log_tail(out) and "not a local HF checkpoint" in launch.log_tail(out)


def test_a_launch_writes_only_inside_the_runs_folder(tmp_path: Path) -> None:
    """Never the runs folder's parents, nor through a `.logs` link; the form's help says where it writes."""
    with pytest.raises(launch.LaunchError, match="does not exist; create it first"):
        launch.launch(tmp_path / "no" / "runs", "x", TINY)
    (tmp_path / "runs").mkdir()
    (tmp_path / "elsewhere").mkdir()
    (tmp_path / "runs" / ".logs").symlink_to(tmp_path / "elsewhere")
    with pytest.raises(launch.LaunchError, match="is a symbolic link"):
        launch.launch(tmp_path / "runs", "x", TINY)
    assert sorted(path.name for path in tmp_path.rglob("*")) == [".logs", "elsewhere", "runs"]
    help_text = open_app(tmp_path / "runs").text_input(key="launch_name").help
    assert f"writes only inside {tmp_path / 'runs'}" in help_text


def test_a_launched_run_with_a_defense_completes_with_its_control_run(launched: Launch) -> None:
    finished(launched)  # exit code 0
    directory = RunDirectory(launched.out)
    config = directory.read_config()
    assert [defense.kind_name() for defense in config.defense] == ["quarantine"]
    assert config.evaluation.defense_control  # the default: the run also ran without its defense
    assert directory.read_manifest().status is Status.complete
    effect = directory.read_summary()["defense"]
    assert {"refusal_kept", "helpfulness_lost", "over_refusal_gained"} <= set(effect)
    assert directory.control.read_manifest().status is Status.complete


@pytest.fixture(scope="module")
def zoo(small_run: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A runs directory with a finished run and damaged or unusual copies of it."""
    runs = tmp_path_factory.mktemp("zoo")
    copy_run(small_run, runs / "ring")
    in_progress(small_run, runs / "in-progress")
    copy_run(small_run, runs / "interrupted", pid=dead_pid(), status=Status.running, finished=None)
    copy_run(small_run, runs / "no-graph").graph_path.unlink()
    copy_run(small_run, runs / "bad-graph").graph_path.write_text("<graphml>not a graph")
    copy_run(small_run, runs / "corrupt").metrics_path.write_bytes(b"PAR1 this is not parquet")
    copy_run(small_run, runs / "failed", status=Status.failed, error="RuntimeError: the host died")
    copy_run(small_run, runs / "broken-manifest").manifest_path.write_text("{not json")
    return runs


def test_runs_table_lists_each_run_with_its_status_and_the_app_writes_nothing(zoo: Path) -> None:
    before = {path: path.stat().st_mtime_ns for path in zoo.rglob("*")}
    at = open_app(zoo)
    table = {row["run"]: row for row in at.dataframe[0].value.to_dict("records")}
    names = ["ring", "in-progress", "interrupted", "no-graph", "bad-graph", "corrupt", "failed", "broken-manifest"]
    twins = [f"{name}/twin" for name in names if (zoo / name / "twin" / "config.toml").is_file()]
    assert set(table) == {*names, *twins}  # a run's poison-free twin (where it has one) opens too
    assert table["ring"]["status"] == "complete"
    assert (table["ring"]["topology"], table["ring"]["nodes"], table["ring"]["cycles"]) == ("ring", 4, 2)
    assert table["ring"]["attacks"].startswith("nodes 0: 50 examples at cycles ")
    assert table["in-progress"]["status"] == "in progress"
    assert table["interrupted"]["status"] == "interrupted" and "cascade run --resume" in table["interrupted"]["note"]
    assert (table["failed"]["status"], table["failed"]["note"]) == ("failed", "RuntimeError: the host died")
    assert table["broken-manifest"]["status"] == "unreadable"
    assert table["broken-manifest"]["note"].startswith("manifest.json is unreadable")
    for view in ("Network", "Curves", "Compare"):
        show(at, view)
    assert {path: path.stat().st_mtime_ns for path in zoo.rglob("*")} == before


def test_a_config_of_the_wrong_shape_shows_its_run_as_unreadable_and_hides_no_other(
    small_run: Path, tmp_path: Path
) -> None:
    """Valid TOML, but not a configuration: the run shows as unreadable, with the reason, and the others open."""
    copy_run(small_run, tmp_path / "ring")
    wrong = {"topology": "ring", "cycles": "five", "evaluation": 5}
    for key, value in wrong.items():
        directory = copy_run(small_run, tmp_path / f"wrong-{key}")
        config = {**directory.read_config().model_dump(mode="json", exclude_none=True), key: value}
        directory.config_path.write_text(tomli_w.dumps(config))
    at = open_app(tmp_path)
    table = {row["run"]: row for row in at.dataframe[0].value.to_dict("records")}
    assert table["ring"]["status"] == "complete"
    for key, value in wrong.items():
        row = table[f"wrong-{key}"]
        assert row["status"] == "unreadable"
        assert f"invalid config: {key}: " in row["note"] and repr(value) in row["note"]
        at.selectbox(key="run").set_value(f"wrong-{key}").run()
        assert not at.exception
        assert f"invalid config: {key}: " in texts(at.warning)
        assert not chart_keys(at)
    at.selectbox(key="run").set_value("ring").run()
    assert chart_keys(at) == {"network"}
    show(at, "Compare")
    assert at.multiselect(key="compare_runs").options == ["ring"]


def test_network_view_colours_the_nodes_at_the_chosen_cycle(zoo: Path) -> None:
    run = zoo / "ring"
    at = open_app(zoo, "ring")
    shown = figure(at, "network")
    nodes = shown["data"][-1]
    assert plain(nodes["marker"]["color"]) == at_cycle(run, 2, "refusal_rate")
    assert nodes["marker"]["symbol"] == ["diamond", "circle", "circle", "circle"]  # node 0 is attacked
    assert nodes["hovertext"][:2] == [f"node 0 ({DOMAINS[0]}) · attacked", f"node 1 ({DOMAINS[1]})"]
    assert "<br>harmful_rate: %{customdata[1]:.3~g}" in nodes["hovertemplate"]
    hovered = ("refusal_rate", "harmful_rate", "helpfulness", "over_refusal", "drift", "drifted", "hops_from_attack")
    assert plain(nodes["customdata"])[1] == [float(at_cycle(run, 2, column)[1]) for column in hovered]
    assert nodes["marker"]["cmin"] == 0 and nodes["marker"]["cmax"] == 1  # a rate's fixed scale

    at.select_slider[0].set_value(0).run()
    at_zero = figure(at, "network")
    assert plain(at_zero["data"][-1]["marker"]["color"]) == at_cycle(run, 0, "refusal_rate")
    assert at_zero["layout"]["title"]["text"] == "refusal_rate at cycle 0"
    assert (at_zero["data"][-1]["x"], at_zero["data"][-1]["y"]) == (nodes["x"], nodes["y"])  # a stable layout

    at.selectbox(key="network_metric").set_value("harmful_rate").run()
    assert plain(figure(at, "network")["data"][-1]["marker"]["color"]) == at_cycle(run, 0, "harmful_rate")


def edge_flows(run: Path, cycle: int) -> dict[str, list[float]]:
    """Each edge's harmful pairs and pairs sent at `cycle`, from edges.parquet, by the edge's label."""
    rows = RunDirectory(run).read_edges().filter(pl.col("cycle") == cycle).to_dicts()
    return {f"{row['sender']} → {row['receiver']}": [row["harmful_pairs"], row["pairs_sent"]] for row in rows}


def shown_flows(edges: dict[str, Any]) -> dict[str, list[float]]:
    """The flows that the network figure's edge labels show, by the edge's label (without its weight)."""
    labels = [text.split(" (weight")[0] for text in edges["text"]]
    return dict(zip(labels, plain(edges["customdata"]), strict=True))


def segments(trace: dict[str, Any]) -> int:
    """The edges a line trace draws: two ends and a gap each."""
    return len(plain(trace["x"])) // 3


def test_network_view_shows_each_edges_harmful_flow_at_the_chosen_cycle(zoo: Path) -> None:
    run = zoo / "ring"
    at = open_app(zoo, "ring")
    for cycle in (2, 1):
        at.select_slider[0].set_value(cycle).run()
        shown = figure(at, "network")
        traces = {trace.get("name"): trace for trace in shown["data"]}
        flows = edge_flows(run, cycle)
        assert shown_flows(traces["edge flows"]) == flows
        # each flow class draws the edges whose harmful pairs it spans, with arrowheads in a graph this small
        lines = {name: trace for name, trace in traces.items() if name not in ("edge flows", "nodes")}
        assert {(trace["mode"], trace["marker"]["symbol"]) for trace in lines.values()} == {("lines+markers", "arrow")}
        harmful = [pairs for pairs, _ in flows.values()]
        assert segments(lines["none"]) == harmful.count(0)
        for name, trace in lines.items():
            if name[0].isdigit():  # a class of harmful counts, "3" or "1-2"
                low, _, high = name.partition("-")
                assert segments(trace) == sum(int(low) <= pairs <= int(high or low) for pairs in harmful)
    assert max(edge_flows(run, 2).values())[0] > 0  # the attacked node sent harmful pairs
    assert "arrows point from sender to receiver" in texts(at.caption)
    at.select_slider[0].set_value(0).run()  # nothing flows at cycle 0, the baseline
    edges = {trace.get("name"): trace for trace in figure(at, "network")["data"]}["edge flows"]
    assert shown_flows(edges) == {edge: [0, 0] for edge in edge_flows(run, 1)}


def test_the_network_draws_the_transmission_tree_made_by_the_chosen_cycle(small_run: Path) -> None:
    directory = RunDirectory(small_run)
    graph, metrics = directory.read_graph(), directory.read_metrics()
    tree = pl.DataFrame({"node": [1, 2], "cycle": [1, 2], "infector": [0, 1], "generation": [1, 2]})
    positions = layout(graph)
    for cycle, links in ((0, []), (1, [(0, 1)]), (2, [(0, 1), (1, 2)])):
        drawn = figures.network_figure(graph, positions, metrics, "refusal_rate", cycle, None, tree)
        trace = [t for t in drawn.data if t.name == "transmission (who infected whom)"]
        ends = [] if not trace else [(x, y) for x, y in zip(trace[0].x, trace[0].y, strict=True) if x is not None]
        assert ends == [tuple(positions[node]) for link in links for node in link]


def test_a_run_without_edge_flows_draws_its_edges_without_them(small_run: Path, tmp_path: Path) -> None:
    copy_run(small_run, tmp_path / "ring").edges_path.unlink()
    at = open_app(tmp_path)
    assert "the edges show no flows: no edges.parquet" in texts(at.caption)
    edges = {trace.get("name"): trace for trace in figure(at, "network")["data"]}["edge flows"]
    assert all(math.isnan(value) for flows in plain(edges["customdata"]) for value in flows)


def test_a_large_graph_gets_lines_without_arrowheads_and_labels_that_fit() -> None:
    """Above figures.SMALL_GRAPH_EDGES edges: no arrowheads; 200 nodes still carry their numbers, smaller."""
    graph = nx.DiGraph(nx.cycle_graph(200))  # 400 edges, both directions
    nx.set_node_attributes(graph, "code", "domain")
    cycles = pl.DataFrame({"cycle": [0, 1, 2]}).join(pl.DataFrame({"node": list(graph)}), how="cross")
    metrics = cycles.with_columns(
        *(pl.lit(0.5).alias(column) for column in figures.HOVER_COLUMNS), attacked=pl.col("node") == 0
    )
    edges = (
        pl.DataFrame({"cycle": [1, 2]})
        .join(pl.DataFrame(list(graph.edges()), schema=["sender", "receiver"], orient="row"), how="cross")
        .with_columns(harmful_pairs=(pl.col("sender") == 0) * pl.col("cycle"), pairs_sent=8, cut=False)
    )
    shown = figures.network_figure(graph, layout(graph), metrics, "refusal_rate", 2, edges)
    lines = [trace for trace in shown.data if trace.name not in ("edge flows", "nodes")]
    assert [(trace.name, trace.mode) for trace in lines] == [("none", "lines"), ("1", "lines"), ("2", "lines")]
    assert [len(trace.x) // 3 for trace in lines] == [398, 0, 2]  # node 0's two out-edges carried 2 at cycle 2
    nodes = shown.data[-1]
    assert list(nodes.text) == [str(node) for node in graph] and nodes.mode == "markers+text"
    assert min(nodes.marker.size) < figures.node_size(4) and nodes.textfont.size < 13
    assert shown.layout.height > 560  # more room than a small graph's


def test_curves_view_draws_nodes_means_drifted_share_and_hop_heatmap(zoo: Path) -> None:
    run = zoo / "ring"
    at = show(open_app(zoo, "ring"), "Curves")
    curves = {trace["name"]: trace for trace in figure(at, "curves")["data"]}
    assert curves["mean"]["y"] == pytest.approx(list(mean_by_cycle(run, lambda r: r["refusal_rate"]).values()))
    attacked = [y for y in curves["attacked nodes"]["y"] if y is not None]
    assert attacked == [row["refusal_rate"] for row in rows(run) if row["node"] == 0]

    # the threshold starts at the run's own, where the share is the engine's `drifted` column
    assert at.slider(key="threshold").value == RunDirectory(run).read_config().evaluation.drift_threshold
    drifted = {trace["name"]: trace["y"] for trace in figure(at, "drifted")["data"]}
    assert drifted["all nodes"] == pytest.approx(list(mean_by_cycle(run, lambda r: r["drifted"]).values()))
    at.slider(key="threshold").set_value(0.01).run()
    baseline = dict(zip(range(4), at_cycle(run, 0, "refusal_rate"), strict=True))
    expected = mean_by_cycle(run, lambda r: baseline[r["node"]] - r["refusal_rate"] >= 0.01)
    assert {trace["name"]: trace["y"] for trace in figure(at, "drifted")["data"]}["all nodes"] == pytest.approx(
        list(expected.values())
    )

    # the heatmap starts at refusal, on the network view's fixed scale for a rate
    heatmap = figure(at, "heatmap")["data"][0]
    on_hop = {hop: [r for r in rows(run) if r["hops_from_attack"] == hop] for hop in (0, 1, 2)}
    assert heatmap["y"] == [f"{hop} (n={len(on_hop[hop]) // 3})" for hop in (0, 1, 2)]  # ring of 4, 3 cycles
    assert (heatmap["zmin"], heatmap["zmax"], heatmap["colorscale"][0][1]) == (0, 1, "rgb(165,0,38)")  # red: 0
    assert heatmap["z"][0] == of_node(run, 0, "refusal_rate")
    at.selectbox(key="heatmap_metric").set_value("drift").run()
    for hop, row in zip((0, 1, 2), figure(at, "heatmap")["data"][0]["z"], strict=True):
        assert row == pytest.approx(
            [statistics.fmean(r["drift"] for r in on_hop[hop] if r["cycle"] == c) for c in (0, 1, 2)]
        )
    assert figure(at, "curves")["layout"]["yaxis"]["range"] == [-0.02, 1.02]  # a rate's fixed axis

    at.selectbox(key="curves_metric").set_value("harmful_rate").run()
    mean = {trace["name"]: trace for trace in figure(at, "curves")["data"]}["mean"]
    assert mean["y"] == pytest.approx(list(mean_by_cycle(run, lambda r: r["harmful_rate"]).values()))


def test_empty_directory_says_there_are_no_runs(tmp_path: Path) -> None:
    at = open_app(tmp_path)
    assert "no runs in" in texts(at.info)
    assert not at.dataframe


def test_missing_directory_says_so(tmp_path: Path) -> None:
    at = open_app(tmp_path / "nowhere")
    assert "is not a directory" in texts(at.warning)


def test_corrupt_metrics_give_a_message_in_every_view(zoo: Path) -> None:
    at = open_app(zoo, "corrupt")
    assert "metrics.parquet is unreadable" in texts(at.error)
    assert not chart_keys(at)
    show(at, "Curves")
    assert "metrics.parquet is unreadable" in texts(at.error)
    show(at, "Compare")
    at.multiselect(key="compare_runs").set_value(["corrupt", "ring"]).run()
    assert "corrupt is left out" in texts(at.warning)
    assert [trace["name"] for trace in figure(at, "compare")["data"]] == ["ring"]


def test_failed_run_shows_its_error(zoo: Path) -> None:
    at = open_app(zoo, "failed")
    assert "RuntimeError: the host died" in texts(at.warning)
    assert status_caption(at).startswith("failed")


@pytest.mark.parametrize("run", ["no-graph", "bad-graph"])
def test_a_missing_or_unreadable_graph_gives_a_message_in_the_network_view_only(zoo: Path, run: str) -> None:
    at = open_app(zoo, run)
    assert "graph.graphml is unreadable" in texts(at.error)
    assert not chart_keys(at)
    show(at, "Curves")
    assert chart_keys(at) == {"curves", "drifted", "heatmap"}


def test_a_run_in_progress_shows_its_cycles_as_they_are_written(small_run: Path, tmp_path: Path) -> None:
    run = in_progress(small_run, tmp_path / "live")
    at = open_app(tmp_path)
    assert status_caption(at).startswith("in progress")
    # the stage it is at, in the sidebar and above its views
    assert "live: in progress, cycle 2/2: generate, train, evaluate" in [
        bar.proto.text for bar in at.sidebar.get("progress")
    ]
    assert "live is cycle 2/2: generate, train, evaluate" in texts(at.info)
    assert at.select_slider[0].options == ["0", "1"]

    run.write_metrics(read_metrics(small_run).filter(pl.col("cycle") <= 1))  # no new cycle yet
    at.run()
    assert at.select_slider[0].value == 1
    run.write_metrics(read_metrics(small_run))  # the engine rewrites the file after each cycle
    at.run()
    assert at.select_slider[0].options == ["0", "1", "2"]
    assert at.select_slider[0].value == 2  # it was at the latest cycle: it follows the run
    assert figure(at, "network")["layout"]["title"]["text"] == "refusal_rate at cycle 2"

    at.select_slider[0].set_value(0).run()  # the user looks back: a new cycle does not move the slider
    run.write_metrics(
        read_metrics(small_run)
        .with_columns(pl.col("cycle") + 1)
        .vstack(read_metrics(small_run).filter(pl.col("cycle") == 0))
    )
    at.run()
    assert at.select_slider[0].options == ["0", "1", "2", "3"]
    assert at.select_slider[0].value == 0
    show(at, "Curves")
    show(at, "Network")  # the slider, hidden meanwhile, is where it was
    assert at.select_slider[0].value == 0


def test_a_run_that_has_written_no_metrics_yet_shows_its_stage_not_an_error(small_run: Path, tmp_path: Path) -> None:
    in_progress(small_run, tmp_path / "live").metrics_path.unlink()  # building its base model
    at = open_app(tmp_path)
    assert not at.error
    assert "live is building or loading the base model, then evaluating it (cycle 0)" in texts(at.info)


def test_launched_run_completes_and_its_cycles_show(launched: Launch) -> None:
    finished(launched)
    at = open_app(launched.runs_dir, "chain")
    assert status_caption(at).startswith("complete")
    shown = figure(at, "network")
    assert at.select_slider[0].options == ["0", "1"]
    assert plain(shown["data"][-1]["marker"]["color"]) == at_cycle(launched.out, 1, "refusal_rate")
    assert not at.sidebar.get("progress")
    config = RunDirectory(launched.out).read_config()
    defenses = [defense.model_dump() for defense in config.defense]
    assert defenses == [
        {"kind": "quarantine", "nodes": "all", "start": 1, "stop": None, "every": 1, "threshold": 0.5, "probes": 20}
    ]
    assert read_metrics(launched.out)["edges_cut"].drop_nulls().len() > 0


def test_compare_overlays_runs_with_their_config_differences_and_final_figures(
    launched: Launch, small_run: Path
) -> None:
    finished(launched)
    ring = copy_run(small_run, launched.runs_dir / "ring").path
    at = show(open_app(launched.runs_dir), "Compare")
    at.multiselect(key="compare_runs").set_value(["chain", "ring"]).run()
    lines = {trace["name"]: trace["y"] for trace in figure(at, "compare")["data"]}
    for name, run in (("chain", launched.out), ("ring", ring)):
        assert lines[name] == pytest.approx(list(mean_by_cycle(run, lambda r: r["refusal_rate"]).values()))
    differences = {row["setting"]: row for row in at.dataframe[1].value.to_dict("records")}  # [0]: the runs
    assert (differences["topology.name"]["chain"], differences["topology.name"]["ring"]) == ("chain", "ring")
    assert (differences["cycles"]["chain"], differences["cycles"]["ring"]) == ("1", "2")
    assert (differences["attack.0.examples"]["chain"], differences["attack.0.examples"]["ring"]) == ("80", "50")
    assert differences["attack.0.cycles"]["chain"] == "[1]"
    assert "seed" not in differences
    finals = {row["run"]: row for row in at.dataframe[2].value.to_dict("records")}
    summary = RunDirectory(launched.out).read_summary()
    assert finals["chain"]["final_mean_refusal"] == pytest.approx(summary["final_mean_refusal"])
    assert finals["chain"]["nodes"] == summary["nodes"]
    # the ring ran 2 cycles, the chain 1: both are compared at cycle 1, and a warning says so
    assert finals["ring"]["final_mean_refusal"] == pytest.approx(mean_by_cycle(ring, lambda r: r["refusal_rate"])[1])
    assert (finals["ring"]["last cycle written"], finals["chain"]["last cycle written"]) == (2, 1)
    assert "the runs end at different cycles (1, 2)" in texts(at.warning)


def make_sweep(folder: Path, out: Path) -> None:
    """A finished sweep into `out`, its spec in `folder`: 2 doses by 2 seeds of the tiny run of
    tests.helpers.TINY over 2 cycles. Its runs are Ray tasks: the `ray_cluster` fixture first."""
    (folder / "base.toml").write_text(load_config(overrides=[*TINY, "cycles=2"]).to_toml())
    (folder / "sweep.toml").write_text(SWEEP_SPEC)
    sweep(folder / "sweep.toml", out)


@pytest.fixture(scope="module")
def with_sweep(request: pytest.FixtureRequest, small_run: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A runs directory holding a finished run (ring) and a finished sweep (doses)."""
    request.getfixturevalue("ray_cluster")
    runs_dir = tmp_path_factory.mktemp("with-sweep")
    copy_run(small_run, runs_dir / "ring")
    make_sweep(tmp_path_factory.mktemp("sweep-spec"), runs_dir / "doses")
    return runs_dir


def open_sweeps(runs_dir: Path) -> AppTest:
    at = open_app(runs_dir)
    at.session_state["section"] = "Sweeps"
    at.run()
    assert not at.exception
    return at


def bootstrapped_over_seeds(metrics: pl.DataFrame, cells: pl.DataFrame, metric: str) -> dict[int, Interval]:
    """Per cycle: each run's mean of `metric` over its nodes, grouped by the run's base (`model_seed` in
    cells.parquet), then their mean over seeds with the hierarchical bootstrap's 95% interval, its clusters
    by base and their values in order, as the curves resample them; cycles where the metric is null left out."""
    base = {(row["cell"], row["seed"]): row["model_seed"] for row in cells.to_dicts()}
    nodes: dict[tuple[int, int, int], list[float]] = {}
    for row in metrics.to_dicts():
        if row[metric] is not None:
            nodes.setdefault((row["cycle"], row["cell"], row["seed"]), []).append(row[metric])
    runs: dict[int, dict[int, list[float]]] = {}
    for (cycle, cell, seed), values in nodes.items():
        runs.setdefault(cycle, {}).setdefault(base[cell, seed], []).append(statistics.fmean(values))
    return {
        cycle: cluster_bootstrap([sorted(by_base[key]) for key in sorted(by_base)], resamples=CURVE_RESAMPLES)
        for cycle, by_base in runs.items()
    }


def by_hand_per_run(metrics: pl.DataFrame, metric: str) -> list[list[float | None]]:
    """Per run (by cell, then seed), its mean of `metric` over nodes at each cycle."""
    runs = []
    for _, rows in sorted(metrics.partition_by("cell", "seed", as_dict=True).items()):
        by_cycle = rows.group_by("cycle").agg(pl.col(metric).mean()).sort("cycle")
        runs.append(by_cycle[metric].to_list())
    return runs


def test_a_sweep_is_listed_apart_and_its_runs_join_the_runs_table(with_sweep: Path) -> None:
    at = open_app(with_sweep)
    swept = [f"doses/cell-00{cell}-seed-{seed}" for cell in (0, 1) for seed in (0, 1)]
    twins = [f"doses/twins/{twin.name}" for twin in sorted((with_sweep / "doses" / "twins").iterdir())]
    table = {row["run"]: row for row in at.dataframe[0].value.to_dict("records")}
    assert list(table) == ["ring", *swept, *twins]  # the twins the runs of a seed share, once each
    assert len(twins) == 2
    assert [table[name]["sweep"] for name in swept] == ["doses"] * 4
    assert [table[name][DOSES] for name in swept] == [10, 10, 50, 50]  # a setting's column, numbers
    assert at.selectbox(key="run").options == ["ring", *swept, *twins]
    at.selectbox(key="run").set_value(swept[3]).run()  # a sweep's run opens as any other
    assert status_caption(at).startswith("complete") and chart_keys(at) == {"network"}
    at.toggle(key="with_sweeps").set_value(False).run()
    assert [row["run"] for row in at.dataframe[0].value.to_dict("records")] == ["ring"]
    at = open_sweeps(with_sweep)
    assert at.dataframe[0].value.to_dict("records") == [
        {
            "sweep": "doses",
            "axes": DOSES,
            "cells": 2,
            "seeds": 2,
            "runs complete": "4/4",
            "status": "complete",
            "note": "",
        }
    ]
    assert status_caption(at) == f"complete · {(with_sweep / 'doses').resolve()}"
    assert not at.get("progress")


def test_sweep_view_draws_each_cells_mean_over_seeds_with_its_interval_band(with_sweep: Path) -> None:
    at = open_sweeps(with_sweep)
    at.selectbox(key="sweep_metric").set_value("train_loss").run()  # null at cycle 0: no fine-tune yet
    traces = {trace["name"]: trace for trace in figure(at, "sweep_curves")["data"]}
    result = load_sweep(with_sweep / "doses")
    metrics, cells = result.metrics, result.cells
    for dose in (10, 50):
        expected = bootstrapped_over_seeds(metrics.filter(pl.col(DOSES) == dose), cells, "train_loss")
        mean, band = traces[f"{DOSES}={dose} (n=2 runs on 1 base)"], traces[f"{DOSES}={dose}: 95% interval"]
        assert (mean["x"], mean["y"][0]) == ([0, 1, 2], None)
        assert band["mode"] == "lines"  # no dots at the band's corners
        each = traces[f"{DOSES}={dose}: each run"]  # the two seeds' own lines, gaps between them
        per_seed = by_hand_per_run(metrics.filter(pl.col(DOSES) == dose), "train_loss")
        assert [y for y in each["y"] if y is not None] == pytest.approx(
            [v for s in per_seed for v in s if v is not None]
        )
        assert mean["y"][1:] == pytest.approx([expected[cycle].mean for cycle in (1, 2)])
        # the band: along the high ends, back along the low ones
        assert (band["fill"], band["x"]) == ("toself", [1, 2, 2, 1])
        assert band["y"] == pytest.approx([expected[1].high, expected[2].high, expected[2].low, expected[1].low])
        assert expected[2].low < expected[2].mean < expected[2].high  # the seeds differ: a band of some width

    at.multiselect(key="sweep_groups:doses").set_value([]).run()  # no axis chosen: a line per cell
    names = [trace["name"] for trace in figure(at, "sweep_curves")["data"]]
    assert names == [
        *("cell=0: 95% interval", "cell=0: each run", "cell=0 (n=2 runs on 1 base)"),
        *("cell=1: 95% interval", "cell=1: each run", "cell=1 (n=2 runs on 1 base)"),
    ]
    assert figure(at, "sweep_curves")["layout"]["yaxis"].get("range") is None  # a loss is not a rate

    at.selectbox(key="sweep_metric").set_value("refusal_rate").run()
    shown = figure(at, "sweep_curves")
    assert shown["layout"]["yaxis"]["range"] == [-0.02, 1.02]  # a rate's axis: fixed to [0, 1]
    bands = [trace for trace in shown["data"] if trace["name"].endswith("95% interval")]
    assert all(0 <= y <= 1 for band in bands for y in band["y"])  # its intervals inside it


def test_sweep_view_shows_its_cells_with_their_figures_over_seeds(with_sweep: Path) -> None:
    at = open_sweeps(with_sweep)
    cells = load_sweep(with_sweep / "doses").cells
    table = at.dataframe[1].value.to_dict("records")
    assert [(row["cell"], row[DOSES]) for row in table] == [(0, 10), (1, 50)]
    for row in table:
        seeds = cells.filter(pl.col("cell") == row["cell"])
        assert row["final_mean_refusal_mean"] == pytest.approx(seeds["final_mean_refusal"].mean())
        assert (row["final_mean_refusal_seeds"], row["final_mean_refusal_bases"]) == (2, 1)

    at.multiselect(key="sweep_figures:doses").set_value(["drifted_share_area"]).run()
    table = at.dataframe[1].value
    assert list(table.columns) == [
        "cell",
        DOSES,
        *(f"drifted_share_area_{part}" for part in ("mean", "low", "high", "seeds", "bases")),
    ]
    assert at.dataframe[2].value["run"].tolist() == cells["run"].to_list()  # every run, in an expander

    # a figure against an axis: each run a point, the mean over seeds per dose with its interval
    at.selectbox(key="sweep_axis:doses:figure").set_value("final_mean_refusal").run()
    traces = {trace["name"]: trace for trace in figure(at, "sweep_axis:doses:chart")["data"]}
    points, mean = traces["final_mean_refusal: each run"], traces["final_mean_refusal: mean (n=2 runs on 1 base)"]
    assert sorted(zip(points["x"], points["y"], strict=True)) == sorted(
        cells.select(DOSES, "final_mean_refusal").rows()
    )
    assert mean["x"] == [10, 50]
    assert mean["y"] == pytest.approx(
        [cells.filter(pl.col(DOSES) == dose)["final_mean_refusal"].mean() for dose in (10, 50)]
    )
    assert figure(at, "sweep_axis:doses:chart")["layout"]["yaxis"]["range"] == [-0.02, 1.02]


def test_a_sweep_in_progress_shows_its_runs_complete(with_sweep: Path, tmp_path: Path) -> None:
    shutil.copytree(with_sweep / "doses", tmp_path / "doses")
    directory = SweepDirectory(tmp_path / "doses")
    directory.cells_path.unlink()  # the results are written once every run is complete
    directory.metrics_path.unlink()
    shutil.rmtree(directory.run("cell-001-seed-1").path)  # not started yet
    lock = RunDirectory(directory.path).lock_path  # held by the live sweep
    lock.write_text(f"pid {os.getpid()} on {socket.gethostname()}")
    SweepDirectory(tmp_path / "broken").path.mkdir()
    SweepDirectory(tmp_path / "broken").record_path.write_text("{not json")

    at = open_sweeps(tmp_path)
    table = {row["sweep"]: row for row in at.dataframe[0].value.to_dict("records")}
    assert (table["doses"]["runs complete"], table["doses"]["status"]) == ("3/4", "in progress")
    assert table["broken"]["status"] == "unreadable" and "sweep.json is unreadable" in table["broken"]["note"]
    assert "sweep.json is unreadable" in texts(at.warning)  # the first, chosen
    assert not at.main.get("progress")

    at.selectbox(key="sweep").set_value("doses").run()
    progress = "doses: sweep in progress, 3/4 runs complete"
    assert [bar.proto.text for bar in at.sidebar.get("progress")] == [progress]
    assert [bar.proto.text for bar in at.main.get("progress")] == [progress]
    assert "its results are gathered once every run is complete" in texts(at.info)
    assert not chart_keys(at)

    lock.write_text("")  # the sweep stopped before its end
    at.run()
    table = {row["sweep"]: row for row in at.dataframe[0].value.to_dict("records")}
    assert table["doses"]["status"] == "incomplete" and "cascade sweep SPEC --out" in table["doses"]["note"]
    assert not at.sidebar.get("progress")
    assert [bar.proto.text for bar in at.main.get("progress")] == ["doses: sweep incomplete, 3/4 runs complete"]
