"""Multi-model ecosystem cascade simulator: how a local drift in safety spreads through models
that learn from each other.

    from ecosystem import load_config, run
    result = run(load_config(overrides=["topology.nodes=6"]), "runs/demo")
    print(result.summary["final_mean_refusal"])
"""

from ecosystem.config import Config, ConfigError, load_config
from ecosystem.engine import RunResult, resume, run

__all__ = ["Config", "ConfigError", "RunResult", "load_config", "resume", "run"]
