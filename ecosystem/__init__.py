"""Multi-model ecosystem cascade simulator: how a local drift in safety spreads through models
that learn from each other.

    from ecosystem import load_config, run
    result = run(load_config(overrides=["topology.nodes=6"]), "runs/demo")
    print(result.summary["final_mean_refusal"])

Imports are lazy: `import ecosystem.config` (or the CLI's argument checks, or the dashboard)
does not load torch, Ray or transformers.
"""

from __future__ import annotations

import importlib
import os
from typing import Any

# On shared cores, OpenMP threads that wait by spinning slow every other computation (measured: two base
# builds at once beside other jobs, 34-40 s passive, unfinished after 240 s otherwise; see README "Throughput").
# Set before torch loads OpenMP, so every entry point (the `cascade` command, the dashboard's runs, Ray's
# workers, a notebook) waits passively, unless told otherwise.
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

_EXPORTS = {
    "Config": "ecosystem.config",
    "ConfigError": "ecosystem.config",
    "load_config": "ecosystem.config",
    "BaseRefused": "ecosystem.gate",
    "RunDirectory": "ecosystem.results",
    "RunResult": "ecosystem.results",
    "Status": "ecosystem.results",
    "run": "ecosystem.engine",
    "resume": "ecosystem.engine",
    "sweep": "ecosystem.sweeps",
    "load_sweep": "ecosystem.sweeps",
    "SweepResult": "ecosystem.sweeps",
    "report": "ecosystem.reporting",
}
__all__ = sorted(_EXPORTS)


def __getattr__(name: str) -> Any:
    if name not in _EXPORTS:
        raise AttributeError(f"module 'ecosystem' has no attribute {name!r}")
    return getattr(importlib.import_module(_EXPORTS[name]), name)
