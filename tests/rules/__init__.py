"""Synthetic cells for the v2 verdict rules (`tests/rules/test_NAME.py` tests `experiments/NAME.py`): runs on
3 bases by 5 seeds per group, each figure its group's value plus seeded noise, optionally shifted per base."""

from __future__ import annotations

from typing import Any

import numpy as np
import polars as pl

BASES = 3
SEEDS = range(15)  # run seed s is on base s % 3, as `model.seeds = 3` puts it


def cells(
    groups: list[tuple[dict[str, Any], dict[str, float | None]]], spread: float = 0.01, base_shift: float = 0.0
) -> pl.DataFrame:
    """Fifteen runs per group (5 seeds on each of 3 bases): the group's axis values, and each figure its value
    plus uniform noise of `spread` and `base_shift` times (base - 1), so that bases differ (None stays None)."""
    noise = np.random.default_rng(0)
    rows = []
    for axes, figures in groups:
        for seed in SEEDS:
            base = seed % BASES
            values = {
                name: None if value is None else value + base_shift * (base - 1) + noise.uniform(-spread, spread)
                for name, value in figures.items()
            }
            rows.append({"sweep": "s", "seed": seed, "model_seed": base, **axes, **values})
    return pl.DataFrame(rows, infer_schema_length=None)


def verdicts(analysis: Any) -> list[str]:
    return [finding.verdict for finding in analysis.findings]
