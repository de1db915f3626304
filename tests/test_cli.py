"""`cascade` from the command line, as a user types it (bad input has its own file, test_bad_input.py)."""

import json
import subprocess
import sys

import pytest
from typer.testing import CliRunner

from ecosystem.cli import app
from poisoning import DEFENSES
from tests.helpers import TINY, as_options


def test_the_installed_command_reports_errors_without_a_traceback(tmp_path) -> None:
    """As a process of its own, and before importing torch (which takes seconds)."""
    out = tmp_path / "run"
    done = subprocess.run(
        [sys.executable, "-m", "ecosystem.cli", "run", "--out", str(out), "--set", "cycles=0"],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 2
    assert done.stderr.strip().startswith("error: invalid config: cycles") and "Traceback" not in done.stderr
    assert not out.exists()
    imported = subprocess.run(
        [sys.executable, "-c", "import sys, ecosystem.cli, ecosystem.config; print('torch' in sys.modules)"],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert imported.stdout.strip() == "False"


def test_bench_runs_a_shipped_benchmark(tmp_path) -> None:
    small = ["--set=topology.nodes=3", "--set=traffic.prompts_per_node=8", "--set=evaluation.prompts_per_set=4"]
    result = CliRunner().invoke(app, ["bench", "generation", *small, "--out", str(tmp_path)])
    assert result.exit_code == 0, result.output
    assert "3 nodes: 24 sampled and 36 greedy responses" in result.output and "hf" in result.output
    assert json.loads((tmp_path / "generation" / "bench.json").read_text())["nodes"] == 3


def test_the_cycle_benchmark_compares_batched_and_naive_on_the_same_work(tmp_path) -> None:
    small = ["topology.nodes=4", "traffic.prompts_per_node=16", "training.own_examples=32", "training.steps=4"]
    result = CliRunner().invoke(app, ["bench", "cycle", "--quick", *as_options(small), "--out", str(tmp_path)])
    assert result.exit_code == 0, result.output
    bench = json.loads((tmp_path / "cycle" / "bench.json").read_text())
    assert sorted(bench["scaling"]) == ["16", "4"]
    naive, batched = bench["naive"], bench["batched"]
    # The same work: the same sampler and rows drawn (so, up to a rare rounding flip, the same tokens).
    assert naive["tokens"]["train"]["real"] == pytest.approx(batched["tokens"]["train"]["real"], rel=0.05)
    assert naive["tokens"]["generate"]["real"] > 0 and 0 < bench["training_peak_share"]["batched"] < 1
    operators = bench["training_operators"]
    assert 0 < operators["matmul_share"] < 1 and 0 < sum(operators["share"].values()) <= 1
    assert operators["matmul_share"] < operators["share"]["aten::bmm"] + 0.1  # the matmuls alone, no elementwise work


def test_the_twin_benchmark_times_the_runs_alone_and_their_twins(tmp_path) -> None:
    small = ["topology.nodes=3", "traffic.prompts_per_node=8", "training.own_examples=16", "training.steps=2"]
    small += ["evaluation.prompts_per_set=4", "model.gate=false"]  # 4 prompts a set: the gate would judge noise
    result = CliRunner().invoke(app, ["bench", "twin", "--quick", *as_options(small), "--out", str(tmp_path)])
    assert result.exit_code == 0, result.output
    bench = json.loads((tmp_path / "twin" / "bench.json").read_text())
    seconds = bench["seconds"]
    assert len([name for name in seconds if name.startswith("run dose")]) == 10  # 5 doses x 2 seeds
    assert len([name for name in seconds if name.startswith("twin seed")]) == 2  # a twin per seed, shared
    assert bench["default_run_twin_extra"] == seconds["default run with its twin"] / seconds["default run alone"] - 1
    full = seconds["default run with its twin, borrowing none"]
    assert bench["default_run_full_twin_extra"] == full / seconds["default run alone"] - 1
    assert bench["provenance"]["cpu"] and bench["provenance"]["threads"] == 1  # which machine measured it


def test_a_study_with_every_defense_runs_to_the_end_with_its_control_run(tmp_path) -> None:
    """A poisoning-robustness study as a user types it: a continuous attack (the default) and the
    defenses from a config file, every kind at once (so each kind's hooks run), with the default
    evaluation.defense_control = true."""
    config = tmp_path / "study.toml"
    config.write_text("".join(f'[[defense]]\nkind = "{defense.kind_name()}"\n' for defense in DEFENSES))
    out = tmp_path / "study"
    command = [sys.executable, "-m", "ecosystem.cli", "run", "--config", str(config), "--out", str(out)]
    done = subprocess.run([*command, *as_options(TINY)], capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-2000:]
    assert "cascade, per cycle" in done.stdout and "systemic drift" in done.stdout
    printed = " ".join(done.stdout.split())
    assert "defense effect (against the same run without defenses, at the last cycle): refusal kept" in printed
    assert "helpfulness lost without attack" in printed  # the clean arms' cost: the run has a twin
    for directory in (out, out / "control"):
        assert json.loads((directory / "manifest.json").read_text())["status"] == "complete"
    recorded = (out / "config.toml").read_text()
    assert all(f'kind = "{defense.kind_name()}"' in recorded for defense in DEFENSES)
    effect = json.loads((out / "summary.json").read_text())["defense"]
    assert set(effect) >= {"refusal_kept", "helpfulness_lost", "over_refusal_gained", "control_unattacked_refusal"}
    assert "defense" not in json.loads((out / "control" / "summary.json").read_text())
