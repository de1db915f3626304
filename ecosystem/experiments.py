"""Named experiments: a claim from the source documents, the sweeps that measure it and a verdict rule
written before the data was seen, run by `cascade experiment NAME`.

An experiment is two files in `experiments/`: `NAME.toml` (the claim quoted with its source, the rule in
words, the rule's thresholds under [parameters], the sweeps under [sweeps.PART] in the sweep-file format,
and [quick], merged over the file by `--quick`) and `NAME.py`, whose `analyse(cells, parameters)` applies
the rule to the runs' figures and returns `Analysis` (its vocabulary and helpers: `ecosystem.verdicts`);
an optional `run_figures(directory)` adds figures of each run read from its run directory. The output
directory holds `experiment.json` (what was run), `sweeps/PART/` (sweep directories), `cells.parquet`
(every part's cells, with a `sweep` column), `verdict.json` and `report/report.md`.
"""

from __future__ import annotations

import collections
import contextlib
import copy
import dataclasses
import datetime
import hashlib
import importlib
import json
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import polars as pl
import tomli_w

from ecosystem.analysis import ALPHA
from ecosystem.bases.cache import check_cache
from ecosystem.config import ConfigError, read_toml, split_override
from ecosystem.reporting import write_experiment_report
from ecosystem.results import (
    EXPERIMENT_RECORD,
    ResultsError,
    RunDirectory,
    package_versions,
    write_json,
    write_parquet,
)
from ecosystem.sweeps import Sweep, SweepDirectory, SweepProgress, SweepResult, resolve_sweep, run_sweeps
from ecosystem.verdicts import Analysis, Finding, with_holm

EXPERIMENTS = Path(__file__).resolve().parent.parent / "experiments"
KEYS = ("title", "claim", "source", "organism", "rule", "parameters", "sweeps", "quick")
REQUIRED = ("title", "claim", "source", "rule", "sweeps")


@dataclass(frozen=True)
class Experiment:
    """An experiment file, resolved (with `--quick`'s changes merged in when quick), and its sweeps by part."""

    name: str
    spec: dict[str, Any]
    quick: bool
    sweeps: dict[str, Sweep]
    quick_changes: dict[str, Any]  # the file's [quick] table: what `--quick` changes (merged in when quick)

    @property
    def fingerprint(self) -> str:
        return hashlib.sha256(json.dumps(self.spec, sort_keys=True).encode()).hexdigest()

    @property
    def parameters(self) -> dict[str, Any]:
        return self.spec.get("parameters", {})

    def too_few_seeds(self) -> list[str]:
        """A warning for each sweep whose cells run too few seeds for any test on one cell to decide: a p-value
        is never below 0.5^n for n runs (`Estimate`), so a cell of fewer than 5 can reach no verdict alone. None
        for the quick version, which never decides a claim."""
        if self.quick:
            return []
        return [
            f"sweep {part}: {len(sweep.seeds)} seeds per cell; a figure from one cell rests on {len(sweep.seeds)} runs "
            f"and no test on it can reach p < {ALPHA} (its p-value is at least 0.5^{len(sweep.seeds)} = "
            f"{0.5 ** len(sweep.seeds):.3g}): only figures pooled over cells can decide"
            for part, sweep in self.sweeps.items()
            if 0.5 ** len(sweep.seeds) >= ALPHA
        ]


@dataclass(frozen=True)
class ExperimentResult:
    path: Path
    verdict: dict[str, Any]  # what verdict.json holds
    cells: pl.DataFrame
    sweeps: dict[str, SweepResult]  # each part's runs, by part name


def names() -> list[str]:
    """The experiments shipped in `experiments/`."""
    return sorted(path.stem for path in EXPERIMENTS.glob("*.toml"))


def load_experiment(name: str, quick: bool = False, overrides: Sequence[str] = ()) -> Experiment:
    """The experiment `name`, checked: its keys, and every sweep's runs (as `cascade sweep` checks them). Each
    of `overrides` (`key=value`, as `cascade run --set` takes them) is set in every sweep's base, the place a
    run on other hardware changes (the engine, GPUs per host); a key that a sweep varies is refused. They are
    part of the experiment (its fingerprint, `spec["overrides"]`): a run with them is another experiment."""
    path = EXPERIMENTS / f"{name}.toml"
    if name not in names():
        raise ConfigError(f"no experiment {name!r}; available: {', '.join(names())}")
    spec = read_toml(path, "experiment")[1]
    if unknown := sorted(set(spec) - set(KEYS)):
        raise ConfigError(f"experiment file {path}: unknown key '{unknown[0]}'; valid keys: {', '.join(KEYS)}")
    if missing := [key for key in REQUIRED if key not in spec]:
        raise ConfigError(f"experiment file {path}: missing '{missing[0]}'")
    quick_changes = spec.pop("quick", {})
    if quick:
        spec = _merged(spec, quick_changes)
    if overrides:
        spec = _overridden(spec, overrides, name)
    sweeps = {
        part: resolve_sweep(tomli_w.dumps(table), table, path, f"experiment {name}, sweep {part}")
        for part, table in spec["sweeps"].items()
    }  # every run's configuration checked
    return Experiment(name, spec, quick, sweeps, quick_changes)


def _overridden(spec: dict[str, Any], overrides: Sequence[str], name: str) -> dict[str, Any]:
    """`spec` with each `key=value` of `overrides` set in every sweep's base, and listed under `overrides`."""
    spec = copy.deepcopy(spec)
    for override in overrides:
        key, value = split_override(override)
        for part, table in spec["sweeps"].items():
            varied = {axis for axes in [table.get("grid", {}), *table.get("zip", [])] for axis in axes}
            if key in varied or key == "seed":
                raise ConfigError(f"experiment {name}: --set {key}: sweep {part} varies it; it cannot be overridden")
            table.setdefault("base", {})[key] = value
    spec["overrides"] = list(overrides)
    return spec


def _merged(spec: dict[str, Any], changes: dict[str, Any]) -> dict[str, Any]:
    """`spec` with `changes` put in: tables merge key by key, any other value replaces."""
    merged = copy.deepcopy(spec)
    for key, value in changes.items():
        if isinstance(value, dict) and isinstance(merged.get(key), dict):
            merged[key] = _merged(merged[key], value)
        else:
            merged[key] = value
    return merged


def run_experiment(
    name: str,
    out: str | Path,
    quick: bool = False,
    progress: Callable[[SweepProgress], None] | None = None,
    ray_address: str | None = None,
    overrides: Sequence[str] = (),
) -> ExperimentResult:
    """Run the experiment `name` into `out`: its sweeps (resumed where they stopped), then the rule and
    the report. A directory holding another experiment, or another version of this one (other overrides
    included), is refused."""
    experiment = load_experiment(name, quick, overrides)
    out = Path(out)
    record = {"experiment": name, "quick": quick, "fingerprint": experiment.fingerprint, "spec": experiment.spec}
    module = importlib.import_module(f"experiments.{name}")
    started = time.perf_counter()
    with claimed(out, record):
        cells, results = run_parts(experiment.sweeps, out, progress, ray_address, getattr(module, "run_figures", None))
        analysis = judged(module, cells, experiment.parameters)
        verdict = _verdict_record(experiment, analysis, time.perf_counter() - started) | runs_record(out, cells)
        write_parquet(out / "cells.parquet", cells)
        write_json(out / "verdict.json", verdict)
        write_experiment_report(out, experiment.spec, verdict, analysis)
    return ExperimentResult(out, verdict, cells, results)


def judged(module: Any, cells: pl.DataFrame, parameters: dict[str, Any]) -> Analysis:
    """An experiment module's rule applied to its cells, with Holm's correction across its findings."""
    analysis: Analysis = module.analyse(cells, parameters)
    return dataclasses.replace(analysis, findings=with_holm(analysis.findings))


def runs_record(out: Path, cells: pl.DataFrame) -> dict[str, Any]:
    """What produced the runs of `cells` (in `out/sweeps/`): each distinct provenance (commit, uncommitted
    changes, CPU, torch threads per group) with its number of runs, since a sweep resumed in another session
    may mix commits; and the seconds their computation took per part and in all, runs with their twins and
    controls (a twin that runs share counted once)."""
    provenances: collections.Counter[str] = collections.Counter()
    seconds: collections.Counter[str] = collections.Counter()
    counted = set()
    for sweep, run in cells.select("sweep", "run").iter_rows():
        directory = out / "sweeps" / sweep / run
        manifest = RunDirectory(directory).read_manifest()
        provenance = manifest.provenance.model_dump() if manifest.provenance else {}
        provenances[json.dumps(provenance, sort_keys=True)] += 1
        seconds[sweep] += manifest.seconds.get("total", 0.0)
        for arm in (directory / "twin", directory / "control", directory / "control" / "twin"):
            if arm.resolve() not in counted and (arm / RunDirectory.MANIFEST).is_file():
                counted.add(arm.resolve())  # a twin that runs share: once
                seconds[sweep] += RunDirectory(arm).read_manifest().seconds.get("total", 0.0)
    return {
        "provenance": [{**json.loads(key), "runs": runs} for key, runs in provenances.items()],
        "compute_seconds": round(sum(seconds.values()), 1),
        "compute_seconds_per_part": {part: round(value, 1) for part, value in seconds.items()},
    }


@contextlib.contextmanager
def claimed(out: Path, record: dict[str, Any]) -> Iterator[None]:
    """`out` locked for the experiment `record` describes (its `experiment`, `quick` and `fingerprint`), with
    the record written to `experiment.json`: a new or empty directory, or one holding this very experiment
    (then resumed). A directory holding another experiment, or another version of this one, is refused."""
    _check_directory(out, record)
    check_cache()  # before the directory is created
    with RunDirectory(out).lock():
        _check_directory(out, record)
        write_json(out / EXPERIMENT_RECORD, record)
        yield


def run_parts(
    sweeps: dict[str, Sweep],
    out: Path,
    progress: Callable[[SweepProgress], None] | None = None,
    ray_address: str | None = None,
    run_figures: Callable[[RunDirectory], dict[str, Any]] | None = None,
) -> tuple[pl.DataFrame, dict[str, SweepResult]]:
    """Run the sweeps, each into `out/sweeps/PART`, in one pool of Ray tasks; every part's cells in one table
    (a `sweep` column naming the part), with each run's own figures added by `run_figures` where given."""
    directories = {part: SweepDirectory(out / "sweeps" / part) for part in sweeps}
    results = run_sweeps([(sweep, directories[part]) for part, sweep in sweeps.items()], progress, ray_address)
    parts = [
        _with_run_figures(result.cells, directories[part], run_figures).select(pl.lit(part).alias("sweep"), pl.all())
        for part, result in zip(sweeps, results, strict=True)
    ]
    return pl.concat(parts, how="diagonal_relaxed"), dict(zip(sweeps, results, strict=True))


def _check_directory(out: Path, record: dict[str, Any]) -> None:
    """`out` is new, empty, or holds this very experiment (then it is resumed)."""
    recorded_path = out / EXPERIMENT_RECORD
    if recorded_path.is_file():
        try:
            recorded = json.loads(recorded_path.read_text())
        except (OSError, ValueError) as error:
            raise ResultsError(f"{out}: experiment.json is unreadable ({error})") from None
        if recorded.get("fingerprint") != record["fingerprint"]:
            what = f"experiment {recorded.get('experiment')!r}" + (" (quick)" if recorded.get("quick") else "")
            raise ResultsError(f"{out} holds a run of {what} that differs from this one; choose another --out")
        return
    if out.exists() and not out.is_dir():
        raise ResultsError(f"{out} is a file: give a directory for the experiment")
    if out.is_dir() and set(p.name for p in out.iterdir()) - {RunDirectory.LOCK}:
        raise ResultsError(f"{out} is not empty and holds no experiment (experiment.json); choose a new --out")


def _with_run_figures(
    cells: pl.DataFrame, directory: SweepDirectory, run_figures: Callable[[RunDirectory], dict[str, Any]] | None
) -> pl.DataFrame:
    """The cells with each run's own figures, where there are any (an experiment's `run_figures`)."""
    if run_figures is None:
        return cells
    figures = [run_figures(RunDirectory(directory.path / run)) for run in cells["run"]]
    return pl.concat([cells, pl.DataFrame(figures, infer_schema_length=None)], how="horizontal")


def finding_record(finding: Finding) -> dict[str, Any]:
    """A finding as verdict.json holds it."""
    return {
        "name": finding.name,
        "claim": finding.claim,
        "rule": finding.rule,
        "verdict": finding.verdict,
        "reason": finding.reason,
        "figures": {label: value._asdict() for label, value in finding.figures.items()},
        "p_value": finding.p_value,
        "p_holm": finding.p_holm,
    }


def _verdict_record(experiment: Experiment, analysis: Analysis, seconds: float) -> dict[str, Any]:
    spec = experiment.spec
    return {
        "experiment": experiment.name,
        "title": spec["title"],
        "quick": experiment.quick,
        "quick_changes": experiment.quick_changes if experiment.quick else {},  # what the texts do not describe
        "claim": spec["claim"],
        "source": spec["source"],
        "organism": spec.get("organism"),
        "rule": spec["rule"],
        "parameters": experiment.parameters,
        "overrides": spec.get("overrides", []),  # `--set`: keys set in every sweep's base
        "findings": [finding_record(finding) for finding in analysis.findings],
        "seeds": sorted({seed for sweep in experiment.sweeps.values() for seed in sweep.seeds}),
        "seconds": round(seconds, 1),  # this invocation's; `compute_seconds`: every run's, over all sessions
        "created": datetime.datetime.now(datetime.UTC).isoformat(timespec="seconds"),
        "fingerprint": experiment.fingerprint,
        "versions": package_versions(),
    }
