"""The `cascade` command."""

from __future__ import annotations

import contextlib
import datetime
import errno
import importlib
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Annotated, NoReturn

import polars as pl
import typer
from rich.console import Console
from rich.markup import escape
from rich.progress import BarColumn, MofNCompleteColumn, TextColumn, TimeElapsedColumn
from rich.progress import Progress as ProgressBar
from rich.table import Table
from rich.text import Text

import topologies
from bench import BENCHMARKS
from ecosystem import kinds
from ecosystem.config import ConfigError, load_config
from ecosystem.progress import Progress, StageStart
from ecosystem.results import ResultsError, RunDirectory, RunResult, package_versions, write_json
from ecosystem.sweeps import SweepDirectory, SweepProgress, sweep
from ecosystem.terminal import one_line
from ecosystem.world import WorldError
from poisoning import TargetingError
from topologies import TopologyError

app = typer.Typer(add_completion=False, no_args_is_help=True, help="Multi-model ecosystem cascade simulator.")
console = Console()
errors = Console(stderr=True)
USER_ERRORS = (ConfigError, WorldError, ResultsError, TopologyError, TargetingError)


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
    resume_dir: Annotated[
        Path | None, typer.Option("--resume", help="continue the run in this directory from its last cycle")
    ] = None,
    hosts: Annotated[int | None, typer.Option("--hosts", help="ModelHost actors (default: from Ray's CPUs)")] = None,
    ray_address: Annotated[
        str | None, typer.Option("--ray-address", help="attach to a Ray cluster ('auto' or host:port)")
    ] = None,
) -> None:
    """Run a cascade (or resume one) and print a per-cycle table at the end."""
    placement = [f"hosting.{key}={value!r}" for key, value in (("hosts", hosts), ("ray_address", ray_address)) if value]
    try:
        if resume_dir is not None:
            if config or out or overrides or seed is not None:
                raise ConfigError("--resume continues a run as configured: drop --config, --out, --set and --seed")
            hosting = load_config(RunDirectory(resume_dir).config_path, placement).hosting if placement else None
            from ecosystem.engine import resume  # torch and Ray: only once the arguments are good

            result = _with_progress(lambda report: resume(resume_dir, report, hosting))
        else:
            resolved = load_config(config, [*(overrides or []), *placement], seed)
            out = out or Path("runs") / datetime.datetime.now().strftime("%Y%m%d-%H%M%S")
            from ecosystem.engine import run

            result = _with_progress(lambda report: run(resolved, out, report))
    except USER_ERRORS as error:
        _refuse(error)
    except OSError as error:
        where = resume_dir or out
        _refuse(_environment_error(error, where, f"cascade run --resume {where}"))
    print_summary(result)


def _refuse(error: Exception) -> NoReturn:
    """A user mistake: one line on stderr, exit code 2, no traceback."""
    errors.print(Text.assemble(("error:", "red"), f" {one_line(error)}"), soft_wrap=True, highlight=False)
    raise typer.Exit(2) from None


def _environment_error(error: OSError, where: Path | None, again: str) -> Exception:
    """An error of the machine rather than of the program, as one line; a full disk says how to go on."""
    if error.errno in (errno.ENOSPC, errno.EDQUOT):
        return ResultsError(f"no space left on the device writing {error.filename or where}; free some, then: {again}")
    return error


def _with_progress(work: Callable[[Progress], RunResult]) -> RunResult:
    columns = (TextColumn("{task.description:<44}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn())
    with ProgressBar(*columns, console=console, transient=True) as bar:
        task = bar.add_task("starting", total=None)

        def report(start: StageStart) -> None:
            description = f"cycle {start.cycle}/{start.cycles}: {start.stage.label}"
            bar.update(task, description=description, completed=start.done, total=start.total)

        return work(report)


def print_summary(result: RunResult) -> None:
    if alignment := result.summary.get("alignment"):
        table = Table(title="alignment of the base, on held-out prompts")
        for column in ("", "refusal", "over-refusal", "benign answered"):
            table.add_column(column, justify="right")
        for stage, figures in alignment.items():
            table.add_row(stage, *(_figure(figures[name]) for name in ("refusal_rate", "over_refusal", "helpfulness")))
        console.print(table)
    summary = result.summary
    twin = "infected_share_final" in summary  # an attacked run, measured against its poison-free twin
    table = Table(title="cascade, per cycle")
    columns = ["cycle", "mean refusal", "drifted nodes", "attacked refusal", "unattacked refusal", "helpfulness"]
    for column in columns + (["twin refusal", "infected"] if twin else []):
        table.add_column(column, justify="right")
    nodes, unattacked = summary["nodes"], result.metrics.filter(~pl.col("attacked"))["node"].n_unique()
    for row in summary["per_cycle"]:
        cells = [
            str(row["cycle"]),
            _figure(row["mean_refusal"]),
            f"{row['drifted_nodes']}/{nodes}",
            _figure(row["attacked_refusal"]),
            _figure(row["unattacked_refusal"]),
            _figure(row["mean_helpfulness"]),
        ]
        if twin:
            cells += [_figure(row["twin_mean_refusal"]), f"{row['infected_unattacked']}/{unattacked}"]
        table.add_row(*cells)
    console.print(table)
    console.print(f"systemic drift (against each node's cycle 0): {_at_cycle(summary['time_to_systemic'])}")
    if twin:
        console.print(f"systemic infection (against the twin): {_at_cycle(summary['time_to_systemic_infection'])}")
        if breaches := summary["causal_horizon_breaches"]:
            errors.print(
                f"warning: {breaches} node-cycles differ from the twin before the poison could reach them: "
                "the twin is not an exact counterfactual of this run"
            )
    warn_of_unlearned_bases(result.metrics)
    console.print(f"results: {one_line(result.path)}", markup=False, highlight=False)


def _at_cycle(cycle: int | None) -> str:
    return "not reached" if cycle is None else f"at cycle {cycle}"


def warn_of_unlearned_bases(metrics: pl.DataFrame) -> None:
    """A warning for each base that has not learned its tasks (see `unlearned_bases`)."""
    from ecosystem.analysis import unlearned_bases  # scipy: only once there are metrics

    for found in unlearned_bases(metrics):
        cell = escape(one_line("".join(f"{key} {value}, " for key, value in found.where.items())))
        base = escape(one_line(found.base))  # a name from the configuration
        console.print(
            f"[yellow]warning:[/] {cell}base '{base}' answered {found.helpfulness:.2f} of the benign requests "
            "at cycle 0: it has not learned its tasks, so its refusal says little (tiny world: raise "
            "model.pretrain_steps or try another model.seed)",
            highlight=False,
        )


def _figure(value: float | None) -> str:
    return "-" if value is None else f"{value:.2f}"


@app.command("sweep")
def sweep_command(
    spec: Annotated[Path, typer.Argument(help="sweep file (TOML): base, seeds, [grid] and [[zip]] axes")],
    out: Annotated[Path, typer.Option("--out", "-o", help="sweep directory; the same command again resumes it")],
    ray_address: Annotated[
        str | None, typer.Option("--ray-address", help="attach to a Ray cluster ('auto' or host:port)")
    ] = None,
) -> None:
    """Run every cell of a sweep file for each of its seeds, in parallel as Ray tasks; run it again to resume."""
    try:
        with _sweep_progress() as report:
            result = sweep(spec, out, report, ray_address)
    except USER_ERRORS as error:
        _refuse(error)
    except OSError as error:
        _refuse(_environment_error(error, out, f"cascade sweep {spec} --out {out}"))
    directory = SweepDirectory(result.path)
    warn_of_unlearned_bases(result.metrics)
    console.print(
        f"{len(result.cells)} runs complete: {one_line(directory.cells_path)}, {one_line(directory.metrics_path)}",
        soft_wrap=True,
        markup=False,
    )


@contextlib.contextmanager
def _sweep_progress() -> Iterator[Callable[[SweepProgress], None]]:
    """A progress bar over a sweep's runs, naming the running ones."""
    columns = (TextColumn("{task.description:<60}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn())
    with ProgressBar(*columns, console=console, transient=True) as bar:
        task = bar.add_task("starting", total=None)

        def report(progress: SweepProgress) -> None:
            names = ", ".join(progress.running[:3]) + (", ..." if len(progress.running) > 3 else "")
            description = f"running {names}" if names else "starting runs"
            bar.update(task, description=description, completed=progress.done, total=progress.total)

        yield report


@app.command("experiment")
def experiment_command(
    name: Annotated[str, typer.Argument(help="an experiment of experiments/ (see experiments/README.md)")],
    quick: Annotated[bool, typer.Option("--quick", help="a reduced version, in a few minutes")] = False,
    out: Annotated[
        Path | None, typer.Option("--out", "-o", help="default: experiment-results/NAME (or NAME-quick)")
    ] = None,
    ray_address: Annotated[
        str | None, typer.Option("--ray-address", help="attach to a Ray cluster ('auto' or host:port)")
    ] = None,
) -> None:
    """Run a named experiment (its sweeps, resumed where they stopped), apply its pre-registered verdict
    rule, and write OUT/verdict.json, OUT/cells.parquet and OUT/report/report.md."""
    from ecosystem.experiments import run_experiment

    out = out or Path("experiment-results") / (f"{name}-quick" if quick else name)
    try:
        with _sweep_progress() as report:
            result = run_experiment(name, out, quick, report, ray_address)
    except USER_ERRORS as error:
        _refuse(error)
    except OSError as error:
        again = f"cascade experiment {name}" + (" --quick" if quick else "") + f" --out {out}"
        _refuse(_environment_error(error, out, again))
    table = Table("claim", "verdict", "why", title=f"{result.verdict['title']}" + (" (quick)" if quick else ""))
    for finding in result.verdict["findings"]:
        table.add_row(finding["name"], finding["verdict"], finding["reason"])
    console.print(table)
    for part, sweep_result in result.sweeps.items():
        warn_of_unlearned_bases(sweep_result.metrics.with_columns(sweep=pl.lit(part)))
    console.print(f"report: {one_line(out / 'report' / 'report.md')}", soft_wrap=True, highlight=False, markup=False)


@app.command("bench")
def bench_command(
    name: Annotated[str, typer.Argument(help=f"one of: {', '.join(BENCHMARKS)}")] = "cycle",
    config: Annotated[Path | None, typer.Option("--config", "-c", help="TOML config file (default: built-in)")] = None,
    overrides: Annotated[list[str] | None, typer.Option("--set", help="override a config key")] = None,
    quick: Annotated[bool, typer.Option("--quick", help="a reduced version, in a few minutes")] = False,
    out: Annotated[Path, typer.Option("--out", "-o", help="where to write bench.json")] = Path("bench-results"),
) -> None:
    """Run a benchmark shipped with the package: a table of ratios measured within one run, and
    OUT/NAME/bench.json. The benchmark's own scenario settings apply first, then the config and --set."""
    try:
        if name not in BENCHMARKS:
            raise ConfigError(f"no benchmark {name!r}; available: {', '.join(BENCHMARKS)}")
        module = importlib.import_module(f"bench.{name}")
        resolved = load_config(config, [*module.DEFAULTS, *(overrides or [])])
        result = module.main(resolved, quick)
        path = out / name / "bench.json"
        path.parent.mkdir(parents=True, exist_ok=True)
        write_json(path, {"benchmark": name, "config": resolved.settings(), "versions": package_versions(), **result})
    except (*USER_ERRORS, OSError) as error:
        _refuse(error)
    console.print(f"results: {one_line(path)}", soft_wrap=True, highlight=False, markup=False)


@app.command("report")
def report_command(
    directory: Annotated[Path, typer.Argument(help="a finished run or sweep directory", metavar="DIR")],
) -> None:
    """Write DIR/report/report.md with figures for a finished run or sweep (replacing an older report)."""
    from ecosystem.reporting import report  # matplotlib and scipy: only when drawing

    try:
        written = report(directory)
    except (*USER_ERRORS, OSError) as error:
        _refuse(error)
    console.print(f"report: {one_line(written)}", soft_wrap=True, highlight=False, markup=False)


@app.command("kinds")
def kinds_command(
    group: Annotated[kinds.GroupName | None, typer.Argument(help="only attacks, defenses or topologies")] = None,
) -> None:
    """List every attack, defense and topology family with its parameters: type, range, default and meaning."""
    for name, listed in kinds.groups().items():
        if group in (None, name):
            console.print(_kinds_table(name, listed))
    if group in (None, "topologies"):
        console.print(
            f"node domains (topology.domains): {', '.join(topologies.DOMAIN_MODES)}; "
            f"edge weights (topology.weights): {', '.join(topologies.WEIGHT_MODES)}",
            soft_wrap=True,
            highlight=False,
        )


def _kinds_table(name: str, group: kinds.Group) -> Table:
    """A section per kind: its name and description, then a row per parameter (all plain text: a
    default such as `[0]` is no markup)."""
    table = Table("kind", "parameter", "type", "range", "default", "description", title=Text(f"{name}: {group.where}"))
    for kind in ([group.common] if group.common else []) + group.kinds:
        table.add_row(Text(kind.name, style="bold"), "", "", "", "", Text(kind.description, style="italic"))
        for parameter in kind.parameters:
            cells = (parameter.name, parameter.type, parameter.range, parameter.default, parameter.description)
            table.add_row("", *map(Text, cells))
        table.add_section()
    return table


@app.command("graph")
def graph_command(
    config: Annotated[Path | None, typer.Option("--config", "-c", help="TOML config file (default: built-in)")] = None,
    out: Annotated[Path, typer.Option("--out", "-o", help="image file: .png, .svg or .pdf")] = Path("graph.png"),
    overrides: Annotated[
        list[str] | None, typer.Option("--set", help="override a config key, e.g. --set topology.name=star")
    ] = None,
    seed: Annotated[int | None, typer.Option("--seed", help="run seed (overrides the config)")] = None,
) -> None:
    """Draw the configured topology: colour is the node's domain, arrows show who learns from whom."""
    try:
        resolved = load_config(config, overrides or [], seed)
        graph = resolved.topology.graph(resolved.seed)
        if out.suffix.lower() not in (".png", ".svg", ".pdf"):
            raise ConfigError(f"--out {out}: the image must be a .png, .svg or .pdf file")
        from ecosystem.drawings import draw_graph  # matplotlib: only when drawing

        figure = draw_graph(graph, f"{resolved.topology.name}, seed {resolved.seed}")
        figure.savefig(out, dpi=150, bbox_inches="tight")
    except (*USER_ERRORS, OSError) as error:
        _refuse(error)
    measures = topologies.graph_measures(graph)
    described = ", ".join(f"{key} {_number(value)}" for key, value in measures.items())
    console.print(f"{one_line(out)}: {described}", soft_wrap=True, markup=False)


def _number(value: float | None) -> str:
    return "-" if value is None else f"{value:.3g}"


if __name__ == "__main__":
    app()
