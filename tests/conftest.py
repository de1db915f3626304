"""Shared fixtures: small configurations and one small finished run for the whole session."""

from __future__ import annotations

import logging
from pathlib import Path

import pytest
import ray

from ecosystem import Config, load_config, run

# A run small enough for a test: 4 nodes, 2 cycles, a few seconds on two cores.
SMALL = [
    "topology.nodes=4",
    "cycles=2",
    "traffic.prompts_per_node=64",
    "training.own_examples=128",
    "training.steps=30",
    "evaluation.prompts_per_set=50",
]


def small_config(*overrides: str) -> Config:
    return load_config(overrides=[*SMALL, *overrides])


@pytest.fixture(scope="session", autouse=True)
def ray_cluster() -> None:
    """One embedded Ray for the whole session: runs in this process attach to it."""
    ray.init(address="local", num_cpus=2, include_dashboard=False, logging_level=logging.WARNING)
    yield
    ray.shutdown()


@pytest.fixture(scope="session")
def small_run(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A finished small run directory (ring of 4, node 0 attacked every cycle, 2 hosts)."""
    out = tmp_path_factory.mktemp("runs") / "small"
    run(small_config(), out)
    return out


@pytest.fixture(scope="session")
def clean_run(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The same small run with no attack: the unattacked twin."""
    out = tmp_path_factory.mktemp("runs") / "clean"
    run(small_config("attack=[]"), out)
    return out
