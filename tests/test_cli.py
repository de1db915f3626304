"""`cascade` from the command line: bad input gets a clear one-line error, exit code 2 and no results
written; every defense kind runs to the end with its control run."""

import json
import subprocess
import sys

import pytest
from typer.testing import CliRunner

from ecosystem.cli import app
from poisoning import DEFENSES
from tests.helpers import TINY, as_options

BAD_OVERRIDES = {
    "unknown key": (["--set", "topology.nodez=3"], "unknown key 'topology.nodez'"),
    "negative count": (["--set", "traffic.prompts_per_node=-5"], "traffic.prompts_per_node"),
    "negative dose": (["--set", "attack.0.examples=-1"], "attack.0.examples"),
    "missing target": (["--set", "attack.0.targets=[9]"], "node 9 does not exist"),
    "harmful fraction above 1": (["--set", "traffic.harmful_fraction=1.5"], "traffic.harmful_fraction"),
    "fractions above 1 together": (
        ["--set", "traffic.harmful_fraction=0.6", "--set", "traffic.borderline_fraction=0.6"],
        "harmful_fraction + borderline_fraction",
    ),
    "unknown topology": (["--set", "topology.name=moebius"], "unknown topology 'moebius'"),
    "attack past the last cycle": (["--set", "attack.0.cycles=[9]"], "cycle 9 is outside 1..5"),
    "malformed override": (["--set", "cycles"], "must look like section.key=value"),
    "unknown attack kind": (["--set", 'attack.0.kind="phishing"'], "valid kinds: harmful_compliance, backdoor"),
    "unknown defense kind": (["--set", 'defense.0.kind="prayer"'], "valid kinds: guard_filter, rehearsal"),
    "defense on a missing node": (
        ["--set", 'defense.0.kind="anchor"', "--set", "defense.0.nodes=[12]"],
        "defense.0.nodes: node 12 does not exist",
    ),
    "schedule past the last cycle": (["--set", "attack.0.start=7"], "attack.0.start: cycle 7 is past the last cycle"),
    "too many random targets": (["--set", 'attack.0.targets="random"', "--set", "attack.0.count=9"], "9 targets"),
    "full fine-tuning with vllm": (
        ["--set", "generation.engine=vllm", "--set", "training.method=full"],
        "set training.method = 'lora' or generation.engine = 'hf'",
    ),
    "unknown world kind": (["--set", "world.kind=gpt"], "unknown world kind; valid kinds: tiny, checkpoint"),
    "the old name of the checkpoint world": (["--set", "world.kind=hf"], 'set world.kind = "checkpoint"'),
    "real model without its files": (["--set", "world.kind=checkpoint"], "world.model_path: Field required"),
    "real model that is not there": (
        ["--set", "world.kind=checkpoint"]
        + [f"--set=world.{key}=/nowhere/file" for key in ("model_path", "harmful_prompts", "borderline_prompts")]
        + ["--set=world.task_data=/nowhere/file"],
        "/nowhere/file is not a local HF checkpoint directory",
    ),
}


def assert_refused(result, expected: str, out) -> None:
    assert result.exit_code == 2, result.output
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error:"), result.stderr
    assert expected in lines[0]
    assert not out.exists()


@pytest.mark.parametrize("case", BAD_OVERRIDES)
def test_bad_overrides_are_refused_with_one_line(case, tmp_path) -> None:
    arguments, expected = BAD_OVERRIDES[case]
    out = tmp_path / "run"
    result = CliRunner().invoke(app, ["run", "--out", str(out), *arguments])
    assert_refused(result, expected, out)


def test_an_unreadable_config_file_is_refused(tmp_path) -> None:
    out = tmp_path / "run"
    result = CliRunner().invoke(app, ["run", "--config", str(tmp_path / "missing.toml"), "--out", str(out)])
    assert_refused(result, "cannot read config file", out)


@pytest.mark.parametrize(
    ("text", "expected"),
    [("cycles = [unclosed\n", "is not valid TOML"), ("[trafic]\nprompts_per_node = 10\n", "unknown key 'trafic'")],
    ids=["not toml", "unknown section"],
)
def test_a_bad_config_file_is_refused(tmp_path, text, expected) -> None:
    config = tmp_path / "bad.toml"
    config.write_text(text)
    out = tmp_path / "run"
    result = CliRunner().invoke(app, ["run", "--config", str(config), "--out", str(out)])
    assert_refused(result, expected, out)


def test_a_used_results_directory_is_refused_and_left_intact(tmp_path) -> None:
    out = tmp_path / "run"
    out.mkdir()
    (out / "metrics.parquet").write_bytes(b"earlier results")
    result = CliRunner().invoke(app, ["run", "--out", str(out)])
    assert result.exit_code == 2 and "not empty" in result.stderr
    assert [p.name for p in out.iterdir()] == ["metrics.parquet"]
    assert (out / "metrics.parquet").read_bytes() == b"earlier results"


def test_the_installed_command_reports_errors_without_a_traceback(tmp_path) -> None:
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


def test_bench_runs_a_benchmark_and_refuses_an_unknown_one() -> None:
    result = CliRunner().invoke(app, ["bench", "nope"])
    assert result.exit_code == 2 and "no benchmark 'nope'" in result.stderr and "available: generation" in result.stderr
    small = ["--set=topology.nodes=3", "--set=traffic.prompts_per_node=8", "--set=evaluation.prompts_per_set=4"]
    result = CliRunner().invoke(app, ["bench", "generation", *small])
    assert result.exit_code == 0, result.output
    assert "3 nodes: 24 sampled and 36 greedy responses" in result.output and "hf" in result.output


@pytest.mark.parametrize("kind", [defense.kind_name() for defense in DEFENSES])
def test_every_defense_runs_to_the_end_with_its_control_run(kind, tmp_path) -> None:
    """A poisoning-robustness study as a user types it: a continuous attack (the default) and a defense
    from a config file, with the default evaluation.defense_control = true."""
    config = tmp_path / "study.toml"
    config.write_text(f'[[defense]]\nkind = "{kind}"\n')
    out = tmp_path / kind
    command = [sys.executable, "-m", "ecosystem.cli", "run", "--config", str(config), "--out", str(out)]
    done = subprocess.run([*command, *as_options(TINY)], capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-2000:]
    assert "cascade, per cycle" in done.stdout and "systemic drift" in done.stdout
    for directory in (out, out / "control"):
        assert json.loads((directory / "manifest.json").read_text())["status"] == "complete"
    effect = json.loads((out / "summary.json").read_text())["defense"]
    assert set(effect) >= {"refusal_kept", "helpfulness_lost", "over_refusal_gained", "control_unattacked_refusal"}
    assert "defense" not in json.loads((out / "control" / "summary.json").read_text())
