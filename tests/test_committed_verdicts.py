"""Every committed experiment verdict recomputes from its committed cells with its committed rule: the rule file
is the one that produced it (the fingerprint), and the rule's code applied to `cells.parquet` gives the same
findings, verdicts, reasons, figures and p-values."""

from __future__ import annotations

import importlib
import json
from pathlib import Path

import polars as pl
import pytest

from ecosystem.experiments import EXPERIMENTS, finding_record, judged, load_experiment

COMMITTED = sorted(path.parent for path in (EXPERIMENTS / "results").glob("*/verdict.json"))


def test_some_verdicts_are_committed() -> None:
    assert COMMITTED, "no committed verdict.json under experiments/results: nothing for the test below to check"


@pytest.mark.parametrize("results", COMMITTED, ids=[path.name for path in COMMITTED])
def test_a_committed_verdict_recomputes_from_its_cells(results: Path) -> None:
    committed = json.loads((results / "verdict.json").read_text())
    experiment = load_experiment(results.name)
    assert committed["fingerprint"] == experiment.fingerprint, "the rule file changed after its results"
    module = importlib.import_module(f"experiments.{results.name}")
    analysis = judged(module, pl.read_parquet(results / "cells.parquet"), experiment.parameters)
    recomputed = [finding_record(finding) for finding in analysis.findings]
    expected = committed["findings"]
    assert _rounded(recomputed) == _rounded(expected)


def _rounded(value):
    """Floats to 12 significant digits (the last bits may differ between numpy builds); `bases`, `p_value` and
    `p_holm` left out where None (records made before they were recorded have none)."""
    if isinstance(value, float):
        return float(f"{value:.12g}")
    if isinstance(value, dict):
        recent = ("bases", "p_value", "p_holm")
        return {key: _rounded(item) for key, item in value.items() if key not in recent or item is not None}
    if isinstance(value, list):
        return [_rounded(item) for item in value]
    return value
