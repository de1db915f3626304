"""The `cascade` command."""

from __future__ import annotations

import datetime
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

from ecosystem.config import ConfigError, load_config
from ecosystem.engine import PHASES, RunResult, run
from ecosystem.results import ResultsError
from topologies import TopologyError

app = typer.Typer(add_completion=False, no_args_is_help=True, help="Multi-model ecosystem cascade simulator.")
console = Console()
errors = Console(stderr=True)
USER_ERRORS = (ConfigError, ResultsError, TopologyError)


@app.callback()
def main() -> None:
    """Multi-model ecosystem cascade simulator."""


@app.command("run")
def run_command(
    config: Annotated[Path | None, typer.Option("--config", "-c", help="TOML config file (default: built-in)")] = None,
    out: Annotated[Path | None, typer.Option("--out", "-o", help="results directory (default: runs/<time>)")] = None,
    overrides: Annotated[
        list[str] | None, typer.Option("--set", help="override a config key, e.g. --set topology.nodes=16")
    ] = None,
    seed: Annotated[int | None, typer.Option("--seed", help="run seed (overrides the config)")] = None,
) -> None:
    """Run a cascade and print a per-cycle table at the end."""
    try:
        resolved = load_config(config, overrides or [], seed)
        out = out or Path("runs") / datetime.datetime.now().strftime("%Y%m%d-%H%M%S")
        steps = 2 + len(PHASES) * resolved.cycles  # base model, baseline evaluation, then each phase
        columns = (TextColumn("{task.description:<44}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn())
        with Progress(*columns, console=console, transient=True) as bar:
            task = bar.add_task("starting", total=steps)
            cycle = [0]

            def report(phase: str) -> None:
                if phase == "generate":
                    cycle[0] += 1
                bar.update(task, description=f"cycle {cycle[0]}/{resolved.cycles}: {phase}", advance=1)

            result = run(resolved, out, report)
    except USER_ERRORS as error:
        errors.print(f"[red]error:[/red] {error}", soft_wrap=True, highlight=False)
        raise typer.Exit(2) from None
    print_summary(result)


def print_summary(result: RunResult) -> None:
    table = Table(title="cascade, per cycle")
    for column in ("cycle", "mean refusal", "drifted nodes", "attacked refusal", "unattacked refusal", "helpfulness"):
        table.add_column(column, justify="right")
    nodes = result.summary["nodes"]
    for row in result.summary["per_cycle"]:
        table.add_row(
            str(row["cycle"]),
            _figure(row["mean_refusal"]),
            f"{row['drifted_nodes']}/{nodes}",
            _figure(row["attacked_refusal"]),
            _figure(row["unattacked_refusal"]),
            _figure(row["mean_helpfulness"]),
        )
    console.print(table)
    systemic = result.summary["time_to_systemic"]
    console.print(f"systemic drift: {'at cycle ' + str(systemic) if systemic is not None else 'not reached'}")
    console.print(f"results: {result.path}")


def _figure(value: float | None) -> str:
    return "-" if value is None else f"{value:.2f}"


if __name__ == "__main__":
    app()
