"""Shared fixtures: one small finished run (and its unattacked twin) for the whole session, and
an embedded Ray for the tests that need one."""

from __future__ import annotations

import logging
from pathlib import Path

import pytest
import ray

from ecosystem import run
from ecosystem.raysecurity import temp_dir
from tests.helpers import small_config


@pytest.fixture(scope="session")
def ray_cluster() -> None:
    """One embedded Ray for the session, started by the first test that asks for it: runs in this
    process attach to it."""
    # _temp_dir: as the embedded Ray of a run, nothing that other users can read
    ray.init(address="local", num_cpus=2, include_dashboard=False, logging_level=logging.WARNING, _temp_dir=temp_dir())
    yield
    ray.shutdown()


@pytest.fixture(scope="session")
def small_run(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A finished small run directory (ring of 4, node 0 attacked every cycle), computed in process."""
    out = tmp_path_factory.mktemp("runs") / "small"
    run(small_config(), out)
    return out


@pytest.fixture(scope="session")
def clean_run(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The same small run with no attack: the unattacked twin."""
    out = tmp_path_factory.mktemp("runs") / "clean"
    run(small_config("attack=[]"), out)
    return out
