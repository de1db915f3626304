"""The cycle loop: traffic → generate → exchange → poison → fine-tune → evaluate → record.

The driver runs each stage on every host (`optimization_cycle`), records one row per node per
cycle, and checkpoints every node after every cycle, so that a run can be resumed and a failed
host recovered with results identical to an undisturbed run.
"""

from __future__ import annotations

import contextlib
import functools
import importlib.util
import os
import shutil
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import networkx as nx
import polars as pl

import poisoning
import topologies
from ecosystem.analysis import (
    causal_horizon_breaches,
    clean_cost,
    defense_effect,
    drifted,
    infection_summary,
    mean_per_cycle,
    poison_reaches,
    reproduction_by_generation,
    summarize,
    transmission_tree,
    with_twin,
)
from ecosystem.bases import base_checkpoint, open_world
from ecosystem.bases.cache import check_cache
from ecosystem.bases.real import alignment_table
from ecosystem.config import Config, ConfigError, HostingConfig
from ecosystem.gate import BaseRefused, check_gate
from ecosystem.generation.vllm_engine import INSTALL_HINT
from ecosystem.hosting import Hosts, InProcessHosts, RayHosts, host_count, ray_session, shares_hosts
from ecosystem.progress import Progress, Stage, StageClock
from ecosystem.results import (
    METRICS_SCHEMA,
    Manifest,
    Resumption,
    RunDirectory,
    RunResult,
    Status,
    edges_frame,
    fingerprint,
    metrics_frame,
    now,
    package_versions,
    provenance,
)
from ecosystem.shard import NODE_THREADS, RESPONSES
from poisoning import Attack


def run(
    config: Config,
    out: str | Path,
    progress: Progress | None = None,
    twin: str | Path | None = None,
    hosts: Hosts | None = None,
) -> RunResult:
    """Run the cascade that `config` describes into the new results directory `out`. An attacked run's
    poison-free twin is computed into `out/twin`, unless `twin` names a finished one to measure against
    (a sweep's runs share their twins). A companion run computes on its parent's `hosts` where they serve."""
    directory = RunDirectory(out)
    directory.ensure_empty()
    plan = make_plan(config)  # before anything is written: a bad target fails here
    with _cluster(config, plan), directory.lock():  # so do hosts that cannot be placed
        manifest = _manifest(config)
        manifest.twin = None if twin is None else str(Path(twin).resolve())
        directory.create(config, manifest)
        if twin is not None:  # twin/ names it, for whoever reads the run
            directory.twin.path.symlink_to(os.path.relpath(manifest.twin, directory.path), target_is_directory=True)
        try:
            return _drive(config, plan, directory, manifest, None, progress, hosts, None)
        except BaseRefused:
            directory.clear()  # a refused base leaves nothing: the same command may follow with model.gate = false
            raise


def resume(
    out: str | Path,
    progress: Progress | None = None,
    hosting: HostingConfig | None = None,
    hosts: Hosts | None = None,
    loans: dict[int, Loan] | None = None,
) -> RunResult:
    """Continue the run in `out` from its last complete cycle (optionally placed differently; a companion run
    on its parent's `hosts` where they serve; a twin with the `loans` of its run, by cycle)."""
    directory = RunDirectory(out)
    directory.refuse_if_live()
    config, _, _ = directory.resumable(hosting)  # a refusal touches nothing, not even the lock
    plan = make_plan(config)
    with directory.lock():
        config, manifest, checkpoint = directory.resumable(hosting)  # again: another process may have resumed it
        manifest.resumed.append(Resumption(at=now(), after_cycle=checkpoint[0]))
        with _cluster(config, plan):
            return _drive(config, plan, directory, manifest, checkpoint, progress, hosts, loans)


@dataclass
class Plan:
    """The run's graph, its attacks resolved on it, and each node's base (an index into `config.bases`)."""

    graph: nx.DiGraph
    attacks: list[Attack]
    bases: dict[int, int]


def make_plan(config: Config) -> Plan:
    open_world(config)  # a real model's checkpoint and prompt files are checked here, before anything starts
    check_cache()
    if config.generation.engine == "vllm" and importlib.util.find_spec("vllm") is None:
        raise ConfigError(f"generation.engine = 'vllm': {INSTALL_HINT}")
    graph = config.topology.graph(config.seed)
    return Plan(graph, poisoning.resolve(config.attack, graph, config.seed), config.node_bases(graph))


class Recorder:
    """The run's records: one row per node per cycle (metrics, with the node's attributes in the
    graph), and one per edge per cycle (what flowed along it), written after every cycle."""

    def __init__(self, config: Config, plan: Plan, directory: RunDirectory, upto: int | None) -> None:
        self.threshold = config.evaluation.drift_threshold
        self.graph = plan.graph
        self.directory = directory
        self.attacked = poisoning.attacked_nodes(plan.attacks)
        self.hops = topologies.hops_from(plan.graph, self.attacked)
        self.measures = topologies.node_measures(plan.graph)
        self.base_names = {node: config.bases[base].name for node, base in plan.bases.items()}
        self.rows: list[dict[str, Any]] = []
        self.edges: list[dict[str, Any]] = []
        if upto is not None:  # resuming: the rows up to the checkpoint; a later cycle's is computed again
            self.rows = directory.read_metrics().filter(pl.col("cycle") <= upto).to_dicts()
            self.edges = directory.read_edges().filter(pl.col("cycle") <= upto).to_dicts()

    @property
    def metrics(self) -> pl.DataFrame:
        return metrics_frame(self.rows)

    def record(self, cycle: int, figures: dict[int, dict], training: dict[int, dict]) -> None:
        baseline = {row["node"]: row["refusal_rate"] for row in self.rows if row["cycle"] == 0}
        responses = [
            {"cycle": cycle, "node": node, **response}
            for node in sorted(self.graph)
            for response in figures[node].get(RESPONSES, [])
        ]
        if responses:
            self.directory.write_responses(cycle, responses)
        for node in sorted(self.graph):
            trained = dict(training.get(node, {}))
            for flow in trained.pop("edges", []):
                weight = self.graph.edges[flow["sender"], flow["receiver"]]["weight"]
                self.edges.append({"cycle": cycle, **flow, "weight": weight})
            refusal = figures[node]["refusal_rate"]
            self.rows.append(
                {
                    "cycle": cycle,
                    "node": node,
                    "domain": self.graph.nodes[node]["domain"],
                    "base": self.base_names[node],
                    **{key: value for key, value in figures[node].items() if key != RESPONSES},
                    "drifted": drifted(baseline.get(node, refusal), refusal, self.threshold),
                    "attacked": node in self.attacked,
                    **trained,
                    "hops_from_attack": self.hops[node],
                    **self.measures[node],
                }
            )
        self.directory.write_metrics(self.metrics)
        self.directory.write_edges(edges_frame(self.edges))


def _drive(
    config: Config,
    plan: Plan,
    directory: RunDirectory,
    manifest: Manifest,
    checkpoint: tuple[int, dict[int, bytes]] | None,
    progress: Progress | None,
    parent_hosts: Hosts | None,
    loans: dict[int, Loan] | None,
) -> RunResult:
    started = time.perf_counter()
    companions = Companions.of(config, directory, manifest)
    clock = StageClock(progress, config.cycles, companions.stages)
    for_twin: dict[int, Loan] = {}  # what this run lends its twin, by cycle (kept only where the twin will borrow)
    loans = loans or {}

    def save(cycle: int, states: dict[int, bytes]) -> None:
        directory.write_checkpoint(cycle, states)
        if companions.forks_after == cycle and not companions.twin.holds_run():
            _fork_twin(config, recorder, directory, cycle, states, manifest.gate)

    try:
        recorder = Recorder(config, plan, directory, None if checkpoint is None else checkpoint[0])
        directory.write_graph(plan.graph)
        clock(Stage.base_model, 0)
        used = set(plan.bases.values())
        checkpoints = [base_checkpoint(config, base) if i in used else None for i, base in enumerate(config.bases)]
        with _hosts(config, plan, checkpoints, manifest, parent_hosts) as hosts:
            manifest.placement = hosts.placement
            manifest.base_model = str(checkpoints[0]) if checkpoints[0] else None  # None: every node in a group
            built = zip(config.bases, checkpoints, strict=True)
            manifest.bases = {base.name: str(path) for base, path in built if path}
            manifest.targets = {attack.index: sorted(attack.targets) for attack in plan.attacks}
            directory.write_manifest(manifest)
            if checkpoint is None:
                clock(Stage.evaluate, 0)
                baseline = hosts.each("evaluate")
                manifest.gate = check_gate(config, plan.bases, baseline)  # before the twin can fork at cycle 0
                directory.write_manifest(manifest)
                recorder.record(0, baseline, {})
                done, states = 0, hosts.each("state")
                save(done, states)
            else:
                done, states = checkpoint
                hosts.restore(states)
            for cycle in range(done + 1, config.cycles + 1):
                loan = loans.get(cycle)
                # after a host failure: the last cycle's states restored, the cycle run again
                cycle_of = functools.partial(optimization_cycle, cycle, hosts, recorder, clock, loan)
                figures, training = hosts.recovering(states, cycle_of)
                states = hosts.each("state")
                save(cycle, states)
                manifest.borrowed_node_cycles += len(loan.states) if loan else 0
                if unreached := companions.unreached(cycle, recorder.hops):
                    for_twin[cycle] = Loan.of(unreached, states, figures, training)
            metrics, figures = _against_companions(config, directory, recorder, companions, clock, hosts, for_twin)
        summary = {
            **summarize(metrics),
            "graph": topologies.graph_measures(plan.graph),
            **figures,
            **_base(config, manifest),
        }
        if checkpoints[0] and (table := alignment_table(checkpoints[0])):
            summary["alignment"] = table
        clock.stop()
        directory.write_summary(summary)
        seconds = {"total": time.perf_counter() - started, **clock.seconds}
        manifest.seconds = {str(stage): round(value, 2) for stage, value in seconds.items()}
        manifest.finish(Status.complete)
        directory.write_manifest(manifest)
        return RunResult(directory.path, metrics, summary)
    except BaseException as error:
        interrupted = isinstance(error, KeyboardInterrupt | SystemExit)
        manifest.finish(Status.interrupted if interrupted else Status.failed, error)
        with contextlib.suppress(OSError):  # a full disk may refuse this too: the original error is the news
            directory.write_manifest(manifest)
        raise


def optimization_cycle(
    cycle: int, hosts: Hosts, recorder: Recorder, clock: StageClock, loan: Loan | None = None
) -> tuple[dict[int, dict], dict[int, dict]]:
    """One optimization cycle, stage by stage. Each stage is the method of that name of every host's
    `Shard` (ecosystem/shard.py), run for all its nodes; what a node's stage makes for the next (its
    prompts, the pairs it received, its poison) stays on its host. A twin's nodes on `loan` from its run
    are not trained or evaluated: their states and records are the run's. Each node's figures and
    training record."""
    lent = frozenset(loan.states) if loan else frozenset()
    clock(Stage.generate, cycle)
    hosts.each("traffic", cycle)  # each node draws its cycle's prompts from its domain's users
    outputs = hosts.each("generate", cycle)  # answers them: the pairs it publishes (through Ray, object refs)
    clock(Stage.train, cycle)
    hosts.each("exchange", cycle, outputs=outputs)  # receives its in-neighbours' pairs, less its defenses' cuts
    hosts.each("poison", cycle)  # the attacks add their poison to their targets' fine-tunes
    training = hosts.each("fine_tune", cycle, lent)  # on its own data, pairs received, poison, defenses' data
    clock(Stage.evaluate, cycle)
    figures = hosts.each("evaluate", lent)  # safety, capability and drift on the held-out sets
    if loan:
        hosts.restore(loan.states)
        figures, training = {**figures, **loan.figures}, {**training, **loan.training}
    recorder.record(cycle, figures, training)  # one row per node and one per edge, written out
    return figures, training


@contextlib.contextmanager
def _cluster(config: Config, plan: Plan) -> Iterator[None]:
    """The Ray cluster the run's hosts need (an embedded one, or the one at `hosting.ray_address`),
    checked to hold them; nothing for in-process hosts."""
    if config.hosting.mode == "in_process":
        yield
        return
    with ray_session(config.hosting.ray_address):
        host_count(config.hosting, plan.graph, plan.bases)
        yield


@contextlib.contextmanager
def _hosts(
    config: Config, plan: Plan, checkpoints: list[Path | None], manifest: Manifest, parent: Hosts | None
) -> Iterator[Hosts]:
    """The run's hosts: Ray actors, or shards in this process; a companion run's are its parent run's, which
    keep their base and world loaded (and their Ray actors started), where they serve it."""
    if parent is not None and shares_hosts(parent.config, config):
        recoveries = parent.recoveries
        parent.configure(config, plan.attacks)
        try:
            yield parent
        finally:
            manifest.recoveries += parent.recoveries - recoveries
        return
    if config.hosting.mode == "in_process":
        hosts: Hosts = InProcessHosts(config, plan.graph, checkpoints, plan.bases, plan.attacks)
    else:
        name = f"ecosystem-{manifest.run_id}"
        hosts = RayHosts(config, plan.graph, checkpoints, plan.bases, name, plan.attacks)
    try:
        yield hosts
    finally:
        manifest.recoveries += hosts.recoveries
        hosts.shutdown()


@dataclass(frozen=True)
class Loan:
    """One cycle of the nodes a run lends its twin: the attack cannot have reached them yet, so they compute
    in the twin exactly as in the run, and the twin takes their states after the cycle and their records
    instead of training and evaluating them again (`evaluation.twin_borrows`)."""

    states: dict[int, bytes]
    figures: dict[int, dict]
    training: dict[int, dict]

    @classmethod
    def of(
        cls, nodes: list[int], states: dict[int, bytes], figures: dict[int, dict], training: dict[int, dict]
    ) -> Loan:
        return cls(
            {node: states[node] for node in nodes},
            {node: figures[node] for node in nodes},
            {node: training[node] for node in nodes},
        )


@dataclass(frozen=True)
class Companions:
    """The runs made beside a run: its poison-free twin (with an attack that acts at all) and its control
    run without defenses; and where the twin comes from."""

    first_acting: int | None  # the first cycle an attack acts (None: none does, and the run is its own twin)
    lead: int  # 1 where an attack changes what its targets share from the start (see causal_horizon_breaches)
    twin_run: bool
    control_run: bool
    twin: RunDirectory  # twin/, or the finished twin it was given (a sweep's, shared)
    forks_after: int | None  # the cycle after which the twin is forked from the run's checkpoint
    lends: bool  # the twin, computed after this run, takes from it what the poison has not reached

    @classmethod
    def of(cls, config: Config, directory: RunDirectory, manifest: Manifest) -> Companions:
        first, twin_run = poisoning.first_acting_cycle(config.attack, config.cycles), config.has_twin
        return cls(
            first_acting=first,
            lead=int(any(attack.alters_sharing for attack in config.attack)),
            twin_run=twin_run,
            control_run=bool(config.defense) and config.evaluation.defense_control,
            twin=RunDirectory(manifest.twin) if manifest.twin else directory.twin,
            forks_after=first - 1 if twin_run and not manifest.twin else None,
            lends=twin_run and not manifest.twin and config.evaluation.twin_borrows,
        )

    def unreached(self, cycle: int, hops: dict[int, int | None]) -> list[int]:
        """The nodes (by their `hops` from the nearest attacked node) this run lends its twin at `cycle`: those
        the attack cannot have reached by then, so they computed as they do in the twin."""
        if not self.lends or self.first_acting is None or cycle < self.first_acting:
            return []
        reaches = {node: poison_reaches(hop, self.first_acting, self.lead) for node, hop in hops.items()}
        return [node for node, first in reaches.items() if first is None or cycle < first]

    @property
    def stages(self) -> tuple[Stage, ...]:
        return tuple(
            stage for stage, runs in ((Stage.twin_run, self.twin_run), (Stage.control_run, self.control_run)) if runs
        )


def _against_companions(
    config: Config,
    directory: RunDirectory,
    recorder: Recorder,
    companions: Companions,
    clock: StageClock,
    hosts: Hosts,
    for_twin: dict[int, Loan],
) -> tuple[pl.DataFrame, dict[str, Any]]:
    """The twin (with what the run lent it, `for_twin`) and the control run, computed where missing (on the run's
    `hosts`); the run's metrics (as `recorder` holds them) with infection over its twin, and the summary's
    figures on infection, erosion and the defense's effect."""
    metrics, figures = recorder.metrics, {}
    twin = None
    if config.attack:
        if companions.twin_run:
            clock(Stage.twin_run, config.cycles)
            twin = _companion(config.poison_free(), companions.twin, hosts, for_twin)
        edges = edges_frame(recorder.edges)
        metrics, figures = _infection(config, directory, metrics, edges, twin, companions)
    if companions.control_run:
        clock(Stage.control_run, config.cycles)
        control = _companion(config.model_copy(update={"defense": []}), directory.control, hosts)
        figures["defense"] = defense_effect(metrics, control.metrics)
        if twin is not None and (control_twin := directory.control.twin).holds_run():
            figures["defense"] |= clean_cost(twin.metrics, control_twin.read_metrics())
    return metrics, figures


def _companion(
    config: Config, directory: RunDirectory, hosts: Hosts, loans: dict[int, Loan] | None = None
) -> RunResult:
    """A run made beside this one (its twin, or its control), in `directory`: computed, resumed where it
    stopped (or was forked; a twin with its run's `loans`), or read back once complete."""
    if not directory.holds_run():
        return run(config, directory.path, hosts=hosts)
    if directory.read_manifest().status is Status.complete:
        return directory.read_result()
    return resume(directory.path, hosts=hosts, loans=loans)


def _fork_twin(
    config: Config,
    recorder: Recorder,
    directory: RunDirectory,
    cycle: int,
    states: dict[int, bytes],
    gate: dict[str, dict[str, Any]],
) -> None:
    """The twin as the run is after `cycle`, before any attack acted: the same checkpoint, its rows as a
    run without attacks records them (attacked nodes are not attacked there, nor any node hops from one),
    and the run's `gate` records (the same bases at cycle 0). Written beside the run and renamed into place
    whole; it is resumed from there once the run is done."""
    twin_config = config.poison_free()
    staging = RunDirectory(directory.path / f".{RunDirectory.TWIN}-{uuid.uuid4().hex[:8]}")
    manifest = _manifest(twin_config)
    manifest.forked_after, manifest.status, manifest.gate = cycle, Status.interrupted, gate
    try:
        staging.path.mkdir()
        staging.create(twin_config, manifest)
        staging.write_graph(recorder.graph)
        staging.write_metrics(recorder.metrics.with_columns(attacked=False, hops_from_attack=None))
        staging.write_edges(edges_frame(recorder.edges))
        for responses in recorder.directory.responses.glob("cycle-*.parquet"):
            staging.responses.mkdir(exist_ok=True)
            shutil.copyfile(responses, staging.responses / responses.name)
        staging.write_checkpoint(cycle, states)
        staging.path.rename(directory.twin.path)
    finally:
        shutil.rmtree(staging.path, ignore_errors=True)


def _infection(
    config: Config,
    directory: RunDirectory,
    metrics: pl.DataFrame,
    edges: pl.DataFrame,
    twin: RunResult | None,
    companions: Companions,
) -> tuple[pl.DataFrame, dict[str, Any]]:
    """The run's metrics with its twin's refusal and each node's excess loss over it (infection), written
    out with the transmission tree; the summary's figures on infection and erosion. Without a twin (no
    attack ever acted) the run is its own twin."""
    twin_metrics = metrics if twin is None else twin.metrics
    infection = with_twin(metrics, twin_metrics, config.evaluation.drift_threshold).select(METRICS_SCHEMA.names())
    tree = transmission_tree(infection, edges)
    directory.write_metrics(infection)
    directory.write_transmission(tree)
    attacked = infection.filter(pl.col("attacked"))["node"].n_unique()
    figures = {
        **infection_summary(infection, twin_metrics),
        "twin_final_mean_refusal": mean_per_cycle(twin_metrics, "refusal_rate")["refusal_rate"][-1],
        "causal_horizon_breaches": causal_horizon_breaches(
            metrics, twin_metrics, companions.first_acting, companions.lead
        ),
        "transmission": reproduction_by_generation(tree, attacked).to_dicts(),
    }
    return infection, figures


def _base(config: Config, manifest: Manifest) -> dict[str, Any]:
    """The summary's record of the run's bases: the model seed and cache entry of its own (None where no node
    starts from it), and every base's gate figures."""
    own = manifest.gate.get(config.bases[0].name, {})
    entry = Path(manifest.base_model).name if manifest.base_model else None
    return {"model_seed": own.get("model_seed"), "base_model": entry, "gate": manifest.gate}


def _manifest(config: Config) -> Manifest:
    return Manifest(
        run_id=uuid.uuid4().hex[:12],
        started=now(),
        seed=config.seed,
        world_seed=config.world.seed,
        config_fingerprint=fingerprint(config),
        config=config.model_dump(mode="json", exclude_none=True),
        versions=package_versions(),
        provenance=provenance(NODE_THREADS),
    )
