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

# The files that take longest, longest first (by pytest --durations: the real model's file took 1,125 s of a
# 3,577 s run on two workers). They start first, so that no worker is left with one of them at the end while
# the other waits: xdist's own order is by number of tests, which put the real model's file last.
SLOWEST_FIRST = (
    "test_smollm2.py",
    "test_twins.py",
    "test_poisoning.py",
    "test_real_llm.py",
    "test_hosting.py",
    "test_throughput.py",
    "test_experiments.py",
    "test_app_browser.py",
)


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    missing = [name for name in SLOWEST_FIRST if not (Path(__file__).parent / name).is_file()]
    assert not missing, f"tests/conftest.py's SLOWEST_FIRST names files that do not exist: {missing}"
    rank = {name: position for position, name in enumerate(SLOWEST_FIRST)}
    items.sort(key=lambda item: rank.get(item.path.name, len(rank)))  # stable: the rest keep their order


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
