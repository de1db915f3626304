"""The dashboard's views for daily work, through Streamlit's AppTest: the runs table to filter, sort, group
and export, Compare grouped by a setting, a defended run against its control run, the experiments page on
the committed results, links that reopen a view, the report button, and rates' intervals kept in [0, 1]."""

from __future__ import annotations

import json
import math
import re
import shutil
import tomllib
from pathlib import Path
from typing import Any

import polars as pl
import pytest
import tomli_w
from streamlit.testing.v1 import AppTest

from ecosystem import load_config, run
from ecosystem.analysis import clean_cost, defense_effect
from ecosystem.results import RunDirectory
from tests.helpers import TINY, node_series, read_metrics
from tests.test_app import APP, ROOT, chart_keys, copy_run, figure, mean_by_cycle, open_app, show, status_caption, texts

EXPERIMENTS = ROOT / "experiments" / "results"


def amend(directory: RunDirectory, settings: dict[str, Any], final_mean_refusal: float) -> None:
    """Change a copied run's settings (dotted keys) and its summary's final mean refusal."""
    config = tomllib.loads(directory.config_path.read_text())
    for key, value in settings.items():
        section, _, name = key.rpartition(".")
        (config[section] if section else config)[name] = value
    directory.config_path.write_text(tomli_w.dumps(config))
    summary = directory.read_summary()
    directory.summary_path.write_text(json.dumps({**summary, "final_mean_refusal": final_mean_refusal}))


@pytest.fixture
def three_runs(small_run: Path, tmp_path: Path) -> Path:
    """Three copies of a run that differ in seed, harmful traffic and topology name, and in final refusal."""
    for name, seed, fraction, topology, refusal in (
        ("a", 1, 0.1, "ring", 0.2),
        ("b", 2, 0.1, "ring", 0.5),
        ("c", 3, 0.3, "complete", 0.8),
    ):
        directory = copy_run(small_run, tmp_path / name)
        amend(directory, {"seed": seed, "traffic.harmful_fraction": fraction, "topology.name": topology}, refusal)
    return tmp_path


def runs_shown(at: AppTest) -> list[str]:
    return at.dataframe[0].value["run"].tolist()


def test_the_runs_table_filters_sorts_groups_and_offers_each_table_as_csv(three_runs: Path) -> None:
    at = open_app(three_runs)
    table = {row["run"]: row for row in at.dataframe[0].value.to_dict("records")}
    assert {name: table[name]["traffic.harmful_fraction"] for name in "abc"} == {"a": 0.1, "b": 0.1, "c": 0.3}
    assert {name: table[name]["final_mean_refusal"] for name in "abc"} == {"a": 0.2, "b": 0.5, "c": 0.8}

    at.selectbox(key="sort_by").set_value("final_mean_refusal").run()
    assert runs_shown(at) == ["a", "b", "c"]
    at.toggle(key="sort_descending").set_value(True).run()
    assert runs_shown(at) == ["c", "b", "a"]

    at.multiselect(key="filter_by").set_value(["topology", "seed"]).run()
    at.multiselect(key="filter:topology").set_value(["ring"]).run()
    assert runs_shown(at) == ["b", "a"]
    at.slider(key="filter:seed").set_value((2.0, 3.0)).run()
    assert runs_shown(at) == ["b"]
    assert "1 of 3 runs" in texts(at.caption)
    at.multiselect(key="filter_by").set_value([]).run()

    at.selectbox(key="group_by").set_value("traffic.harmful_fraction").run()
    groups = {row["traffic.harmful_fraction"]: row for row in at.dataframe[1].value.to_dict("records")}
    assert (groups[0.1]["runs"], groups[0.3]["runs"]) == (2, 1)
    assert groups[0.1]["final_mean_refusal_mean"] == pytest.approx(0.35)
    assert (groups[0.1]["final_mean_refusal_seeds"], groups[0.1]["final_mean_refusal_bases"]) == (2, 1)
    # 0.2 and 0.5 over two runs on one base: the bootstrap's interval stays within them (Student-t's was ±1.9)
    assert (groups[0.1]["final_mean_refusal_low"], groups[0.1]["final_mean_refusal_high"]) == pytest.approx((0.2, 0.5))

    buttons = [button for button in at.get("download_button") if button.proto.label == "CSV"]
    assert [button.proto.id.rsplit("-", 1)[-1] for button in buttons] == ["csv:runs", "csv:groups"]  # a CSV per table


def test_tags_and_a_note_are_saved_with_the_run_and_filter_the_runs_table(three_runs: Path, tmp_path: Path) -> None:
    shutil.copytree(three_runs, tmp_path / "runs")
    at = open_app(tmp_path / "runs")
    at.selectbox(key="run").set_value("b").run()
    at.text_input(key="tags:b").set_value("pilot, ring ,").run()
    at.text_area(key="note:b").set_value("the one to show").run()
    assert not (tmp_path / "runs" / "b" / "annotation.json").exists()  # nothing is written before "save"
    at.button(key="annotate:b").click().run()
    assert RunDirectory(tmp_path / "runs" / "b").read_annotation().tags == ["pilot", "ring"]
    table = {row["run"]: row for row in at.dataframe[0].value.to_dict("records")}
    assert (table["b"]["tags"], table["b"]["notes"], table["a"]["tags"]) == ("pilot, ring", "the one to show", "")
    at.multiselect(key="filter_by").set_value(["tags"]).run()
    at.multiselect(key="filter:tags").set_value(["pilot, ring"]).run()
    assert runs_shown(at) == ["b"]


def test_compare_groups_runs_by_a_setting_with_bands_on_a_fixed_rate_axis(three_runs: Path) -> None:
    runs = RunDirectory(three_runs / "c")
    runs.write_metrics(read_metrics(three_runs / "c").filter(pl.col("cycle") <= 1))  # c ends a cycle earlier
    at = show(open_app(three_runs), "Compare")
    at.multiselect(key="compare_runs").set_value(["a", "b", "c"]).run()
    lines = figure(at, "compare")["data"]
    assert len({line["line"]["color"] for line in lines}) == 3  # each run its own colour
    assert figure(at, "compare")["layout"]["yaxis"]["range"] == [-0.02, 1.02]
    assert "the runs end at different cycles (1, 2): their figures are at cycle 1" in texts(at.warning)
    finals = {row["run"]: row for row in at.dataframe[2].value.to_dict("records")}
    expected = mean_by_cycle(three_runs / "a", lambda r: r["refusal_rate"])[1]
    assert finals["a"]["final_mean_refusal"] == pytest.approx(expected)  # at cycle 1, not 2

    at.selectbox(key="compare_group").set_value("traffic.harmful_fraction").run()
    traces = {trace["name"]: trace for trace in figure(at, "compare")["data"]}
    # the runs are copies of one run: one base (from each run's summary)
    assert {
        "traffic.harmful_fraction=0.1 (n=2 runs on 1 base)",
        "traffic.harmful_fraction=0.3 (n=1 run on 1 base)",
    } <= set(traces)
    mean = traces["traffic.harmful_fraction=0.1 (n=2 runs on 1 base)"]
    assert mean["y"] == pytest.approx(list(mean_by_cycle(three_runs / "a", lambda r: r["refusal_rate"]).values()))


@pytest.fixture(scope="module")
def defended(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A runs directory with a tiny defended run over 2 cycles (and so its control run)."""
    runs_dir = tmp_path_factory.mktemp("defended")
    run(load_config(overrides=[*TINY, "cycles=2", 'defense=[{kind="anchor"}]']), runs_dir / "anchored")
    return runs_dir


def test_a_defended_run_shows_its_control_run_with_protection_and_cost(defended: Path) -> None:
    out = defended / "anchored"
    at = open_app(defended)
    arms = ["anchored", "anchored/control", "anchored/control/twin", "anchored/twin"]  # each opens as a run
    assert at.selectbox(key="run").options == arms
    at = show(at, "Defense")
    effect = defense_effect(read_metrics(out), read_metrics(out / "control"))
    effect |= clean_cost(read_metrics(out / "twin"), read_metrics(out / "control" / "twin"))
    shown = {metric.label: metric.value for metric in at.metric}
    for key in ("refusal_kept", "protection", "helpfulness_lost", "clean_helpfulness_lost"):
        assert shown[key.replace("_", " ")] == f"{effect[key]:+.3f}"
    assert re.search(r"the control run took \d+ s of the run's \d+ s", texts(at.caption))
    lines = {trace["name"]: trace["y"] for trace in figure(at, "defense")["data"]}
    arms = {
        "with the defense": out,
        "without it (control run)": out / "control",
        "no attack, with the defense (twin)": out / "twin",
        "no attack, without it (control's twin)": out / "control" / "twin",
    }
    for name, run_dir in arms.items():  # the 2x2
        metrics = read_metrics(run_dir).filter(~pl.col("attacked"))
        expected = metrics.group_by("cycle").agg(pl.col("refusal_rate").mean()).sort("cycle")["refusal_rate"]
        assert lines[name] == pytest.approx(expected.to_list())
    at.selectbox(key="defense_nodes").set_value("node 0").run()
    node = node_series(read_metrics(out / "control"), 0, "refusal_rate")
    assert {t["name"]: t["y"] for t in figure(at, "defense")["data"]}["without it (control run)"] == node

    at.selectbox(key="run").set_value("anchored/control").run()
    assert status_caption(at) == f"complete · {(out / 'control').resolve()}"
    assert "no defense in this run" in texts(at.info)


def test_a_link_reopens_the_same_run_view_and_cycle(three_runs: Path) -> None:
    at = AppTest.from_file(APP, default_timeout=60)
    for key, value in {"runs_dir": str(three_runs), "run": "b", "view": "Network", "cycle": "1"}.items():
        at.query_params[key] = value
    at.run()
    assert not at.exception
    assert at.selectbox(key="run").value == "b"
    assert at.select_slider[0].value == 1
    assert figure(at, "network")["layout"]["title"]["text"] == "refusal_rate at cycle 1"
    assert (at.query_params["run"], at.query_params["cycle"]) == ("b", "1")  # kept in the URL

    at = AppTest.from_file(APP, default_timeout=60)
    for key, value in {"runs_dir": str(three_runs), "run": "c", "view": "Curves"}.items():
        at.query_params[key] = value
    at.run()
    assert at.selectbox(key="run").value == "c" and chart_keys(at) == {"curves", "drifted", "heatmap"}


def test_the_report_button_writes_the_report_of_the_chosen_run(small_run: Path, tmp_path: Path) -> None:
    copy_run(small_run, tmp_path / "ring")
    at = open_app(tmp_path)
    at.button(key="run_report").click().run()
    written = tmp_path / "ring" / "report" / "report.md"
    assert "written: " in texts(at.success)
    assert written.is_file() and (written.parent / "refusal.png").is_file()


def test_the_experiments_page_shows_each_committed_experiments_claims_figures_and_report() -> None:
    at = AppTest.from_file(APP, default_timeout=120)
    at.session_state["runs_dir"] = str(EXPERIMENTS)
    at.run()
    assert not at.exception
    assert at.session_state["section"] == "Experiments"  # a folder of experiments opens on them
    listed = at.dataframe[0].value
    assert listed["experiment"].tolist() == sorted(path.parent.name for path in EXPERIMENTS.glob("*/verdict.json"))
    for name in ("chain", "domains"):
        at.selectbox(key="experiment").set_value(name).run()
        assert not at.exception and not at.error
        verdict = json.loads((EXPERIMENTS / name / "verdict.json").read_text())
        findings = at.dataframe[1].value.to_dict("records")
        assert [(row["name"], row["verdict"]) for row in findings] == [
            (finding["name"], finding["verdict"]) for finding in verdict["findings"]
        ]
        holm = [None if math.isnan(row["p_holm"]) else row["p_holm"] for row in findings]  # shown beside each verdict
        assert holm == [finding["p_holm"] for finding in verdict["findings"]]
        first = verdict["findings"][0]
        shown = figure(at, f"finding:{first['name']}")["data"][0]
        assert shown["x"] == pytest.approx([figure["mean"] for figure in first["figures"].values()])
        assert [label.split(" (n=")[1] for label in shown["y"]] == [f"{f['seeds']})" for f in first["figures"].values()]
        report = (EXPERIMENTS / name / "report").glob("*.png")
        assert len(at.get("image")) == len(list(report))  # the report's pictures, from their files


def test_an_interval_past_0_and_1_in_an_older_record_is_flagged(tmp_path: Path) -> None:
    # v1 records gave Student-t intervals, which could run past [0, 1] (defenses' retention reached 1.62)
    (tmp_path / "old").mkdir()
    figures = {"retention": {"mean": 1.0, "low": 0.38, "high": 1.62, "seeds": 5}}
    finding = {"name": "f", "claim": "c", "rule": "r", "verdict": "holds", "reason": "why", "figures": figures}
    (tmp_path / "old" / "verdict.json").write_text(json.dumps({"title": "t", "findings": [finding], "seeds": [0]}))
    at = open_app(tmp_path)
    assert not at.exception
    figures_table = next(frame.value for frame in at.dataframe if "past_0_1" in frame.value.columns)
    assert figures_table.set_index("figure")["past_0_1"].to_dict()["retention"]


def test_an_unreadable_verdict_is_listed_with_the_reason(tmp_path: Path) -> None:
    (tmp_path / "broken").mkdir()
    (tmp_path / "broken" / "verdict.json").write_text("{not json")
    at = open_app(tmp_path)
    assert at.dataframe[0].value.to_dict("records")[0]["title"] == "unreadable"
    assert "verdict.json is unreadable" in texts(at.warning)
