"""Experiments: one `--quick` experiment runs end to end through the CLI, every experiment file resolves, `--set`
goes into every sweep, and `training.received = "accumulate"` keeps earlier pairs (and resumes exactly). Each
verdict rule's own tests are in `tests/rules/`."""

from __future__ import annotations

import json
import re
from pathlib import Path

import polars as pl
import pytest
from typer.testing import CliRunner

from ecosystem import run
from ecosystem.cli import app
from ecosystem.config import ConfigError
from ecosystem.engine import resume
from ecosystem.experiments import load_experiment, names
from ecosystem.progress import Stage, StageStart
from ecosystem.results import cpu_model
from ecosystem.verdicts import VERDICTS
from tests.helpers import error_lines, read_manifest, small_config

# ---- end to end, and training.received


@pytest.mark.usefixtures("ray_cluster")
def test_a_quick_experiment_runs_end_to_end_and_resumes(tmp_path: Path) -> None:
    out = tmp_path / "chain"
    result = CliRunner().invoke(app, ["experiment", "chain", "--quick", "--out", str(out)])
    assert result.exit_code == 0, result.output
    verdict = json.loads((out / "verdict.json").read_text())
    assert verdict["quick"] is True and verdict["experiment"] == "chain"
    findings = verdict["findings"]
    assert [finding["verdict"] in VERDICTS for finding in findings] == [True] * 4
    # each figure says what it rests on: 2 bases of 1 seed per cell in the quick version
    assert {(figure["bases"], figure["seeds"]) for finding in findings for figure in finding["figures"].values()} == {
        (2, 2)
    }
    tested = [finding for finding in findings if finding["p_value"] is not None]
    assert all(finding["p_value"] <= finding["p_holm"] <= 1 for finding in tested)
    assert all(finding["verdict"] == "inconclusive" for finding in findings if finding["p_value"] is None)
    (made,) = verdict["provenance"]  # one commit, CPU and thread count made every run
    assert made["runs"] == 4 and made["threads"] == 1 and made["cpu"]
    assert verdict["compute_seconds"] == pytest.approx(sum(verdict["compute_seconds_per_part"].values()))
    report = (out / "report" / "report.md").read_text()
    assert report.startswith("# Experiment `chain`") and "(quick" in report
    assert "## What the quick version changed" in report and "| sweep `chain` | `base.cycles` | `2` |" in report
    assert "| claim | verdict | p-value | Holm-adjusted |" in report
    assert "2 bases \N{MULTIPLICATION SIGN} 1 seeds" in report
    cells_written = pl.read_parquet(out / "cells.parquet")
    assert cells_written["sweep"].unique().to_list() == ["chain"]
    assert sorted(cells_written["training.steps"].to_list()) == [20, 20, 60, 60]

    again = CliRunner().invoke(app, ["experiment", "chain", "--quick", "--out", str(out)])
    assert again.exit_code == 0, again.output
    assert pl.read_parquet(out / "cells.parquet").drop("run").equals(cells_written.drop("run"))

    other = CliRunner().invoke(app, ["experiment", "systemic", "--quick", "--out", str(out)])
    assert other.exit_code == 2 and "holds a run of experiment 'chain' (quick)" in other.stderr
    assert len(error_lines(other.stderr)) == 1


def test_the_recorded_cpu_names_its_family_where_the_kernel_gives_one() -> None:
    """A virtual machine's CPU name ("AMD EPYC") is the same for CPU types that give different bits and speeds."""
    cpuinfo = Path("/proc/cpuinfo")
    if not cpuinfo.is_file() or "cpu family" not in cpuinfo.read_text():
        pytest.skip("the kernel names no CPU family here")
    assert re.fullmatch(r".+ \(family \d+, model \d+\)", cpu_model()), cpu_model()


def test_an_unknown_experiment_is_refused_naming_the_available_ones(tmp_path: Path) -> None:
    result = CliRunner().invoke(app, ["experiment", "nosuch", "--out", str(tmp_path / "x")])
    assert result.exit_code == 2
    assert result.stderr.strip() == f"error: no experiment 'nosuch'; available: {', '.join(names())}"
    assert not (tmp_path / "x").exists()


@pytest.mark.parametrize("name", names())
def test_every_experiment_file_resolves_in_full_and_quick(name: str) -> None:
    for quick in (False, True):
        experiment = load_experiment(name, quick)
        assert experiment.spec["rule"].strip().startswith("Pre-registered before any full run")
        for part in experiment.spec["sweeps"].values():
            real = part.get("base", {}).get("world.kind") == "checkpoint"  # a real model is one base
            assert quick or part["seeds"] >= (3 if real else 9), "v2: 3 bases of 3 seeds at least (a real model: 3)"


def test_accumulating_nodes_train_on_every_pair_they_have_received(tmp_path: Path) -> None:
    config = small_config("cycles=3", "training.received=accumulate")
    metrics = run(config, tmp_path / "run").metrics
    trained = metrics.filter(pl.col("cycle") > 0).sort("node", "cycle")
    for (node,), rows in trained.group_by("node"):
        received = rows["pairs_received"].cum_sum()
        own_and_poison = config.training.own_examples + rows["poison_examples"]
        assert rows["pairs_trained"].to_list() == (own_and_poison + received).to_list(), node
        assert rows["pairs_trained"].is_sorted() and rows["pairs_received"].min() > 0


def test_an_accumulating_run_resumes_to_the_metrics_of_an_uninterrupted_one(tmp_path: Path) -> None:
    config = small_config("cycles=3", "training.received=accumulate")

    def stop_in_cycle_2(start: StageStart) -> None:
        if start.stage is Stage.generate and start.cycle == 2:
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        run(config, tmp_path / "stopped", stop_in_cycle_2)
    resumed = resume(tmp_path / "stopped")
    assert [r.after_cycle for r in read_manifest(tmp_path / "stopped").resumed] == [1]
    assert resumed.metrics.equals(run(config, tmp_path / "uninterrupted").metrics)


def test_settings_given_with_set_go_into_every_sweeps_base_and_make_another_experiment() -> None:
    plain = load_experiment("transfer")
    on_gpu = load_experiment("transfer", overrides=["generation.engine=vllm", "hosting.num_gpus=1"])
    assert on_gpu.fingerprint != plain.fingerprint and on_gpu.spec["overrides"] == [
        "generation.engine=vllm",
        "hosting.num_gpus=1",
    ]
    for sweep in on_gpu.sweeps.values():
        assert {run.config.generation.engine for run in sweep.runs} == {"vllm"}
    assert {run.config.hosting.num_gpus for run in on_gpu.sweeps["smollm2"].runs} == {1.0}
    # the real model's own evaluation size gives way to the override, the organism's too
    bigger = load_experiment("transfer", overrides=["evaluation.prompts_per_set=100"])
    assert {run.config.evaluation.prompts_per_set for run in bigger.sweeps["smollm2"].runs} == {100}
    with pytest.raises(ConfigError, match="sweep organism varies it"):
        load_experiment("transfer", overrides=["cycles=3"])
    with pytest.raises(ConfigError, match="unknown key"):
        load_experiment("transfer", overrides=["training.nosuch=3"])


def test_a_full_experiment_warns_where_a_cell_runs_too_few_seeds_to_decide_alone() -> None:
    """`transfer`'s real-model arm runs 3 seeds a cell: no test on one of its cells can reach p < 0.05 (found after
    its full run, whose four verdicts were inconclusive for it). Every other full experiment runs enough."""
    [warning] = load_experiment("transfer").too_few_seeds()
    assert warning.startswith("sweep smollm2: 3 seeds per cell") and "0.5^3 = 0.125" in warning
    assert not [name for name in names() if name != "transfer" and load_experiment(name).too_few_seeds()]


def test_the_warning_comes_before_the_run_and_a_refusal_after_it_changes_nothing(tmp_path: Path) -> None:
    (tmp_path / "experiment.json").write_text(json.dumps({"experiment": "transfer", "quick": True, "fingerprint": "0"}))
    before = (tmp_path / "experiment.json").read_bytes()
    result = CliRunner().invoke(app, ["experiment", "transfer", "--out", str(tmp_path)])
    assert result.exit_code == 2 and result.output.startswith("warning: sweep smollm2: 3 seeds per cell")
    assert "differs from this one" in result.output and (tmp_path / "experiment.json").read_bytes() == before
    assert [path.name for path in tmp_path.iterdir()] == ["experiment.json"]
