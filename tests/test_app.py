"""The dashboard through Streamlit's AppTest, on run directories made by the real simulator: every
view and control, launching a run in the background, and the robustness cases."""

from __future__ import annotations

import base64
import json
import os
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tomllib
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import polars as pl
import pytest
from streamlit.testing.v1 import AppTest

from ecosystem import dashboard
from tests.helpers import SMALL

APP = str(Path(__file__).resolve().parent.parent / "app.py")
FINISHED_WITHIN = 240  # seconds for a launched small run, on two busy cores


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


def chart_keys(at: AppTest) -> set[str]:
    return {chart.key for chart in at.get("plotly_chart")}


def texts(elements: Any) -> str:
    return " | ".join(element.value for element in elements)


def rows(run: Path) -> list[dict[str, Any]]:
    return pl.read_parquet(run / "metrics.parquet").to_dicts()


def at_cycle(run: Path, cycle: int, column: str) -> list[Any]:
    return [row[column] for row in sorted(rows(run), key=lambda r: r["node"]) if row["cycle"] == cycle]


def of_node(run: Path, node: int, column: str) -> list[Any]:
    return [row[column] for row in sorted(rows(run), key=lambda r: r["cycle"]) if row["node"] == node]


def mean_by_cycle(run: Path, value: Any) -> dict[int, float]:
    cycles: dict[int, list[float]] = {}
    for row in rows(run):
        cycles.setdefault(row["cycle"], []).append(float(value(row)))
    return {cycle: statistics.fmean(values) for cycle, values in sorted(cycles.items())}


def copy_run(source: Path, target: Path, manifest: dict[str, Any] | None = None, pid: int | None = None) -> Path:
    """A copy of a run, its manifest amended; with `pid`, locked as by that process."""
    shutil.copytree(source, target)
    if manifest is not None:
        path = target / "manifest.json"
        path.write_text(json.dumps({**json.loads(path.read_text()), **manifest}))
    if pid is not None:
        (target / ".lock").write_text(f"pid {pid} on {socket.gethostname()}")
    return target


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


def fill_launch_form(at: AppTest, name: str, nodes: int = 3, targets: str = "0") -> AppTest:
    more = [line for line in SMALL if not line.startswith(("topology.nodes", "cycles"))]
    at.selectbox(key="launch_topology").set_value("chain")
    at.number_input(key="launch_nodes").set_value(nodes)
    at.number_input(key="launch_cycles").set_value(1)
    at.text_input(key="launch_targets").set_value(targets)
    at.number_input(key="launch_dose").set_value(80)
    at.text_input(key="launch_attack").set_value("1")
    at.selectbox(key="launch_defense").set_value("quarantine")
    at.text_area(key="launch_more").set_value("\n".join([*more, "evaluation.defense_control=false"]))
    at.text_input(key="launch_name").set_value(name)
    at.form_submit_button[0].click().run()
    assert not at.exception
    return at


@pytest.fixture(scope="module")
def launch(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Launch]:
    """A small chain run launched from the form into a runs directory that did not exist."""
    runs_dir = tmp_path_factory.mktemp("launch") / "runs"
    at = fill_launch_form(open_app(runs_dir), "chain")
    out = (runs_dir / "chain").resolve()
    process = dashboard.LAUNCHED[out]
    yield Launch(at, runs_dir, out, process)
    if process.poll() is None:
        os.killpg(process.pid, signal.SIGTERM)  # its own session: the run and the Ray workers it started
        process.wait(timeout=60)


def finished(launch: Launch) -> Launch:
    assert launch.process.wait(timeout=FINISHED_WITHIN) == 0, dashboard.log_tail(launch.out)
    return launch


def test_launch_starts_a_background_run_and_refuses_a_second_into_its_directory(launch: Launch) -> None:
    at = launch.at
    assert f"launched chain (process {launch.process.pid})" in texts(at.sidebar.success)
    assert at.selectbox(key="run").value == "chain"
    assert launch.process.poll() is None  # the app did not wait for it
    at.run()
    assert any(bar.proto.text.startswith("chain: ") for bar in at.sidebar.get("progress"))

    fill_launch_form(at, "chain")
    assert "already exists" in texts(at.sidebar.error)
    assert dashboard.LAUNCHED[launch.out] is launch.process

    fill_launch_form(at, "bad", targets="7")
    assert "node 7 does not exist" in texts(at.sidebar.error)
    assert not (launch.runs_dir / "bad").exists()


@pytest.fixture(scope="module")
def zoo(small_run: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A runs directory with a finished run and damaged or unusual copies of it."""
    runs = tmp_path_factory.mktemp("zoo")
    copy_run(small_run, runs / "ring")
    progress = copy_run(small_run, runs / "in-progress", {"status": "running"}, pid=os.getpid())
    copy_run(small_run, runs / "interrupted", {"status": "running"}, pid=dead_pid())
    (progress / "summary.json").unlink()
    pl.read_parquet(small_run / "metrics.parquet").filter(pl.col("cycle") <= 1).write_parquet(
        progress / "metrics.parquet"
    )
    older = copy_run(small_run, runs / "older")
    (older / "graph.graphml").unlink(missing_ok=True)
    pl.read_parquet(small_run / "metrics.parquet").drop("drift", "hops_from_attack", "attacked").write_parquet(
        older / "metrics.parquet"
    )
    corrupt = copy_run(small_run, runs / "corrupt")
    (corrupt / "metrics.parquet").write_bytes(b"PAR1 this is not parquet")
    copy_run(small_run, runs / "failed", {"status": "failed", "error": "RuntimeError: the host died"})
    broken = copy_run(small_run, runs / "broken-manifest")
    (broken / "manifest.json").write_text("{not json")
    return runs


def test_runs_table_lists_each_run_with_its_status_and_the_app_writes_nothing(zoo: Path) -> None:
    before = {path: path.stat().st_mtime_ns for path in zoo.rglob("*")}
    at = open_app(zoo)
    table = {row["run"]: row for row in at.dataframe[0].value.to_dict("records")}
    assert set(table) == {"ring", "in-progress", "interrupted", "older", "corrupt", "failed", "broken-manifest"}
    assert table["ring"]["status"] == "complete"
    assert (table["ring"]["topology"], table["ring"]["nodes"], table["ring"]["cycles"]) == ("ring", 4, 2)
    assert table["ring"]["attacks"].startswith("nodes 0: 50 examples at cycles ")
    assert table["in-progress"]["status"] == "in progress"
    assert table["interrupted"]["status"] == "interrupted" and "cascade run --resume" in table["interrupted"]["note"]
    assert (table["failed"]["status"], table["failed"]["note"]) == ("failed", "RuntimeError: the host died")
    assert table["broken-manifest"]["status"] == "no manifest"
    assert "manifest.json is unreadable" in table["broken-manifest"]["note"]
    for view in ("Network", "Curves", "Compare"):
        show(at, view)
    assert {path: path.stat().st_mtime_ns for path in zoo.rglob("*")} == before


def test_network_view_colours_the_nodes_at_the_chosen_cycle(zoo: Path) -> None:
    run = zoo / "ring"
    at = open_app(zoo, "ring")
    shown = figure(at, "network")
    nodes = shown["data"][-1]
    assert plain(nodes["marker"]["color"]) == at_cycle(run, 2, "refusal_rate")
    assert nodes["marker"]["symbol"] == ["diamond", "circle", "circle", "circle"]  # node 0 is attacked
    assert nodes["hovertext"][:2] == ["node 0 (code) · attacked", "node 1 (medical)"]
    assert "<br>harmful_rate: %{customdata[1]:.3~g}" in nodes["hovertemplate"]
    hovered = ("refusal_rate", "harmful_rate", "helpfulness", "over_refusal", "drift", "drifted", "hops_from_attack")
    assert plain(nodes["customdata"])[1] == [float(at_cycle(run, 2, column)[1]) for column in hovered]
    edges = shown["data"][:-1]
    assert [edge["line"]["width"] for edge in edges] == [0.5 + 6 * 0.5]  # one weight, 0.5, in a ring
    assert sum(edge["x"].count(None) for edge in edges) == 8  # a ring of 4, both directions
    assert [frame["name"] for frame in shown["frames"]] == ["0", "1", "2"]
    assert [plain(frame["data"][0]["marker"]["color"]) for frame in shown["frames"]] == [
        at_cycle(run, cycle, "refusal_rate") for cycle in (0, 1, 2)
    ]
    play = shown["layout"]["updatemenus"][0]["buttons"][0]
    assert (play["method"], play["args"][0]) == ("animate", None)

    at.select_slider[0].set_value(0).run()
    at_zero = figure(at, "network")
    assert plain(at_zero["data"][-1]["marker"]["color"]) == at_cycle(run, 0, "refusal_rate")
    assert at_zero["layout"]["title"]["text"] == "refusal_rate at cycle 0"
    assert (at_zero["data"][-1]["x"], at_zero["data"][-1]["y"]) == (nodes["x"], nodes["y"])  # a stable layout

    at.selectbox(key="network_metric").set_value("harmful_rate").run()
    assert plain(figure(at, "network")["data"][-1]["marker"]["color"]) == at_cycle(run, 0, "harmful_rate")


def test_curves_view_draws_nodes_means_drifted_share_and_hop_heatmap(zoo: Path) -> None:
    run = zoo / "ring"
    at = show(open_app(zoo, "ring"), "Curves")
    curves = {trace["name"]: trace for trace in figure(at, "curves")["data"]}
    assert curves["mean"]["y"] == pytest.approx(list(mean_by_cycle(run, lambda r: r["refusal_rate"]).values()))
    attacked = [y for y in curves["attacked nodes"]["y"] if y is not None]
    assert attacked == [row["refusal_rate"] for row in rows(run) if row["node"] == 0]

    # at the run's own threshold the share is the engine's `drifted` column
    drifted = {trace["name"]: trace["y"] for trace in figure(at, "drifted")["data"]}
    assert drifted["all nodes"] == pytest.approx(list(mean_by_cycle(run, lambda r: r["drifted"]).values()))
    at.slider(key="threshold").set_value(0.01).run()
    baseline = dict(zip(range(4), at_cycle(run, 0, "refusal_rate"), strict=True))
    expected = mean_by_cycle(run, lambda r: baseline[r["node"]] - r["refusal_rate"] >= 0.01)
    assert {trace["name"]: trace["y"] for trace in figure(at, "drifted")["data"]}["all nodes"] == pytest.approx(
        list(expected.values())
    )

    heatmap = figure(at, "heatmap")["data"][0]
    assert heatmap["y"] == ["0", "1", "2"]  # hops from node 0 in a ring of 4
    for hop, row in zip((0, 1, 2), heatmap["z"], strict=True):
        on_hop = [r for r in rows(run) if r["hops_from_attack"] == hop]
        assert row == pytest.approx(
            [statistics.fmean(r["drift"] for r in on_hop if r["cycle"] == c) for c in (0, 1, 2)]
        )
    at.selectbox(key="heatmap_metric").set_value("refusal_rate").run()
    assert figure(at, "heatmap")["data"][0]["z"][0] == of_node(run, 0, "refusal_rate")

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
    assert "cannot be read (corrupt or not parquet)" in texts(at.error)
    assert not chart_keys(at)
    show(at, "Curves")
    assert "cannot be read" in texts(at.error)
    show(at, "Compare")
    at.multiselect(key="compare_runs").set_value(["corrupt", "ring"]).run()
    assert "corrupt is left out" in texts(at.warning)
    assert [trace["name"] for trace in figure(at, "compare")["data"]] == ["ring"]


def test_failed_run_shows_its_error(zoo: Path) -> None:
    at = open_app(zoo, "failed")
    assert "RuntimeError: the host died" in texts(at.warning)
    assert at.caption[0].value.startswith("failed")


def test_older_schema_leaves_out_what_needs_the_missing_columns(zoo: Path) -> None:
    at = open_app(zoo, "older")
    assert "lack drift, attacked, hops_from_attack (an older schema)" in texts(at.info)
    nodes = figure(at, "network")["data"][-1]
    assert plain(nodes["marker"]["color"]) == at_cycle(zoo / "older", 2, "refusal_rate")
    assert "rebuilt from config.toml" in texts(at.caption)  # no graph.graphml in this run
    show(at, "Curves")
    assert chart_keys(at) == {"curves", "drifted"}  # no heatmap without hops_from_attack
    show(at, "Compare")
    at.multiselect(key="compare_runs").set_value(["older", "ring"]).run()
    finals = {row["run"]: row for row in at.dataframe[-1].value.to_dict("records")}
    assert finals["older"]["note"] == "lacks attacked, hops_from_attack"
    assert finals["ring"]["note"] == ""
    at.selectbox(key="compare_metric").set_value("drift").run()
    assert "no drift in older" in texts(at.info)


def test_a_run_in_progress_shows_its_cycles_as_they_are_written(small_run: Path, tmp_path: Path) -> None:
    run = copy_run(small_run, tmp_path / "live", {"status": "running"}, pid=os.getpid())
    (run / "summary.json").unlink()
    metrics = pl.read_parquet(small_run / "metrics.parquet")
    metrics.filter(pl.col("cycle") <= 1).write_parquet(run / "metrics.parquet")
    at = open_app(tmp_path)
    assert at.caption[0].value.startswith("in progress")
    assert "live: in progress, cycle 1/2" in [bar.proto.text for bar in at.sidebar.get("progress")]
    assert at.select_slider[0].options == ["0", "1"]

    metrics.write_parquet(run / "metrics.parquet")  # the engine rewrites the file after each cycle
    at.run()
    assert at.select_slider[0].options == ["0", "1", "2"]
    assert at.select_slider[0].value == 2  # it follows the run
    assert [frame["name"] for frame in figure(at, "network")["frames"]] == ["0", "1", "2"]


def test_launched_run_completes_and_its_cycles_show(launch: Launch) -> None:
    finished(launch)
    at = open_app(launch.runs_dir, "chain")
    assert at.caption[0].value.startswith("complete")
    shown = figure(at, "network")
    assert [frame["name"] for frame in shown["frames"]] == ["0", "1"]
    assert plain(shown["data"][-1]["marker"]["color"]) == at_cycle(launch.out, 1, "refusal_rate")
    assert not at.sidebar.get("progress")
    config = tomllib.loads((launch.out / "config.toml").read_text())
    assert config["defense"] == [{"kind": "quarantine", "nodes": "all", "threshold": 0.5, "probes": 20}]
    assert pl.read_parquet(launch.out / "metrics.parquet")["edges_cut"].drop_nulls().len() > 0


def test_compare_overlays_runs_with_their_config_differences_and_final_figures(launch: Launch, small_run: Path) -> None:
    finished(launch)
    ring = copy_run(small_run, launch.runs_dir / "ring")
    at = show(open_app(launch.runs_dir), "Compare")
    at.multiselect(key="compare_runs").set_value(["chain", "ring"]).run()
    lines = {trace["name"]: trace["y"] for trace in figure(at, "compare")["data"]}
    for name, run in (("chain", launch.out), ("ring", ring)):
        assert lines[name] == pytest.approx(list(mean_by_cycle(run, lambda r: r["refusal_rate"]).values()))
    differences = {row["setting"]: row for row in at.dataframe[1].value.to_dict("records")}  # [0]: the runs
    assert (differences["topology.name"]["chain"], differences["topology.name"]["ring"]) == ("chain", "ring")
    assert (differences["cycles"]["chain"], differences["cycles"]["ring"]) == ("1", "2")
    assert (differences["attack.0.examples"]["chain"], differences["attack.0.examples"]["ring"]) == ("80", "50")
    assert differences["attack.0.cycles"]["chain"] == "[1]"
    assert "seed" not in differences
    finals = {row["run"]: row for row in at.dataframe[2].value.to_dict("records")}
    for name, run in (("chain", launch.out), ("ring", ring)):
        summary = json.loads((run / "summary.json").read_text())
        assert finals[name]["final_mean_refusal"] == pytest.approx(summary["final_mean_refusal"])
        assert finals[name]["nodes"] == summary["nodes"]
