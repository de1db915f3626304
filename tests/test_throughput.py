"""Throughput without other results: a run's companion runs on its hosts, passive waiting in every
process, and refusals that answer before torch or Ray load."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
import ray

from ecosystem import engine, run
from ecosystem import shard as shard_module
from ecosystem.hosting import shares_hosts
from ecosystem.results import RunDirectory
from tests.helpers import refused_in_a_fresh_process, small_config


def test_a_run_and_its_twin_and_control_load_the_base_once(tmp_path, monkeypatch) -> None:
    built = []
    shard = shard_module.Shard.__init__

    def counted(self, *args, **kwargs) -> None:
        built.append(self)
        shard(self, *args, **kwargs)

    monkeypatch.setattr(shard_module.Shard, "__init__", counted)
    config = small_config("evaluation.poison_control=true", "cycles=1", 'defense=[{kind="quarantine"}]')
    directory = RunDirectory(run(config, tmp_path / "defended").path)
    arms = [directory, directory.control, directory.twin, directory.control.twin]
    assert all(arm.read_manifest().status == "complete" for arm in arms)
    assert len(built) == 1  # one host in process: one shard for the four runs


def test_a_control_on_its_runs_hosts_equals_a_run_of_its_own(tmp_path) -> None:
    # the control drops the quarantine's probes, which the run's hosts had drawn
    defended = small_config("cycles=1", 'defense=[{kind="quarantine", threshold=0.9}]')
    control = RunDirectory(run(defended, tmp_path / "defended").path).control
    alone = run(small_config("cycles=1"), tmp_path / "alone")
    assert control.read_metrics().equals(alone.metrics)


@pytest.mark.usefixtures("ray_cluster")
def test_a_host_killed_in_the_twin_on_the_runs_hosts_is_restarted_for_the_twin(tmp_path, monkeypatch) -> None:
    """Ray restarts a host as it was first built, for the attacked run: it is configured for the twin again."""
    killed = []
    cycle_of = engine.optimization_cycle

    def kill_in_the_twin(cycle, hosts, *rest) -> tuple[dict, dict]:
        if not hosts.config.attack and cycle == 2 and not killed:
            ray.kill(hosts.actors[1], no_restart=False)
            killed.append(cycle)
        return cycle_of(cycle, hosts, *rest)

    monkeypatch.setattr(engine, "optimization_cycle", kill_in_the_twin)
    attacked = run(small_config("hosting.mode=ray", "evaluation.poison_control=true"), tmp_path / "attacked")
    twin = RunDirectory(attacked.path).twin
    assert killed == [2] and twin.read_manifest().recoveries >= 1
    clean = run(small_config("attack=[]"), tmp_path / "clean")  # in process, never disturbed
    assert twin.read_metrics().equals(clean.metrics)


def test_hosts_serve_a_run_only_with_its_base_world_and_evaluation_sets() -> None:
    config = small_config('defense=[{kind="quarantine"}]')
    assert shares_hosts(config, config.poison_free())
    assert shares_hosts(config, config.model_copy(update={"defense": []}))
    assert not shares_hosts(config, small_config("seed=7"))  # another adapter initialisation, another graph
    assert not shares_hosts(config, small_config("evaluation.prompts_per_set=20"))
    assert not shares_hosts(config, small_config("evaluation.backdoor=true"))


@pytest.mark.parametrize("policy", [None, "ACTIVE"])
def test_the_package_makes_openmp_wait_passively_unless_told_otherwise(policy) -> None:
    environment = {key: value for key, value in os.environ.items() if key != "OMP_WAIT_POLICY"}
    if policy:
        environment["OMP_WAIT_POLICY"] = policy
    script = "import os, ecosystem, torch; print(os.environ['OMP_WAIT_POLICY'])"
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, env=environment, check=True)
    assert done.stdout.strip() == (policy or "PASSIVE")


def bad_sweep(folder: Path) -> list[str]:
    (folder / "sweep.toml").write_text('seeds = 2\n[grid]\n"topology.nodes" = [4, "many"]\n')
    return ["sweep", str(folder / "sweep.toml"), "--out", str(folder / "out")]


REFUSALS = {
    "a missing run directory": lambda folder: ["run", "--resume", str(folder / "nowhere")],
    "a missing sweep file": lambda folder: ["sweep", str(folder / "none.toml"), "--out", str(folder / "out")],
    "a bad sweep file": bad_sweep,
    "a bad setting": lambda folder: ["run", "--set", "topology.nodes=many", "--out", str(folder / "out")],
}


@pytest.mark.parametrize("case", REFUSALS)
def test_refusals_that_need_no_model_load_neither_torch_nor_ray(case, tmp_path) -> None:
    ended, stderr = refused_in_a_fresh_process(REFUSALS[case](tmp_path))
    assert ended == ["2", "False", "False"]
    assert stderr.startswith("error: ") and stderr.count("\n") == 1
    assert not (tmp_path / "out").exists()
