"""`cascade calibrate`: the protocols' sweeps, their figures on synthetic cells, and a quick calibration end to end."""

from __future__ import annotations

import json
from pathlib import Path

import polars as pl
import pytest
from typer.testing import CliRunner

from ecosystem.calibration import (
    ANCHORS,
    BASES,
    PROTOCOLS,
    SEEDS,
    measure,
    protocol_sweeps,
    read_calibration,
    user_settings,
)
from ecosystem.cli import app
from ecosystem.config import ConfigError
from ecosystem.reporting import calibration_report
from ecosystem.results import ResultsError
from ecosystem.sweeps import resolve_sweep
from tests.helpers import error_lines
from tests.rules.test_transfer import transfer_cells

# tests.helpers.TINY's sizes, less the settings the protocols make (nodes, cycles)
TINY_SIZES = [
    "traffic.prompts_per_node=16",
    "training.own_examples=32",
    "training.steps=5",
    "evaluation.prompts_per_set=20",
]


def resolved(quick: bool, settings: dict | None = None) -> dict:
    tables = protocol_sweeps(quick, settings or {}, BASES)
    return {name: resolve_sweep("", table, Path("."), name) for name, table in tables.items()}


def test_the_full_protocols_run_on_three_bases_and_three_seeds_each_on_the_defaults() -> None:
    sweeps = resolved(quick=False)
    assert list(sweeps) == list(PROTOCOLS)
    for sweep in sweeps.values():
        assert sweep.seeds == list(range(SEEDS)) and sweep.grid["model.seed"] == [0, 1, 2]
        assert {run.config.model.seed for run in sweep.runs} == {0, 1, 2}
    erosion = sweeps["erosion"].runs[0].config
    assert erosion.attack == [] and erosion.cycles == 5 and erosion.topology.edge_weight == 0  # isolated
    assert erosion.training.steps == 60  # the defaults', whatever they are: nothing else is changed
    doses = sweeps["dose"]
    assert doses.grid["attack.0.examples"] == [1, 10, 100] and all(run.config.has_twin for run in doses.runs)
    shares = [run.config.defense[0].fraction for run in sweeps["rehearsal"].runs if run.config.defense]
    assert sorted(set(shares)) == [0.01, 0.03, 0.1]
    assert sweeps["accumulate"].runs[0].config.topology.name == "chain"


def test_settings_go_under_the_protocols_and_a_protocol_setting_is_refused(tmp_path: Path) -> None:
    assert user_settings(None, ["training.steps=120"]) == {"training.steps": 120}
    config = tmp_path / "config.toml"
    config.write_text('cycles = 9\n[training]\nsteps = 30\n[topology]\nname = "star"\n')
    assert user_settings(config, []) == {"training.steps": 30}  # a config file's graph and cycles give way
    sweeps = resolved(quick=True, settings={"training.steps": 7})
    assert {run.config.training.steps for sweep in sweeps.values() for run in sweep.runs} == {7}
    with pytest.raises(ConfigError, match=r"--set topology\.nodes: the calibration protocols set"):
        user_settings(None, ["topology.nodes=3"])


def cells(sweep: str, rows: list[dict]) -> pl.DataFrame:
    """One protocol's cells: a row per (base, seed) with the given figures; bases 0 and 1, seeds 0 and 1."""
    keys = [{"model.seed": base, "seed": seed} for base in (0, 1) for seed in (0, 1)]
    return pl.DataFrame([{"sweep": sweep, "cycles": 5, **key, **row} for key in keys for row in rows])


def by_label(rows: list[dict]) -> dict[str, dict]:
    return {row["label"]: row for row in rows}


def test_each_protocol_figure_against_its_target() -> None:
    erosion = cells("erosion", [{"refusal_retained": 0.6, "domain_helpfulness_gain": 0.25, "helpfulness_change": -0.1}])
    dose = pl.concat(
        [
            cells("dose", [{"attack.0.examples": 10, "refusal_lost": 0.4}]),
            cells("dose", [{"attack.0.examples": 100, "refusal_lost": 0.9}]),
        ]
    )
    rehearsal = pl.concat(
        [
            cells("rehearsal", [{"defense": "[]", "refusal_lost": 0.8, "twin_over_refusal": 0.0}]),
            cells(
                "rehearsal",
                [
                    {
                        "defense": '[{"fraction": 0.03, "kind": "rehearsal"}]',
                        "refusal_lost": 0.2,
                        "twin_over_refusal": 0.1,
                    }
                ],
            ),
        ]
    )
    accumulate = pl.concat(
        [
            cells("accumulate", [{"training.received": "replace", "downstream_refusal_lost": 0.5}]),
            cells("accumulate", [{"training.received": "accumulate", "downstream_refusal_lost": 0.4}]),
        ]
    )
    rows = by_label(measure(pl.concat([erosion, dose, rehearsal, accumulate], how="diagonal_relaxed")))
    assert list(rows) == ["benign erosion", "dose 10", "dose 100", "rehearsal 3%", "accumulate against replace"]
    assert rows["benign erosion"]["value"]["mean"] == pytest.approx(0.6) and rows["benign erosion"]["pass"] is True
    assert rows["benign erosion"]["details"]["own-domain helpfulness gain"]["mean"] == pytest.approx(0.25)
    assert (rows["dose 10"]["pass"], rows["dose 100"]["pass"]) == (False, True)
    assert rows["rehearsal 3%"]["value"]["mean"] == pytest.approx(0.75) and rows["rehearsal 3%"]["pass"] is True
    cost = rows["rehearsal 3%"]["details"]["over-refusal cost (its clean twin - share 0's)"]
    assert cost["mean"] == pytest.approx(0.1)
    accumulated = rows["accumulate against replace"]
    assert accumulated["value"]["mean"] == pytest.approx(0.2) and accumulated["pass"] is None  # a direction, no target
    for row in rows.values():
        assert (row["bases"], row["seeds"], row["value"]["seeds"]) == (2, 2, 4)
        assert row["anchor"] == {
            "citation": ANCHORS[row["protocol"]].citation,
            "published": ANCHORS[row["protocol"]].published,
        }


def test_the_report_shows_a_real_models_calibration_beside_the_organisms() -> None:
    organism = measure(
        cells("erosion", [{"refusal_retained": 0.6, "domain_helpfulness_gain": 0.2, "helpfulness_change": 0}])
    )
    organism += measure(cells("dose", [{"attack.0.examples": 10, "refusal_lost": 0.7}]))
    real = measure(
        cells("erosion", [{"refusal_retained": 1.0, "domain_helpfulness_gain": 0.0, "helpfulness_change": 0}])
    )
    calibration = {
        "quick": False,
        "settings": {},
        "protocols": organism,
        "real_model": real,
        "commit": "abc",
        "dirty": False,
        "cpu": "a CPU",
        "threads": 1,
        "versions": {"python": "3.11"},
        "seconds": 1.0,
        "compute_seconds": 30.0,
    }
    lines = calibration_report(calibration).splitlines()
    assert next(line for line in lines if line.startswith("| benign erosion |")).startswith(
        "| benign erosion | 0.60 [0.60, 0.60] | 1.00 [1.00, 1.00] |"
    )
    assert next(line for line in lines if line.startswith("| dose 10 |")).startswith(
        "| dose 10 | 0.70 [0.70, 0.70] | not measured |"
    )
    alone = calibration_report(calibration | {"real_model": None})
    assert "| benign erosion | 0.60 [0.60, 0.60] | not yet run |" in alone


@pytest.mark.usefixtures("ray_cluster")
def test_a_quick_calibration_writes_every_protocol_with_its_anchor_and_resumes(tmp_path: Path) -> None:
    out = tmp_path / "calibration"
    options = ["calibrate", "--quick", "--out", str(out), *(f"--set={setting}" for setting in TINY_SIZES)]
    result = CliRunner().invoke(app, options)
    assert result.exit_code == 0, result.output
    calibration = json.loads((out / "calibration.json").read_text())
    assert calibration["quick"] is True and calibration["quick_changes"]["bases"] == [0, 1]
    assert {"commit", "dirty", "cpu", "threads", "versions", "seconds", "compute_seconds"} <= set(calibration)
    rows = calibration["protocols"]
    assert [row["label"] for row in rows] == [
        "benign erosion",
        "dose 1",
        "dose 10",
        "dose 100",
        "rehearsal 1%",
        "rehearsal 3%",
        "rehearsal 10%",
        "accumulate against replace",
    ]
    assert all((row["bases"], row["seeds"]) == (2, 2) for row in rows)
    report = (out / "report.md").read_text()
    assert report.startswith("# Calibration of the organism (quick")
    assert "## What the quick version changed" in report and "| `training.steps` | `5` |" in report
    for row in rows:
        assert f"| {row['label']} |" in report and row["anchor"]["citation"] in report
        assert row["pass"] in ((True, False) if row["target"] else (None,))

    again = CliRunner().invoke(app, options)
    assert again.exit_code == 2 and "already holds results: --resume continues" in again.stderr
    resumed = CliRunner().invoke(app, [*options, "--resume"])
    assert resumed.exit_code == 0, resumed.output
    resumed_calibration = json.loads((out / "calibration.json").read_text())
    assert resumed_calibration["protocols"] == rows
    # a resume of finished runs computes nothing, yet still reports what its runs took
    assert resumed_calibration["compute_seconds"] == calibration["compute_seconds"] > 0


def test_bad_calibrations_are_refused_in_one_line_writing_nothing(tmp_path: Path) -> None:
    out = tmp_path / "calibration"
    for options in (["--set", "cycles=3"], ["--resume"], ["--set", "training.stepz=3"]):
        result = CliRunner().invoke(app, ["calibrate", "--quick", "--out", str(out), *options])
        assert result.exit_code == 2 and result.stderr.startswith("error: ")
        assert len(error_lines(result.stderr)) == 1
        assert not out.exists()


def test_a_finished_transfer_experiment_gives_its_real_models_erosion_and_dose(tmp_path: Path) -> None:
    losses = {"erosion": 0.1, "dose": 0.6, "star": 0.0, "chain": 0.4}
    frame = transfer_cells({"organism": losses | {"erosion": 0.5}, "smollm2": losses}, spread=0.0)
    frame.with_columns(domain_helpfulness_gain=None, helpfulness_change=0.0).write_parquet(tmp_path / "cells.parquet")
    (tmp_path / "verdict.json").write_text(json.dumps({"experiment": "transfer"}))
    rows = {row["label"]: row for row in read_calibration(tmp_path)}
    assert list(rows) == ["benign erosion", "dose 1", "dose 10", "dose 50"]
    assert rows["benign erosion"]["value"]["mean"] == pytest.approx(0.9)  # the real model's, not the organism's 0.5
    assert rows["dose 10"]["value"]["mean"] == pytest.approx(0.6) and rows["dose 10"]["seeds"] == 15
    (tmp_path / "verdict.json").write_text(json.dumps({"experiment": "chain"}))
    with pytest.raises(ResultsError, match="holds the experiment 'chain'"):
        read_calibration(tmp_path)
