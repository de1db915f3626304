"""Launching a run from the dashboard: a background `cascade run` process, and its log."""

from __future__ import annotations

import shutil
import subprocess
import sys
import threading
from pathlib import Path
from typing import Any, get_args

import topologies
from ecosystem.config import WORLD_KINDS, GenerationConfig, load_config
from poisoning import DEFENSES

CASCADE = shutil.which("cascade", path=str(Path(sys.executable).parent)) or "cascade"
NO_DEFENSE = "none"
DEFENSE_CHOICES = (NO_DEFENSE, *(defense.kind_name() for defense in DEFENSES))
WORLD_CHOICES = WORLD_KINDS
ENGINE_CHOICES = get_args(GenerationConfig.model_fields["engine"].annotation)  # hf, vllm


class LaunchError(RuntimeError):
    """A launch refused or failed: the message says why."""


LAUNCHED: dict[Path, subprocess.Popen[bytes]] = {}  # the runs this server process started, by directory


def listing(values: Any) -> str:
    """Numbers as the launch form and the runs table show them: 0,3."""
    return ",".join(map(str, values)) if isinstance(values, list) else str(values)


def launch_overrides(
    *,
    world: str,
    engine: str,
    topology: str,
    nodes: int,
    cycles: int,
    targets: str,
    dose: int,
    attack_cycles: str,
    defense: str,
    more: str,
) -> list[str]:
    """The `--set` overrides for the launch form's values; `more` holds further key=value lines (a
    checkpoint world's file paths among them)."""
    sized = "nodes" in topologies.family(topology).model_fields  # other families take their size from their parameters
    return [
        f'world.kind="{world}"',
        f'generation.engine="{engine}"',
        f"topology.name={topology}",
        *([f"topology.nodes={nodes}"] if sized else []),
        f"cycles={cycles}",
        f"attack.0.targets={_toml_list(targets)}",
        f"attack.0.examples={dose}",
        f"attack.0.cycles={_toml_list(attack_cycles)}",
        *([f'defense.0.kind="{defense}"'] if defense != NO_DEFENSE else []),
        *(line.strip() for line in more.splitlines() if line.strip()),
    ]


def _toml_list(text: str) -> str:
    """A form field such as 0, 3 as the TOML list [0, 3]; a word (all) stays as it is."""
    return text if text.strip().isalpha() else f"[{text}]"


def launch(runs_dir: Path, name: str, overrides: list[str]) -> subprocess.Popen[bytes]:
    """Start `cascade run --out RUNS_DIR/NAME` as a background process, after checking its configuration.

    It writes only inside the runs folder (created if missing, but never its parents): RUNS_DIR/NAME
    and RUNS_DIR/.logs/NAME.log. Raises ConfigError for a bad configuration, LaunchError for a bad
    name, a runs folder that cannot be used, or a directory that already exists: creating it here is
    what refuses a second launch into the same directory."""
    if Path(name).name != name or name in ("", ".", ".."):
        raise LaunchError(f"run name {name!r} must be a plain directory name")
    load_config(overrides=overrides)
    out = (runs_dir / name).resolve()
    log = launch_log(out)
    try:
        out.parent.mkdir(exist_ok=True)
        if log.parent.is_symlink():  # the log would be written wherever it points
            raise LaunchError(f"{log.parent} is a symbolic link; a launch writes only inside the runs folder")
        out.mkdir()
    except FileExistsError:
        raise LaunchError(f"{out} already exists: a run was started there; choose another name") from None
    except FileNotFoundError:
        raise LaunchError(f"the runs folder's parent {out.parent.parent} does not exist; create it first") from None
    except OSError as error:
        raise LaunchError(f"cannot create {out}: {error.strerror or error}") from None
    log.parent.mkdir(exist_ok=True)
    command = [CASCADE, "run", "--out", str(out), *(arg for value in overrides for arg in ("--set", value))]
    try:
        with log.open("wb") as sink:
            process = subprocess.Popen(
                command, stdin=subprocess.DEVNULL, stdout=sink, stderr=subprocess.STDOUT, start_new_session=True
            )
    except OSError as error:
        out.rmdir()
        raise LaunchError(f"cannot start {CASCADE}: {error}") from None
    threading.Thread(target=process.wait, daemon=True).start()  # reaps it when it ends: no zombie
    LAUNCHED[out] = process
    return process


def launch_log(out: Path) -> Path:
    """Where a launched run's output goes: beside it, since `cascade run` wants its directory empty."""
    return out.parent / ".logs" / f"{out.name}.log"


def log_tail(out: Path, lines: int = 20) -> str:
    try:
        return "\n".join(launch_log(out).read_text(errors="replace").splitlines()[-lines:])
    except OSError:
        return ""
