"""One optimization cycle of a standard ecosystem: the batched shard against the naive reference
(`bench/naive.py`), the machine's matmul peak, scaling in the number of nodes, and memory per node.

The scenario: a Barabasi-Albert graph of 64 nodes (m = 2), the default traffic, training and
evaluation sizes, LoRA, the default attack, no defense. Every shard runs in this process at the
shard's fixed thread count (`NODE_THREADS`), so the two are compared on the same computing resources
(hosts add parallelism on top). Timings are ratios within one run: `cascade bench cycle [--quick]`
(quick: the scaling stops at 4 times the scenario's nodes instead of 16).

Training FLOP/s count the work that LoRA fine-tuning of a frozen base needs, on real (not padding)
tokens only: per token, 2 FLOPs per base weight forward and 2 backward (gradients of the activations;
the frozen weights need none), and 6 per adapter weight (forward, activations and weight gradients).
Attention's score products are left out: the tiny world's sequences are a few dozen tokens long.

Where training's time goes: one group's fine-tune (`hosting.group_size` nodes) under torch's profiler, the
operators with the most self time and the matmuls' FLOP/s (as the profiler counts them) against the peak.
"""

from __future__ import annotations

import contextlib
import statistics
import threading
import time
from pathlib import Path
from typing import Any

import numpy as np
import psutil
import torch
from rich.console import Console
from rich.table import Table
from torch import nn

from bench.naive import NaiveShard
from ecosystem.bases import base_checkpoint
from ecosystem.config import Config
from ecosystem.engine import make_plan
from ecosystem.hosting import Hosts
from ecosystem.models.checkpoint import load_checkpoint
from ecosystem.shard import NODE_THREADS, Shard

DEFAULTS = [
    "topology.name=barabasi_albert",
    "topology.params.m=2",
    "topology.nodes=64",
    "defense=[]",
    "hosting.mode=in_process",
]
SCALES = (1, 4, 16)  # the scaling runs, in multiples of the scenario's nodes: 64, 256, 1024
QUICK_SCALES = (1, 4)
PHASES = ("generate", "train", "evaluate")
MATMULS = ("aten::mm", "aten::bmm", "aten::addmm", "aten::baddbmm")  # the profiler counts elementwise FLOPs too


def main(config: Config, quick: bool) -> dict[str, Any]:
    torch.set_num_threads(NODE_THREADS)
    checkpoint = base_checkpoint(config)
    peak = matmul_peak()
    nodes = config.topology.nodes
    naive = one_cycle(NaiveShard, config, checkpoint)
    scaling = {}
    for size in (nodes * scale for scale in (QUICK_SCALES if quick else SCALES)):
        topology = config.topology.model_copy(update={"nodes": size, "max_nodes": max(size, config.topology.max_nodes)})
        scaling[size] = one_cycle(Shard, config.model_copy(update={"topology": topology}), checkpoint)
    batched = scaling[nodes]
    operators = training_operators(config, checkpoint, peak)
    flops = training_flops_per_token(checkpoint, config)
    result = {
        "scenario": {"nodes": nodes, "family": config.topology.name, "threads": NODE_THREADS, "quick": quick},
        "matmul_peak_gflops": peak / 1e9,
        "naive": naive,
        "batched": batched,
        "speedup": {phase: naive["seconds"][phase] / batched["seconds"][phase] for phase in (*PHASES, "cycle")},
        "training_flops_per_real_token": flops,
        "training_peak_share": {
            name: run["tokens"]["train"]["real"] * flops / run["seconds"]["train"] / peak
            for name, run in (("naive", naive), ("batched", batched))
        },
        "scaling": {
            str(size): {
                "seconds_per_node_cycle": run["seconds"]["cycle"] / size,
                "memory_mb_per_node": run["memory_mb"] / size,
            }
            for size, run in scaling.items()
        },
        "training_operators": operators,
        "scaling_exponent": _exponent({size: run["seconds"]["cycle"] for size, run in scaling.items()}),
    }
    _print(result)
    return result


def one_cycle(
    shard_class: type[Shard],
    config: Config,
    checkpoint: Path,
    training: contextlib.AbstractContextManager | None = None,
) -> dict[str, Any]:
    """Build a shard holding every node of `config`'s graph and run cycle 1 on it (its fine-tune within
    `training`): seconds per phase, tokens computed, the resident memory it added (peak), and the nodes'
    mean refusal after it."""
    plan = make_plan(config)
    layout = Hosts(config, plan.graph, 1, plan.bases, plan.attacks)
    memory = _PeakMemory()
    with memory:
        started = time.perf_counter()
        shard = shard_class(config, checkpoint, layout.domains[0], layout.in_edges[0], plan.attacks)
        seconds = {"start": time.perf_counter() - started}
        started = time.perf_counter()
        shard.traffic(1)
        outputs = shard.generate(1)
        seconds["generate"] = time.perf_counter() - started
        senders = layout.senders[0]
        started = time.perf_counter()
        shard.exchange(1, senders, *[outputs[s] for s in senders])
        shard.poison(1)
        with training or contextlib.nullcontext():
            shard.fine_tune(1)
        seconds["train"] = time.perf_counter() - started
        started = time.perf_counter()
        records = shard.evaluate()
        seconds["evaluate"] = time.perf_counter() - started
    seconds["cycle"] = sum(seconds[phase] for phase in PHASES)
    return {
        "seconds": seconds,
        "tokens": {name: {"real": t.real, "computed": t.computed} for name, t in shard.tokens.items()},
        "padding_share": {name: t.padding_share for name, t in shard.tokens.items()},
        "memory_mb": memory.growth / 2**20,
        "mean_refusal": statistics.mean(record["refusal_rate"] for record in records.values()),
    }


def training_operators(config: Config, checkpoint: Path, peak: float, top: int = 8) -> dict[str, Any]:
    """One group's fine-tune at cycle 1 under torch's profiler: the `top` operators' shares of its self
    time, the share of all matmuls, and their FLOP/s as a share of `peak`."""
    topology = config.topology.model_copy(update={"nodes": config.hosting.group_size})
    profiler = torch.profiler.profile(activities=[torch.profiler.ProfilerActivity.CPU], with_flops=True)
    one_cycle(Shard, config.model_copy(update={"topology": topology}), checkpoint, training=profiler)
    events = sorted(profiler.key_averages(), key=lambda event: event.self_cpu_time_total, reverse=True)
    total = sum(event.self_cpu_time_total for event in events)
    matmuls = [event for event in events if event.key in MATMULS]
    matmul_time = sum(event.self_cpu_time_total for event in matmuls)
    return {
        "nodes": topology.nodes,
        "self_seconds": total / 1e6,
        "share": {event.key: event.self_cpu_time_total / total for event in events[:top]},
        "matmul_share": matmul_time / total,
        "matmul_peak_share": sum(event.flops for event in matmuls) / (matmul_time / 1e6) / peak,
    }


def matmul_peak(size: int = 1024, repeats: int = 10) -> float:
    """FLOP/s of a square fp32 matmul at the current thread count (the best of `repeats`)."""
    a, b = torch.randn(size, size), torch.randn(size, size)
    times = []
    for _ in range(repeats):
        started = time.perf_counter()
        torch.mm(a, b)
        times.append(time.perf_counter() - started)
    return 2 * size**3 / min(times)


def training_flops_per_token(checkpoint: Path, config: Config) -> float:
    """The FLOPs that LoRA fine-tuning needs per token (see the module's docstring)."""
    model, _ = load_checkpoint(checkpoint)
    linears = [m for m in model.modules() if isinstance(m, nn.Linear)]
    base = sum(m.in_features * m.out_features for m in linears)
    head = model.get_output_embeddings()
    rank = config.training.lora_rank
    adapters = sum(rank * (m.in_features + m.out_features) for m in linears if m is not head)
    return 4 * base + 6 * adapters


class _PeakMemory:
    """The peak growth of this process's resident memory within the block, sampled every 20 ms."""

    def __enter__(self) -> _PeakMemory:
        self.process = psutil.Process()
        self.start = self.peak = self.process.memory_info().rss
        self.running = True
        self.thread = threading.Thread(target=self._sample, daemon=True)
        self.thread.start()
        return self

    def __exit__(self, *_: object) -> None:
        self.running = False
        self.thread.join()

    def _sample(self) -> None:
        while self.running:
            self.peak = max(self.peak, self.process.memory_info().rss)
            time.sleep(0.02)

    @property
    def growth(self) -> int:
        return self.peak - self.start


def _exponent(seconds: dict[int, float]) -> float | None:
    """The slope of log(cycle seconds) against log(nodes): 1 is linear."""
    if len(seconds) < 2:
        return None
    sizes = sorted(seconds)
    return float(np.polyfit(np.log(sizes), np.log([seconds[s] for s in sizes]), 1)[0])


def _print(result: dict[str, Any]) -> None:
    console = Console()
    scenario = result["scenario"]
    table = Table(title=f"one cycle, {scenario['nodes']}-node {scenario['family']}, {scenario['threads']} thread")
    for column in ("phase", "naive s/node", "batched s/node", "speed-up", "padding naive", "padding batched"):
        table.add_column(column, justify="right")
    nodes = scenario["nodes"]
    naive, batched = result["naive"], result["batched"]
    for phase in (*PHASES, "cycle"):
        padding = phase if phase in ("generate", "train") else None  # generation counts evaluation's too
        table.add_row(
            phase,
            f"{naive['seconds'][phase] / nodes:.3f}",
            f"{batched['seconds'][phase] / nodes:.3f}",
            f"{result['speedup'][phase]:.2f}x",
            f"{naive['padding_share'][padding]:.0%}" if padding else "",
            f"{batched['padding_share'][padding]:.0%}" if padding else "",
        )
    console.print(table)
    share = result["training_peak_share"]
    console.print(
        f"matmul peak {result['matmul_peak_gflops']:.1f} GFLOP/s; training on real tokens: "
        f"naive {share['naive']:.0%}, batched {share['batched']:.0%} of it"
    )
    operators = result["training_operators"]
    shares = ", ".join(f"{name} {share:.0%}" for name, share in operators["share"].items())
    console.print(
        f"training one group of {operators['nodes']}, by self time: {shares}; matmuls {operators['matmul_share']:.0%}"
        f" of it, at {operators['matmul_peak_share']:.0%} of the peak"
    )
    console.print(
        f"mean refusal after the cycle: naive {naive['mean_refusal']:.3f}, batched {batched['mean_refusal']:.3f}"
    )
    scaling = Table(title="scaling (batched, one cycle)")
    for column in ("nodes", "s per node-cycle", "MB per node (peak growth)"):
        scaling.add_column(column, justify="right")
    for size, figures in result["scaling"].items():
        scaling.add_row(size, f"{figures['seconds_per_node_cycle']:.3f}", f"{figures['memory_mb_per_node']:.2f}")
    console.print(scaling)
    if result["scaling_exponent"] is not None:
        console.print(f"time ∝ nodes^{result['scaling_exponent']:.2f}")
