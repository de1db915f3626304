"""The cycle loop: traffic → generate → exchange → poison → fine-tune → evaluate → record."""

from __future__ import annotations

import contextlib
import datetime
import importlib.metadata
import platform
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import networkx as nx
import polars as pl

import topologies
from ecosystem.analysis import summarize
from ecosystem.config import Config
from ecosystem.models.base import ensure_base_model
from ecosystem.results import RunDirectory
from ecosystem.seeding import Phase, rng
from ecosystem.shard import Shard
from ecosystem.training import Pair
from poisoning import attacked_nodes

PHASES = ("generate", "exchange", "train", "evaluate")
VERSIONED_PACKAGES = ("ecosystem-cascade", "torch", "transformers", "peft", "tokenizers", "networkx", "polars")

Progress = Callable[[str], None]


@dataclass
class RunResult:
    path: Path
    metrics: pl.DataFrame
    summary: dict[str, Any]


def exchange(graph: nx.DiGraph, outputs: dict[int, list[Pair]], seed: int, cycle: int) -> dict[int, list[Pair]]:
    """Along each edge u→v, v receives a random share (the edge weight) of u's pairs."""
    received: dict[int, list[Pair]] = {node: [] for node in graph}
    for sender, receiver, weight in sorted(graph.edges(data="weight")):
        pairs = outputs[sender]
        count = round(weight * len(pairs))
        chosen = rng(seed, cycle, sender, Phase.exchange, receiver).choice(len(pairs), size=count, replace=False)
        received[receiver] += [pairs[i] for i in sorted(chosen)]
    return received


def run(config: Config, out: str | Path, progress: Progress | None = None) -> RunResult:
    """Run the cascade that `config` describes into the results directory `out`."""
    report = progress or (lambda _: None)
    started = time.perf_counter()
    graph = topologies.build(config.topology.name, config.topology.nodes, config.topology.edge_weight)
    attacked = attacked_nodes(config.attack)
    hops = topologies.hops_from(graph, attacked)
    directory = RunDirectory(Path(out))
    manifest = _manifest(config)
    directory.create(config, manifest)
    try:
        report("building the aligned base model (cached)")
        base_dir = ensure_base_model(config.world, config.model)
        manifest["base_model"] = str(base_dir)
        shard = Shard(config, base_dir, {n: graph.nodes[n]["domain"] for n in graph})
        timings: dict[str, float] = dict.fromkeys(PHASES, 0.0)

        @contextlib.contextmanager
        def timed(phase: str) -> Iterator[None]:
            report(phase)
            begin = time.perf_counter()
            yield
            timings[phase] += time.perf_counter() - begin

        baseline_refusal: dict[int, float] = {}

        def record(cycle: int, figures: dict[int, dict], training: dict[int, dict]) -> pl.DataFrame:
            if cycle == 0:
                baseline_refusal.update({node: f["refusal_rate"] for node, f in figures.items()})
            rows = []
            for node in sorted(graph):
                drop = baseline_refusal[node] - figures[node]["refusal_rate"]
                rows.append(
                    {
                        "cycle": cycle,
                        "node": node,
                        "domain": graph.nodes[node]["domain"],
                        **figures[node],
                        "drifted": drop >= config.evaluation.drift_threshold,
                        "attacked": node in attacked,
                        "poison_examples": 0,
                        "pairs_received": 0,
                        "train_loss": None,
                        **training.get(node, {}),
                        "hops_from_attack": hops[node],
                        "in_degree": graph.in_degree(node),
                        "out_degree": graph.out_degree(node),
                    }
                )
            return directory.append(rows)

        with timed("evaluate"):
            metrics = record(0, shard.evaluate(), {})
        for cycle in range(1, config.cycles + 1):
            with timed("generate"):
                outputs = shard.generate(cycle)
            with timed("exchange"):
                received = exchange(graph, outputs, config.seed, cycle)
            with timed("train"):
                training = shard.train(cycle, received)
            with timed("evaluate"):
                metrics = record(cycle, shard.evaluate(), training)
        summary = summarize(metrics)
        directory.write_summary(summary)
        manifest.update(
            status="complete",
            finished=_now(),
            seconds={"total": round(time.perf_counter() - started, 2), **{k: round(v, 2) for k, v in timings.items()}},
        )
        directory.write_manifest(manifest)
        return RunResult(directory.path, metrics, summary)
    except BaseException as error:
        manifest.update(status="failed", finished=_now(), error=f"{type(error).__name__}: {error}")
        directory.write_manifest(manifest)
        raise


def _manifest(config: Config) -> dict[str, Any]:
    versions = {"python": platform.python_version()}
    for package in VERSIONED_PACKAGES:
        try:
            versions[package] = importlib.metadata.version(package)
        except importlib.metadata.PackageNotFoundError:
            versions[package] = None
    return {
        "status": "running",
        "started": _now(),
        "seed": config.seed,
        "world_seed": config.world.seed,
        "versions": versions,
    }


def _now() -> str:
    return datetime.datetime.now(datetime.UTC).isoformat(timespec="seconds")
