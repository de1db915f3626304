"""The run directory: resolved config, per-(cycle, node) metrics, summary and manifest.

Every file is written atomically (a temporary file, then a rename), so a reader never sees
a half-written one.
"""

from __future__ import annotations

import json
import os
import tempfile
from pathlib import Path
from typing import Any

import polars as pl

from ecosystem.config import Config

METRICS_SCHEMA = pl.Schema(
    {
        "cycle": pl.Int32,
        "node": pl.Int32,
        "domain": pl.String,
        "refusal_rate": pl.Float64,
        "harmful_rate": pl.Float64,
        "helpfulness": pl.Float64,
        "over_refusal": pl.Float64,
        "drift": pl.Float64,
        "drifted": pl.Boolean,
        "attacked": pl.Boolean,
        "poison_examples": pl.Int32,
        "pairs_received": pl.Int32,
        "train_loss": pl.Float64,
        "hops_from_attack": pl.Int32,
        "in_degree": pl.Int32,
        "out_degree": pl.Int32,
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


class RunDirectory:
    def __init__(self, path: Path) -> None:
        self.path = Path(path)
        self.metrics_path = self.path / "metrics.parquet"
        self.rows: list[dict[str, Any]] = []

    def create(self, config: Config, manifest: dict[str, Any]) -> None:
        if self.path.exists() and any(self.path.iterdir()):
            raise ResultsError(f"results directory {self.path} is not empty; choose a new --out")
        self.path.mkdir(parents=True, exist_ok=True)
        write_atomic(self.path / "config.toml", config.to_toml().encode())
        self.write_manifest(manifest)

    def write_manifest(self, manifest: dict[str, Any]) -> None:
        write_json(self.path / "manifest.json", manifest)

    def append(self, rows: list[dict[str, Any]]) -> pl.DataFrame:
        """Add one cycle's rows and rewrite metrics.parquet with everything so far."""
        self.rows += rows
        frame = pl.DataFrame(self.rows, schema=METRICS_SCHEMA, orient="row")
        handle, temporary = tempfile.mkstemp(prefix=".metrics.", dir=self.path)
        os.close(handle)
        try:
            frame.write_parquet(temporary)
            os.replace(temporary, self.metrics_path)
        except BaseException:
            Path(temporary).unlink(missing_ok=True)
            raise
        return frame

    def write_summary(self, summary: dict[str, Any]) -> None:
        write_json(self.path / "summary.json", summary)
