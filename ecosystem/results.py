"""The run directory: resolved config, graph, per-(cycle, node) metrics, summary and manifest.

Every file is written atomically (a temporary file, then a rename), so a reader never sees
a half-written one.
"""

from __future__ import annotations

import contextlib
import fcntl
import io
import json
import logging
import os
import shutil
import socket
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import networkx as nx
import polars as pl
from safetensors import SafetensorError
from safetensors.torch import load as load_tensors

from ecosystem.config import Config, ConfigError, load_config

METRICS_SCHEMA = pl.Schema(
    {
        "cycle": pl.Int32,
        "node": pl.Int32,
        "domain": pl.String,
        "refusal_rate": pl.Float64,
        "harmful_rate": pl.Float64,
        "helpfulness": pl.Float64,
        "over_refusal": pl.Float64,
        "backdoor_rate": pl.Float64,
        "domain_helpfulness": pl.Float64,
        "drift": pl.Float64,
        "drifted": pl.Boolean,
        "attacked": pl.Boolean,
        "poison_examples": pl.Int32,
        "pairs_received": pl.Int32,
        "pairs_filtered": pl.Int32,
        "guard_precision": pl.Float64,
        "guard_recall": pl.Float64,
        "edges_cut": pl.Int32,
        "train_loss": pl.Float64,
        "hops_from_attack": pl.Int32,
        "in_degree": pl.Int32,
        "out_degree": pl.Int32,
        "betweenness": pl.Float64,
        "pagerank": pl.Float64,
        "eigenvector": pl.Float64,
    }
)


class ResultsError(RuntimeError):
    """A results directory that cannot be used: the message says why and what to do."""


def write_atomic(path: Path, data: bytes) -> None:
    handle, temporary = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent)
    try:
        with os.fdopen(handle, "wb") as file:
            file.write(data)
        os.replace(temporary, path)
    except BaseException:
        Path(temporary).unlink(missing_ok=True)
        raise


def write_json(path: Path, value: Any) -> None:
    write_atomic(path, (json.dumps(value, indent=2, sort_keys=True) + "\n").encode())


def live_run(path: Path) -> bool:
    """Whether the run that last locked the directory is alive: its `.lock` names the process,
    and is emptied when the run ends. A process on another machine is taken to be alive."""
    try:
        words = (path / ".lock").read_text().split()  # "pid N on HOST"
    except OSError:
        return False
    if len(words) != 4 or words[3] != socket.gethostname():
        return bool(words)
    try:
        os.kill(int(words[1]), 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        pass
    return True


class RunDirectory:
    """A run's directory: created once, locked while a run writes to it, resumable from its
    last checkpoint."""

    def __init__(self, path: Path) -> None:
        self.path = Path(path)
        self.metrics_path = self.path / "metrics.parquet"
        self.checkpoints = self.path / "checkpoints"
        self.rows: list[dict[str, Any]] = []

    @contextlib.contextmanager
    def lock(self) -> Iterator[None]:
        """Hold the directory for one live run. The lock is an OS lock on `.lock`, released when
        its process dies, so a lock left by a dead run is found free and taken over."""
        self.path.mkdir(parents=True, exist_ok=True)
        with open(self.path / ".lock", "a+") as file:
            try:
                fcntl.flock(file, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                file.seek(0)
                raise ResultsError(
                    f"results directory {self.path} is in use by a live run ({file.read().strip()}); "
                    "wait for it to finish or choose another --out"
                ) from None
            file.seek(0)
            if stale := file.read().strip():
                logging.getLogger(__name__).warning("taking over the stale lock of a dead run (%s)", stale)
            file.truncate(0)
            file.write(f"pid {os.getpid()} on {socket.gethostname()}")
            file.flush()
            try:
                yield
            finally:
                file.truncate(0)

    def ensure_empty(self) -> None:
        """Refuse a directory that holds anything but a lock: a new run never writes over results."""
        if self.path.exists() and any(p.name != ".lock" for p in self.path.iterdir()):
            raise ResultsError(f"results directory {self.path} is not empty; choose a new --out (or --resume it)")

    def create(self, config: Config, manifest: dict[str, Any]) -> None:
        self.ensure_empty()  # again, under the lock: another run may have started meanwhile
        write_atomic(self.path / "config.toml", config.to_toml().encode())
        self.write_manifest(manifest)

    def read_config(self) -> Config:
        try:
            return load_config(self.path / "config.toml")
        except ConfigError as error:
            raise ResultsError(f"cannot resume {self.path}: {error}") from None

    def read_manifest(self) -> dict[str, Any]:
        try:
            return json.loads((self.path / "manifest.json").read_text())
        except (OSError, ValueError) as error:
            raise ResultsError(f"cannot resume {self.path}: manifest.json is unreadable ({error})") from None

    def write_manifest(self, manifest: dict[str, Any]) -> None:
        write_json(self.path / "manifest.json", manifest)

    def append(self, rows: list[dict[str, Any]]) -> None:
        """Add one cycle's rows and rewrite metrics.parquet with everything so far."""
        self.rows += rows
        buffer = io.BytesIO()
        self.frame().write_parquet(buffer)
        write_atomic(self.metrics_path, buffer.getvalue())

    def frame(self) -> pl.DataFrame:
        return pl.DataFrame(self.rows, schema=METRICS_SCHEMA, orient="row")

    def write_summary(self, summary: dict[str, Any]) -> None:
        write_json(self.path / "summary.json", summary)

    def write_graph(self, graph: nx.DiGraph) -> None:
        """The ecosystem graph as GraphML: node attribute `domain` (and `label` from a file), edge `weight`."""
        write_atomic(self.path / "graph.graphml", "\n".join(nx.generate_graphml(graph)).encode())

    def write_checkpoint(self, cycle: int, states: dict[int, bytes]) -> None:
        """Every node's weights after `cycle` (safetensors), then `latest.json` naming it; older
        checkpoints are removed only once the new one is complete."""
        self.checkpoints.mkdir(exist_ok=True)
        staging = Path(tempfile.mkdtemp(prefix=".cycle-", dir=self.checkpoints))
        for node, state in states.items():
            (staging / f"node-{node}.safetensors").write_bytes(state)
        final = self.checkpoints / f"cycle-{cycle}"
        shutil.rmtree(final, ignore_errors=True)
        staging.rename(final)
        write_json(self.checkpoints / "latest.json", {"cycle": cycle, "nodes": sorted(states)})
        for old in self.checkpoints.iterdir():
            if old != final and old.is_dir():
                shutil.rmtree(old, ignore_errors=True)

    def read_checkpoint(self) -> tuple[int, dict[int, bytes]]:
        """The last complete cycle and its node states; loads the metrics rows up to that cycle."""
        try:
            latest = json.loads((self.checkpoints / "latest.json").read_text())
            cycle = int(latest["cycle"])
            folder = self.checkpoints / f"cycle-{cycle}"
            states = {int(n): (folder / f"node-{n}.safetensors").read_bytes() for n in latest["nodes"]}
            for state in states.values():
                load_tensors(state)  # fails here, not in a host, if a file is damaged
            metrics = pl.read_parquet(self.metrics_path)
        except (OSError, ValueError, KeyError, TypeError, SafetensorError, pl.exceptions.PolarsError) as error:
            raise ResultsError(f"cannot resume {self.path}: no usable checkpoint ({error})") from None
        self.rows = metrics.filter(pl.col("cycle") <= cycle).to_dicts()
        return cycle, states
