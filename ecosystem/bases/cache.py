"""The on-disk cache of built models (`ECOSYSTEM_CACHE`, else ~/.cache/ecosystem): each entry is built
once, into a staging folder renamed into place, so that a reader never sees a half-built entry, and
with a fixed thread count, so that a build gives the same weights on any machine of one kind."""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import tempfile
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from filelock import FileLock

from ecosystem.config import ConfigError

DONE = "build.json"  # written last by every build: an entry without it is rebuilt
BUILD_THREADS = 2  # fixed, so that a build gives the same weights on any machine of one kind


def cache_root() -> Path:
    return Path(os.environ.get("ECOSYSTEM_CACHE", Path.home() / ".cache" / "ecosystem"))


def check_cache() -> None:
    """Refuse a cache that builds cannot write into (a file, a read-only folder) in one line, before a
    run creates anything: a build would otherwise fail halfway through the run."""
    root = cache_root()
    try:
        root.mkdir(parents=True, exist_ok=True)
        tempfile.TemporaryFile(dir=root).close()
    except OSError as error:
        raise ConfigError(
            f"the model cache {root} (ECOSYSTEM_CACHE) is not a writable directory ({error.strerror or error}); "
            "point ECOSYSTEM_CACHE at one"
        ) from None


def cache_key(recipe: Any) -> str:
    return hashlib.sha256(json.dumps(recipe, sort_keys=True, default=str).encode()).hexdigest()[:16]


def build_once(target: Path, build: Callable[[Path], dict[str, Any]]) -> Path:
    """`target`, built first by `build(staging)` if missing; what `build` returns is written to its
    build.json. Concurrent callers (Ray hosts, sweeps) wait for one build."""
    target.parent.mkdir(parents=True, exist_ok=True)
    with FileLock(f"{target}.lock"):
        if not (target / DONE).exists():
            staging = Path(tempfile.mkdtemp(prefix=".building-", dir=target.parent))
            try:
                record = build(staging)
                (staging / DONE).write_text(json.dumps(record, indent=1))
                shutil.rmtree(target, ignore_errors=True)
                staging.rename(target)
            finally:
                shutil.rmtree(staging, ignore_errors=True)
    return target


@contextmanager
def build_threads() -> Iterator[None]:
    """A fixed thread count while building, so that a build gives the same weights on any machine of one kind."""
    import torch  # here: checking the cache (before a sweep starts) needs no torch

    threads = torch.get_num_threads()
    torch.set_num_threads(BUILD_THREADS)
    try:
        yield
    finally:
        torch.set_num_threads(threads)
