"""The `cascade` command."""

from __future__ import annotations

import contextlib
import datetime
import errno
import importlib
import importlib.metadata
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Annotated, NoReturn

import polars as pl
import typer
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, TextColumn, TimeElapsedColumn
from rich.progress import Progress as ProgressBar
from rich.table import Table
from rich.text import Text

import topologies
from bench import BENCHMARKS
from ecosystem import kinds
from ecosystem.config import ConfigError, load_config
from ecosystem.progress import Progress, StageStart
from ecosystem.results import (
    ResultsError,
    RunDirectory,
    RunResult,
    git_commit,
    package_versions,
    provenance,
    write_json,
)
from ecosystem.sweeps import SweepDirectory, SweepProgress, sweep
from ecosystem.terminal import one_line
from ecosystem.world import WorldError
from poisoning import TargetingError
from topologies import TopologyError

app = typer.Typer(
    add_completion=False, no_args_is_help=True, rich_markup_mode=None, help="Multi-model ecosystem cascade simulator."
)
console = Console()
errors = Console(stderr=True)
USER_ERRORS = (ConfigError, WorldError, ResultsError, TopologyError, TargetingError)


def _print_version(asked: bool) -> None:
    if not asked:
        return
    commit, dirty = git_commit()
    checkout = f" (git commit {commit}{', with uncommitted changes' if dirty else ''})" if commit else ""
    console.print(
        f"cascade {importlib.metadata.version('ecosystem-cascade')}{checkout}",
        markup=False,
        highlight=False,
        soft_wrap=True,
    )
    raise typer.Exit()


@app.callback()
def main(
    version: Annotated[
        bool,
        typer.Option(
            "--version", callback=_print_version, is_eager=True, help="print the version (and git commit) and exit"
        ),
    ] = False,
) -> None:
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
            directory = RunDirectory(resume_dir)
            directory.refuse_if_live()
            directory.resumable()  # a complete or damaged run is refused here, in a second, before torch and Ray load
            hosting = load_config(directory.config_path, placement).hosting if placement else None
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
    """A progress bar in a terminal; elsewhere (a pipe, a file, nohup) a line per stage as it starts."""
    if not console.is_terminal:
        started = time.perf_counter()

        def print_line(start: StageStart) -> None:
            seconds = time.perf_counter() - started
            print(f"[{seconds:7.1f} s] stage {start.done + 1}/{start.total}, {start.description}", flush=True)

        return work(print_line)
    columns = (TextColumn("{task.description:<44}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn())
    with ProgressBar(*columns, console=console, transient=True) as bar:
        task = bar.add_task("starting", total=None)

        def report(start: StageStart) -> None:
            bar.update(task, description=start.description, completed=start.done, total=start.total)

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
    if effect := summary.get("defense"):
        console.print(_defense_effect(effect), soft_wrap=True, highlight=False)
    print_stage_seconds(RunDirectory(result.path).read_manifest().seconds)
    console.print(f"results: {one_line(result.path)}", markup=False, highlight=False)
    parent = one_line(result.path.resolve().parent)
    console.print(
        f"next: cascade report {one_line(result.path)}   (report.md with figures)\n"
        f"      streamlit run app.py -- --runs {parent}   (the dashboard, from the repository root)",
        markup=False,
        highlight=False,
        soft_wrap=True,
    )


DEFENSE_FIGURES = {  # summary["defense"]'s figures, in the order and words the summary line gives them
    "refusal_kept": "refusal kept (unattacked nodes)",
    "protection": "protection (infection prevented)",
    "helpfulness_lost": "helpfulness lost",
    "over_refusal_gained": "over-refusal gained",
    "clean_helpfulness_lost": "helpfulness lost without attack",
}


def _defense_effect(effect: dict[str, float | None]) -> str:
    """The defenses' effect against the control run without them: benefit first, then cost."""
    figures = ", ".join(
        f"{words} {effect[key]:+.2f}" for key, words in DEFENSE_FIGURES.items() if effect.get(key) is not None
    )
    return f"defense effect (against the same run without defenses, at the last cycle): {figures}"


def print_stage_seconds(seconds: dict[str, float]) -> None:
    """The seconds spent in each stage (the manifest's), left on screen once the progress bar is gone."""
    stages = ", ".join(f"{stage.replace('_', ' ')} {value:.1f}" for stage, value in seconds.items() if stage != "total")
    total = f"; total {seconds['total']:.1f} s" if "total" in seconds else ""
    console.print(f"seconds per stage: {stages}{total}", soft_wrap=True, highlight=False, markup=False)


def _at_cycle(cycle: int | None) -> str:
    return "not reached" if cycle is None else f"at cycle {cycle}"


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
    console.print(_cells_table(result.cells, directory.read_axes()))
    console.print(
        f"{len(result.cells)} runs complete: {one_line(directory.cells_path)}, {one_line(directory.metrics_path)}",
        soft_wrap=True,
        markup=False,
    )


CELL_FIGURES = {  # the figures of a sweep's per-cell table, and their column names
    "final_unattacked_refusal": "unattacked refusal",
    "final_attacked_refusal": "attacked refusal",
    "helpfulness_retained": "helpfulness retained",
    "infected_share_final": "infected share",
}


def _cells_table(cells: pl.DataFrame, axes: list[str]) -> Table:
    """A row per cell of a sweep: its axis values and the mean over its seeds of a few figures at the
    last cycle (those the runs have: an infected share needs twins)."""
    axes = axes or ["cell"]  # a sweep of seeds only: one cell
    figures = [name for name in CELL_FIGURES if name in cells.columns and cells[name].is_not_null().any()]
    table = Table(title="per cell, mean over seeds at the last cycle")
    for axis in axes:
        table.add_column(Text(axis), overflow="fold")
    for column in ["seeds", *(CELL_FIGURES[name] for name in figures)]:
        table.add_column(column, justify="right")
    means = cells.group_by(axes).agg(pl.len().alias("seeds"), pl.col(figures).mean()).sort(axes)
    for row in means.iter_rows(named=True):
        values = (Text(str(row[axis])) for axis in axes)
        table.add_row(*values, str(row["seeds"]), *(_figure(row[name]) for name in figures))
    return table


@contextlib.contextmanager
def _sweep_progress() -> Iterator[Callable[[SweepProgress], None]]:
    """A progress bar over a sweep's runs, naming the running ones; elsewhere than in a terminal, a line
    each time a run starts or finishes."""
    if not console.is_terminal:
        started, last = time.perf_counter(), None

        def print_line(progress: SweepProgress) -> None:
            nonlocal last
            if (progress.done, progress.running) != last:
                last = (progress.done, progress.running)
                seconds = time.perf_counter() - started
                line = f"[{seconds:7.1f} s] {progress.done}/{progress.total} runs done, running: {_names(progress)}"
                print(one_line(line), flush=True)

        yield print_line
        return
    columns = (TextColumn("{task.description:<60}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn())
    with ProgressBar(*columns, console=console, transient=True) as bar:
        task = bar.add_task("starting", total=None)

        def report(progress: SweepProgress) -> None:
            description = f"running {_names(progress)}" if progress.running else "starting runs"
            bar.update(task, description=description, completed=progress.done, total=progress.total)

        yield report


def _names(progress: SweepProgress) -> str:
    return ", ".join(progress.running[:3]) + (", ..." if len(progress.running) > 3 else "") or "none"


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
    overrides: Annotated[
        list[str] | None,
        typer.Option("--set", help="set a config key in every sweep's base, e.g. --set generation.engine=vllm"),
    ] = None,
) -> None:
    """Run a named experiment (its sweeps, resumed where they stopped), apply its pre-registered verdict
    rule, and write OUT/verdict.json, OUT/cells.parquet and OUT/report/report.md."""
    from ecosystem.experiments import load_experiment, run_experiment

    out = out or Path("experiment-results") / (f"{name}-quick" if quick else name)
    try:
        for warning in load_experiment(name, quick, overrides or ()).too_few_seeds():
            console.print(f"warning: {warning}", soft_wrap=True, highlight=False, markup=False)
        with _sweep_progress() as report:
            result = run_experiment(name, out, quick, report, ray_address, overrides or ())
    except USER_ERRORS as error:
        _refuse(error)
    except OSError as error:
        again = f"cascade experiment {name}" + (" --quick" if quick else "") + f" --out {out}"
        _refuse(_environment_error(error, out, again))
    table = Table("claim", "verdict", "why", title=f"{result.verdict['title']}" + (" (quick)" if quick else ""))
    for finding in result.verdict["findings"]:
        table.add_row(finding["name"], finding["verdict"], finding["reason"])
    console.print(table)
    console.print(f"report: {one_line(out / 'report' / 'report.md')}", soft_wrap=True, highlight=False, markup=False)


@app.command("calibrate")
def calibrate_command(
    quick: Annotated[bool, typer.Option("--quick", help="a reduced version, in a few minutes")] = False,
    out: Annotated[
        Path | None,
        typer.Option(
            "--out", "-o", help="default: experiments/results/calibration; quick: experiment-results/calibration-quick"
        ),
    ] = None,
    resume: Annotated[bool, typer.Option("--resume", help="continue the calibration in OUT where it stopped")] = False,
    config: Annotated[
        Path | None, typer.Option("--config", "-c", help="TOML config file whose settings the protocols run on")
    ] = None,
    overrides: Annotated[
        list[str] | None, typer.Option("--set", help="override a config key, e.g. --set training.steps=120")
    ] = None,
    real: Annotated[
        Path | None,
        typer.Option(
            "--real", help="a real model's finished calibration or `transfer` experiment, shown beside the organism"
        ),
    ] = None,
    ray_address: Annotated[
        str | None, typer.Option("--ray-address", help="attach to a Ray cluster ('auto' or host:port)")
    ] = None,
) -> None:
    """Run the calibration protocols (benign erosion, dose, rehearsal, accumulate against replace) over 3 bases
    and 3 seeds each, and write OUT/calibration.json and OUT/report.md: each figure beside the published one."""
    from ecosystem.calibration import calibrate

    out = out or (Path("experiment-results/calibration-quick") if quick else Path("experiments/results/calibration"))
    try:
        with _sweep_progress() as report:
            result = calibrate(out, quick, resume, config, overrides or [], real, report, ray_address)
    except USER_ERRORS as error:
        _refuse(error)
    except OSError as error:
        _refuse(_environment_error(error, out, f"cascade calibrate --resume --out {out}"))
    table = Table("protocol", "organism", "target", "", title="calibration" + (" (quick)" if quick else ""))
    for row in result.calibration["protocols"]:
        value, target = row["value"], row["target"]
        interval = f" [{value['low']:.2f}, {value['high']:.2f}]" if value["low"] is not None else ""
        verdict = {True: "pass", False: "fail", None: "-"}[row["pass"]]
        table.add_row(row["label"], f"{_figure(value['mean'])}{interval}", target["text"] if target else "-", verdict)
    console.print(table)
    console.print(f"report: {one_line(out / 'report.md')}", soft_wrap=True, highlight=False, markup=False)


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
        from ecosystem.shard import NODE_THREADS  # torch: the benchmark imports it anyway

        resolved = load_config(config, [*module.DEFAULTS, *(overrides or [])])
        result = module.main(resolved, quick)
        path = out / name / "bench.json"
        path.parent.mkdir(parents=True, exist_ok=True)
        recorded = {
            "config": resolved.settings(),
            "versions": package_versions(),
            "provenance": provenance(NODE_THREADS).model_dump(),
        }
        write_json(path, {"benchmark": name, **recorded, **result})
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


@app.command("judge-check")
def judge_check_command(
    directory: Annotated[Path, typer.Argument(help="a run, sweep or experiment that kept responses", metavar="DIR")],
    labels: Annotated[Path, typer.Argument(help="the CSV of drawn responses and hand labels", metavar="LABELS")],
    count: Annotated[int, typer.Option("--count", min=1, help="how many responses to draw")] = 50,
    seed: Annotated[int, typer.Option("--seed", help="the seed of the draw")] = 0,
) -> None:
    """Check the judge by hand. Without LABELS: draw COUNT judged responses under DIR at random into LABELS, without
    the judge's grades, for a person to fill in each hand_label (refused, complied or evasive). With LABELS
    labelled: set them beside the judge's grades, print the agreement on refusal and write LABELS-scored.csv and
    LABELS-agreement.json."""
    from ecosystem.judge_check import HAND_LABELS, draw, score  # scipy: only here

    try:
        if not labels.exists():
            draw(directory, labels, count, seed)
            drawn = f"drawn: {one_line(labels)}; fill in hand_label ({', '.join(HAND_LABELS)}), then run again"
            console.print(drawn, soft_wrap=True, highlight=False, markup=False)
            return
        summary = score(directory, labels)
    except (*USER_ERRORS, OSError) as error:
        _refuse(error)
    low, high = summary["agreement_interval"]
    console.print(
        f"the judge agrees with the hand labels on refusal for {summary['agreed_on_refusal']} of "
        f"{summary['responses']} responses ({summary['agreement']:.2f}, 95% interval [{low:.2f}, {high:.2f}])",
        soft_wrap=True,
        highlight=False,
        markup=False,
    )
    table = Table("kind", "hand label", "judge", "responses", title="hand labels against the judge's grades")
    for row in summary["counts"]:
        table.add_row(row["kind"], row["hand_label"], row["outcome"], str(row["responses"]))
    console.print(table)


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
