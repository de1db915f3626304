"""Ray actors that host shards of nodes, and the driver-side handle that runs a stage on all of them.

`ModelHost` is a host's plain `Shards` made a Ray actor; generated pairs stay in the Ray object
store (each host puts its nodes' outputs there, and each host fetches the outputs of the
senders its nodes receive from), so bulk data never passes through the driver.
"""

from __future__ import annotations

import contextlib
import logging
import os
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any, TypeVar

import networkx as nx
import numpy as np
import ray
from ray.exceptions import ActorUnavailableError, ObjectLostError, RayActorError

from ecosystem.config import Config, ConfigError, HostingConfig
from ecosystem.raysecurity import temp_dir
from ecosystem.shard import Shards, merge, node_groups
from poisoning import Attack

T = TypeVar("T")

HOST_FAILURES = (RayActorError, ObjectLostError)
MAX_RECOVERIES = 3  # recomputations of one cycle after host failures before the run gives up
RESTART_TIMEOUT = 120  # seconds to wait for Ray to restart a failed host
CONNECT_TIMEOUT = 10  # seconds to wait for a Ray cluster's address to answer


class ModelHost(Shards):
    """A host's `Shards` as a Ray actor: the generated pairs stay in the object store, one object per node."""

    def generate(self, cycle: int) -> dict[int, ray.ObjectRef]:
        return {node: ray.put(output) for node, output in super().generate(cycle).items()}


@contextlib.contextmanager
def ray_session(address: str | None) -> Iterator[None]:
    """Use the caller's Ray if one is running; else attach to `address`, or start an embedded one. An address
    nothing answers at is refused either way, so that whether it is does not depend on what ran before."""
    if address:
        _check_reachable(address)
    if ray.is_initialized():
        yield
        return
    if address:
        try:
            ray.init(address=address, logging_level=logging.WARNING)
        except ConnectionError as error:
            raise ConfigError(f"hosting.ray_address {address!r}: {error}") from None
    else:  # "local": a new embedded instance, never a cluster that happens to be running here
        # Ray's processes listen on every interface; its token authentication, on by default, keeps
        # others out, with a token and session files only this user can read (see ecosystem.raysecurity).
        # Its notice that token authentication is on would print at every run: silenced, not disabled.
        logging.getLogger("ray._private.authentication.authentication_token_setup").setLevel(logging.ERROR)
        reaper = subprocess.Popen([sys.executable, "-m", "ecosystem.reaper", str(os.getpid())], stdin=subprocess.PIPE)
        ray.init(address="local", include_dashboard=False, logging_level=logging.WARNING, _temp_dir=temp_dir())
    try:
        yield
    finally:
        ray.shutdown()
        if not address:  # the driver lives: the reaper ends and kills nothing
            reaper.stdin.close()
            reaper.wait()


def _check_reachable(address: str) -> None:
    """Fail fast on a cluster address nothing answers at (Ray itself would wait for minutes); a
    cluster that is starting gets `CONNECT_TIMEOUT` seconds to answer."""
    host, _, port = address.rpartition(":")
    if address == "auto" or not port.isdigit():
        return
    deadline = time.monotonic() + CONNECT_TIMEOUT
    while True:
        try:
            socket.create_connection((host, int(port)), timeout=CONNECT_TIMEOUT).close()
            return
        except OSError as error:
            if time.monotonic() > deadline:
                raise ConfigError(
                    f"hosting.ray_address: nothing answers at {address} ({error.strerror or error}); "
                    "start the cluster (`ray start --head`) or correct the address"
                ) from None
            time.sleep(0.5)


def host_count(hosting: HostingConfig, graph: nx.DiGraph, bases: dict[int, int]) -> int:
    """`hosting.hosts`, or as many hosts as the cluster's CPUs (and GPUs) hold; at most one per group
    of nodes."""
    resources = ray.cluster_resources()
    fit = resources.get("CPU", 0) // hosting.num_cpus
    if hosting.num_gpus:
        fit = min(fit, resources.get("GPU", 0) // hosting.num_gpus)
    count = min(hosting.hosts or max(1, fit), len(node_groups(graph, hosting.group_size, bases)))
    if count > fit:
        raise ConfigError(
            f"hosting: {count} hosts with {hosting.num_cpus:g} CPU and {hosting.num_gpus:g} GPU each do not fit "
            f"in the Ray cluster ({resources.get('CPU', 0):g} CPU, {resources.get('GPU', 0):g} GPU); "
            "lower --hosts or hosting.num_cpus / hosting.num_gpus"
        )
    return int(count)


def shares_hosts(built: Config, run: Config) -> bool:
    """Whether hosts built for the run `built` compute the run `run` once configured for it (`Hosts.configure`):
    the companion runs of a run (its twin, its control) reuse its loaded base and world. Everything the hosts
    load and place must be alike: only the attacks, the defenses and how the runs are evaluated may differ,
    not the evaluation sets."""
    varying = {"attack", "defense", "evaluation", "cycles"}
    return (
        built.model_dump(exclude=varying) == run.model_dump(exclude=varying)
        and built.evaluation.prompts_per_set == run.evaluation.prompts_per_set
        and built.evaluates_backdoor == run.evaluates_backdoor
    )


class Hosts:
    """The run's hosts: node placement, a stage run on every shard, and recovery from failures.

    `RayHosts` runs each shard in a `ModelHost` actor; `InProcessHosts` keeps the shards as plain
    objects in the driver (tests, debugging). Both compute the same numbers."""

    def __init__(
        self, config: Config, graph: nx.DiGraph, count: int, bases: dict[int, int], attacks: list[Attack]
    ) -> None:
        self.config, self.attacks = config, attacks  # the run the hosts compute
        # Whole groups of nodes per host, consecutive: the groups are the same however many hosts.
        run_groups = node_groups(graph, config.hosting.group_size, bases)
        parts = np.array_split(np.arange(len(run_groups)), min(count, len(run_groups)))
        self.placement = [[node for index in part for node in run_groups[index]] for part in parts]
        self.in_edges = [
            {n: [(int(u), float(w)) for u, _, w in graph.in_edges(n, data="weight")] for n in nodes}
            for nodes in self.placement
        ]
        self.domains = [{n: graph.nodes[n]["domain"] for n in nodes} for nodes in self.placement]
        self.senders = [sorted({u for edges in in_edges.values() for u, _ in edges}) for in_edges in self.in_edges]
        self.recoveries = 0

    def each(self, stage: str, *args: Any, outputs: dict[int, Any] | None = None) -> dict[int, Any]:
        """Run the method `stage` of every host's shards, with `args` and, given the nodes' `outputs`, the
        senders its nodes receive from and their outputs (through Ray, object references: each host fetches
        its senders' outputs itself, never through the driver). What the hosts return, merged by node."""
        if outputs is None:
            arguments = [args] * len(self.placement)
        else:
            arguments = [(*args, senders, *[outputs[s] for s in senders]) for senders in self.senders]
        return merge(result or {} for result in self._call(stage, arguments))

    def configure(self, config: Config, attacks: list[Attack]) -> None:
        """Every host to the run `config` with its `attacks` (one that `shares_hosts` with theirs), its nodes
        untrained."""
        self.config, self.attacks = config, attacks
        self._call("configure", [(config, attacks)] * len(self.placement))

    def restore(self, states: dict[int, bytes]) -> None:
        """The hosts' nodes to their `states` (every node's, or some)."""
        self._call("restore", [({n: states[n] for n in nodes if n in states},) for nodes in self.placement])

    def recovering(self, states: dict[int, bytes], stages: Callable[[], T]) -> T:
        """Run `stages` (a cycle's); if a host dies, wait for Ray to restart it, restore every host to
        `states` (the last complete cycle) and run them again: the results are those of an undisturbed run.
        What `stages` returns."""
        for attempt in range(MAX_RECOVERIES + 1):
            try:
                if attempt:
                    self._await_restarts()
                    self.configure(self.config, self.attacks)  # Ray restarts a host for the run it was built for
                    self.restore(states)
                return stages()
            except HOST_FAILURES as error:
                if attempt == MAX_RECOVERIES:
                    raise
                self.recoveries += 1
                logging.getLogger(__name__).warning("a host failed (%s); restoring the last cycle's states", error)

    def shutdown(self) -> None:
        """Release the hosts (nothing to do in process)."""

    def _call(self, method: str, arguments: list[tuple]) -> list[Any]:
        """Call `method` on every host, each with its arguments, and collect the results."""
        raise NotImplementedError

    def _await_restarts(self) -> None:
        """Wait until every failed host is back (only Ray hosts fail)."""


class RayHosts(Hosts):
    def __init__(
        self,
        config: Config,
        graph: nx.DiGraph,
        checkpoints: list[Path],
        bases: dict[int, int],
        name: str,
        attacks: list[Attack],
    ) -> None:
        super().__init__(config, graph, host_count(config.hosting, graph, bases), bases, attacks)
        remote_host = ray.remote(ModelHost)
        self.actors = []
        for index, (domains, in_edges) in enumerate(zip(self.domains, self.in_edges, strict=True)):
            options = remote_host.options(
                name=f"{name}-{index}",
                num_cpus=config.hosting.num_cpus,
                num_gpus=config.hosting.num_gpus,
                max_restarts=-1,  # a host that dies is restarted, then restored from the last checkpoint
                max_task_retries=0,
            )
            self.actors.append(options.remote(config, checkpoints, bases, domains, in_edges, attacks))
        ray.get([actor.__ray_ready__.remote() for actor in self.actors])  # started: the run's clock counts it here

    def _call(self, method: str, arguments: list[tuple]) -> list[Any]:
        calls = [getattr(actor, method).remote(*args) for actor, args in zip(self.actors, arguments, strict=True)]
        return ray.get(calls)

    def _await_restarts(self) -> None:
        deadline = time.monotonic() + RESTART_TIMEOUT
        while True:
            try:
                ray.get([actor.__ray_ready__.remote() for actor in self.actors])
                return
            except ActorUnavailableError:
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.2)

    def shutdown(self) -> None:
        for actor in self.actors:
            ray.kill(actor, no_restart=True)


class InProcessHosts(Hosts):
    """The shards as plain objects in the driver, placed as `hosting.hosts` says (one by default)."""

    def __init__(
        self, config: Config, graph: nx.DiGraph, checkpoints: list[Path], bases: dict[int, int], attacks: list[Attack]
    ) -> None:
        super().__init__(config, graph, config.hosting.hosts or 1, bases, attacks)
        self.shards = [
            Shards(config, checkpoints, bases, domains, in_edges, attacks)
            for domains, in_edges in zip(self.domains, self.in_edges, strict=True)
        ]

    def _call(self, method: str, arguments: list[tuple]) -> list[Any]:
        return [getattr(shard, method)(*args) for shard, args in zip(self.shards, arguments, strict=True)]
