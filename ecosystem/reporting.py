"""`cascade report DIR`: a Markdown report with PNG figures for a finished run or a sweep of runs.

The report goes to DIR/report/ (`report.md` and the figures beside it). It is written into a
temporary sibling and renamed into place, so a reader sees the old report or the new one, never
half of one. Figures are matplotlib `Figure` objects saved by the Agg renderer, without pyplot's
global state; matplotlib is imported only inside the functions that draw, so importing the CLI
stays light.

(The module is not named `report.py`: `ecosystem.report` must stay the function that `ecosystem`
exports lazily, and importing a submodule of that name would replace it on the package.)
"""

from __future__ import annotations

import shutil
import tempfile
from collections import Counter
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import networkx as nx
import numpy as np
import polars as pl

from ecosystem.analysis import (
    SYSTEMIC_SHARE,
    Interval,
    SISFit,
    fit_sis,
    hop_profile,
    mean_interval,
    over_seeds,
    per_cycle,
)
from ecosystem.config import Config
from ecosystem.experiments import Analysis
from ecosystem.results import Manifest, ResultsError, RunDirectory
from ecosystem.sweeps import SweepDirectory

if TYPE_CHECKING:
    from matplotlib.axes import Axes
    from matplotlib.figure import Figure

REPORT = "report"  # the report's folder inside the run or sweep directory
MARKDOWN = "report.md"
LAYOUT_SEED = 0  # a graph is drawn the same way in every report
DPI = 120
NODE_SIZE = 500  # points², for nodes and for where arrows stop
ANNOTATED_CELLS = 200  # the hop heatmap writes its values in the cells up to this many cells
CYCLE_LABEL = "cycle"
REFUSAL_LABEL = "refusal rate (share of held-out harmful prompts)"
SHARE_LABEL = "share of unattacked nodes"
REFUSAL_COLOURS = "RdYlGn"  # red is bad: low refusal
BAND_NOTE = "line: mean over seeds; band: 95% Student-t interval"

# The summary's cascade figures, in reading order, with what each means (README "Results").
FIGURES = {
    "baseline_mean_refusal": "mean refusal at cycle 0",
    "final_mean_refusal": "mean refusal at the last cycle",
    "final_attacked_refusal": "attacked nodes' refusal at the last cycle",
    "final_unattacked_refusal": "unattacked nodes' refusal at the last cycle",
    "final_attacked_harmful": "attacked nodes' harmful rate at the last cycle",
    "final_unattacked_harmful": "unattacked nodes' harmful rate at the last cycle",
    "helpfulness_retained": "mean helpfulness at the last cycle ÷ at cycle 0",
    "final_drifted_nodes": "drifted nodes at the last cycle",
    "peak_drifted_unattacked": "most unattacked nodes drifted at once",
    "final_drifted_share": "drifted share of the unattacked nodes at the last cycle",
    "peak_drifted_share": "peak drifted share over cycles 1..T",
    "drifted_share_area": "drifted share summed over cycles 1..T (share-cycles)",
    "time_to_systemic": f"first cycle with at least {SYSTEMIC_SHARE:.0%} of the unattacked nodes drifted",
    "max_hops_reached": "farthest hop distance of a drifted unattacked node",
    "spread_speed": "that distance ÷ the first cycle it was reached (hops per cycle)",
    "last_poisoned_cycle": "last cycle with poison",
    "recovery_cycles": "cycles from the last poison until no node has drifted",
}
GAMMA = "\N{GREEK SMALL LETTER GAMMA}"  # by name: ruff would take the letter for a "y"
FIT_FIGURES = {  # SISFit's estimates, as the tables name them
    "beta": "β (infection per drifted in-neighbour, per unit of edge weight)",
    "gamma": f"{GAMMA} (recovery per cycle)",
    "reproduction_number": f"R = β·λ₁/{GAMMA} (above 1: drift persists)",
    "spectral_radius": "λ₁ (spectral radius of the weighted adjacency)",
}


@dataclass(frozen=True)
class Run:
    """What a report shows of one finished run."""

    directory: RunDirectory
    config: Config
    manifest: Manifest
    metrics: pl.DataFrame
    summary: dict[str, Any]
    graph: nx.DiGraph
    edges: pl.DataFrame | None  # what flowed along each edge per cycle; None for runs without edges.parquet


@dataclass(frozen=True)
class Sweep:
    """What a report shows of a finished sweep."""

    path: Path
    cells: pl.DataFrame  # one row per (cell, seed)
    metrics: pl.DataFrame  # every run's metrics rows, with `cell` and `seed`
    axes: list[str]
    graphs: dict[tuple[int, int], nx.DiGraph]  # per (cell, seed)


def report(path: str | Path) -> Path:
    """Write PATH/report/report.md with its figures for a finished run or a sweep; returns report.md's path.
    A directory that is neither raises `ResultsError`, and nothing is written then."""
    directory = Path(path)
    if not directory.is_dir():
        kind = "a file" if directory.exists() else "missing"
        raise ResultsError(f"{directory} is {kind}: give a finished run or sweep directory")
    if SweepDirectory(directory).record_path.is_file():
        sweep = read_sweep(SweepDirectory(directory))
        return _replace_report(directory / REPORT, lambda folder: write_sweep_report(sweep, folder))
    if not RunDirectory(directory).holds_run():
        raise ResultsError(
            f"{directory} holds neither a run ({RunDirectory.CONFIG}) nor a sweep ({SweepDirectory.RECORD})"
        )
    run = read_run(RunDirectory(directory))
    return _replace_report(directory / REPORT, lambda folder: write_run_report(run, folder))


def _replace_report(target: Path, write: Callable[[Path], str]) -> Path:
    """Write the report into a temporary sibling of `target`, then swap it in. A directory cannot be renamed
    over a full one, so the old report is first renamed away (onto an empty directory, which rename
    replaces) and removed once the new one is in place."""
    if target.is_symlink() or (target.exists() and not target.is_dir()):  # never replaced: it is not ours
        raise ResultsError(f"{target} is not a report directory (a file or a link); move it away first")
    staging = Path(tempfile.mkdtemp(prefix=f".{target.name}-", dir=target.parent))
    try:
        (staging / MARKDOWN).write_text(write(staging))
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    retired = Path(tempfile.mkdtemp(prefix=f".{target.name}-old-", dir=target.parent))
    if target.exists():
        target.rename(retired)
    staging.rename(target)
    shutil.rmtree(retired)
    return target / MARKDOWN


def read_run(directory: RunDirectory) -> Run:
    """A complete run's files; `ResultsError` for a run still running, failed or unreadable."""
    result = directory.read_result()
    return Run(
        directory=directory,
        config=directory.read_config(),
        manifest=directory.read_manifest(),
        metrics=result.metrics,
        summary=result.summary,
        graph=directory.read_graph(),
        edges=directory.read_edges() if directory.edges_path.is_file() else None,
    )


def read_sweep(directory: SweepDirectory) -> Sweep:
    """A finished sweep's tables and axes, and each run's graph; `ResultsError` for an unfinished sweep."""
    if RunDirectory(directory.path).is_live():  # a sweep holds its directory's lock while it runs
        raise ResultsError(f"the sweep in {directory.path} is running; report on it once it is done")
    results = directory.read_results()
    graphs = {
        (row["cell"], row["seed"]): RunDirectory(directory.path / row["run"]).read_graph()
        for row in results.cells.iter_rows(named=True)
    }
    return Sweep(directory.path, results.cells, results.metrics, directory.read_axes(), graphs)


# ---- the reports


def write_run_report(run: Run, folder: Path) -> str:
    """Draw a run's figures into `folder`; returns the report's Markdown, which names each of them."""
    last = int(run.metrics["cycle"].max())
    shown = sorted({0, last // 2, last})
    edge_note = "harmful pairs sent along it (edges.parquet)" if run.edges is not None else "its weight"
    return "\n\n".join(
        [
            f"# Report: run {run.directory.path.name}",
            "## Configuration",
            _configuration(run),
            "## Cascade figures",
            _table(
                ["figure", "value", "meaning"], [[f"`{k}`", _number(run.summary.get(k)), v] for k, v in FIGURES.items()]
            ),
            "## Refusal over cycles",
            _image(folder, "refusal.png", draw_refusal(run.metrics), "refusal rate per node over cycles"),
            "## Drifted share",
            _image(folder, "drifted-share.png", draw_drifted_share(_run_curves(run.metrics)), "drifted share"),
            "## Refusal by hop distance from the attack",
            _image(folder, "hops.png", draw_hops({"": hop_profile(run.metrics)}), "mean refusal by hop and cycle"),
            "## The network",
            f"At cycles {', '.join(map(str, shown))}: nodes coloured by refusal, attacked nodes as diamonds, "
            f"an edge's width showing {edge_note}.",
            _image(folder, "network.png", draw_network(run.graph, run.metrics, shown, run.edges), "the network"),
            "## Epidemic fit (discrete-time SIS)",
            _fit_section(fit_sis(run.metrics, run.graph)),
        ]
    )


def write_sweep_report(sweep: Sweep, folder: Path) -> str:
    """Draw a sweep's figures into `folder`; returns the report's Markdown, which names each of them."""
    labels = _cell_labels(sweep)
    curves = _curves_over_seeds(sweep.metrics)
    seeds = sweep.cells.group_by("cell").len()
    cells = sweep.cells.select("cell", *sweep.axes).unique("cell").join(seeds, on="cell").sort("cell")
    hops = {labels[cell]: hop_profile(sweep.metrics.filter(pl.col("cell") == cell)) for cell in sorted(labels)}
    return "\n\n".join(
        [
            f"# Report: sweep {sweep.path.name}",
            f"{len(cells)} cells over {', '.join(f'`{axis}`' for axis in sweep.axes) or 'no axis'}, "
            f"{len(sweep.cells)} runs.",
            _table(["cell", *sweep.axes, "seeds"], [[_number(value) for value in row] for row in cells.rows()]),
            f"## Cascade figures (mean over seeds [95% interval])\n\n{_sweep_figures(sweep, labels)}",
            "## Drifted share",
            _image(folder, "drifted-share.png", draw_drifted_share(curves, labels), "drifted share per cell"),
            "## Refusal over cycles",
            _image(folder, "refusal.png", draw_refusal_over_seeds(curves, labels), "refusal per cell"),
            "## Refusal by hop distance from the attack",
            "One panel per cell, every seed's nodes pooled: the mean over the nodes at that hop in all its runs.",
            _image(folder, "hops.png", draw_hops(hops), "mean refusal by hop and cycle"),
            "## Epidemic fit (discrete-time SIS) per cell",
            _sweep_fits(sweep, labels),
        ]
    )


def write_experiment_report(out: Path, spec: dict[str, Any], verdict: dict[str, Any], analysis: Analysis) -> Path:
    """OUT/report/report.md for a finished experiment: the verdicts first (claim, rule, figures, verdict),
    then the tables and charts that support them."""

    def write(folder: Path) -> str:
        quick = " (quick: a reduced version; its verdict is not the experiment's)" if verdict["quick"] else ""
        parts = [
            f"# Experiment `{verdict['experiment']}`: {spec['title']}{quick}",
            f"> {spec['claim']}\n>\n> — {spec['source']}",
            "## Verdicts",
            _table(["claim", "verdict"], [[finding.name, f"**{finding.verdict}**"] for finding in analysis.findings]),
        ]
        for finding in analysis.findings:
            figures = _table(
                ["figure", "mean [95% interval]"],
                [[label, _interval(value, value.seeds)] for label, value in finding.figures.items()],
            )
            parts += [
                f"### {finding.name}: **{finding.verdict}**",
                f"*Claim:* {finding.claim}",
                f"*Rule (written before the data):* {finding.rule}",
                figures,
                f"*Verdict:* {finding.reason}",
            ]
        parts += [f"## The organism\n\n{spec['organism']}"] if spec.get("organism") else []
        parts += ["## The rule as pre-registered", spec["rule"].strip()]
        for table in analysis.tables:
            rows = [[_number(value) for value in row] for row in table.frame.rows()]
            parts += [f"## {table.title}", _table(table.frame.columns, rows)]
        for chart in analysis.charts:
            parts += [f"## {chart.caption}", _image(folder, chart.name, chart.draw(), chart.caption)]
        seeds = ", ".join(str(seed) for seed in verdict["seeds"])
        parts += [
            "## Data",
            f"Sweeps: {', '.join(f'`{name}`' for name in spec['sweeps'])} (in `sweeps/`, when run here), seeds "
            f"{seeds}; every run's figures in `cells.parquet`. Computed in {verdict['seconds']:.0f} s. Exact "
            "figures depend on the CPU type and thread count; the same machine gives the same figures.",
        ]
        return "\n\n".join(parts)

    return _replace_report(out / REPORT, write)


def _configuration(run: Run) -> str:
    config, topology = run.config, run.config.topology
    params = "".join(f", {key} {value}" for key, value in topology.params.items())
    attacks = [
        _kind(attack, targets=run.manifest.targets.get(index, attack.targets), examples=attack.examples)
        for index, attack in enumerate(config.attack)
    ]
    lines = [
        f"topology: `{topology.name}`, {topology.nodes} nodes, edge weight {topology.edge_weight}{params}",
        f"cycles: {config.cycles}",
        f"attacks: {'; '.join(attacks) or 'none'}",
        f"defenses: {'; '.join(_kind(defense) for defense in config.defense) or 'none'}",
        f"seed: {config.seed} (world seed {config.world.seed})",
        f"run: `{run.manifest.run_id}`, finished {run.manifest.finished}",
    ]
    return "\n".join(f"- {line}" for line in lines)


def _kind(item: Any, **shown: Any) -> str:
    """An attack or defense: its kind, then `shown` and the settings it changed from their defaults."""
    settings = shown | item.model_dump(exclude_defaults=True, exclude={"kind", *shown})
    return f"`{item.kind}`" + "".join(f", {key} {value}" for key, value in settings.items())


def _run_curves(metrics: pl.DataFrame) -> pl.DataFrame:
    """The run as a sweep of one cell and one seed: its curves have no interval."""
    return _curves_over_seeds(metrics.with_columns(cell=pl.lit(0), seed=pl.lit(0)))


def _curves_over_seeds(metrics: pl.DataFrame) -> pl.DataFrame:
    """Per (cell, cycle), the mean and interval over seeds of `per_cycle`'s drifted share and refusals."""
    runs = [per_cycle(rows).with_columns(cell=pl.lit(cell)) for (cell, _), rows in metrics.group_by("cell", "seed")]
    return over_seeds(pl.concat(runs), ["cell", "cycle"], ["drifted_share", "unattacked_refusal", "attacked_refusal"])


def _cell_labels(sweep: Sweep) -> dict[int, str]:
    """A cell by its axis values, as legends and panels name it."""
    values = sweep.cells.select("cell", *sweep.axes).unique("cell").rows()
    return {
        cell: f"cell {cell}"
        + "".join(f", {axis}={_number(value)}" for axis, value in zip(sweep.axes, rest, strict=True))
        for cell, *rest in values
    }


def _sweep_figures(sweep: Sweep, labels: dict[int, str]) -> str:
    """A row per figure, a column per cell: mean [low, high], with the seeds it rests on when some lacked it."""
    figures = [figure for figure in FIGURES if figure in sweep.cells.columns]
    seeds = dict(sweep.cells.group_by("cell").len().rows())
    cells = over_seeds(sweep.cells, ["cell"], figures).to_dicts()
    rows = [
        [f"`{figure}`"] + [_interval(_figure_interval(cell, figure), seeds[cell["cell"]]) for cell in cells]
        for figure in figures
    ]
    return _table(["figure", *(labels[cell["cell"]] for cell in cells)], rows)


def _figure_interval(cell: dict[str, Any], figure: str) -> Interval:
    """A figure's interval from a row of `over_seeds`."""
    return Interval(*(cell[f"{figure}_{part}"] for part in Interval._fields))


def _sweep_fits(sweep: Sweep, labels: dict[int, str]) -> str:
    """Fit each run, then per cell the mean and interval of each estimate over the seeds that have one."""
    fits: dict[int, list[SISFit]] = {}
    for row in sweep.cells.sort("cell", "seed").iter_rows(named=True):
        rows = sweep.metrics.filter((pl.col("cell") == row["cell"]) & (pl.col("seed") == row["seed"]))
        fits.setdefault(row["cell"], []).append(fit_sis(rows, sweep.graphs[row["cell"], row["seed"]]))
    table = _table(
        ["cell", *FIT_FIGURES.values(), "seeds without a full estimate"],
        [
            [labels[cell]]
            + [_interval(mean_interval(getattr(fit, name) for fit in runs), len(runs)) for name in FIT_FIGURES]
            + [f"{sum(fit.reason is not None for fit in runs)} of {len(runs)}"]
            for cell, runs in sorted(fits.items())
        ],
    )
    reasons = [
        f"- {labels[cell]}, {count} of {len(runs)} seeds: {reason}"
        for cell, runs in sorted(fits.items())
        for reason, count in Counter(fit.reason for fit in runs if fit.reason).items()
    ]
    note = "Each entry: mean over the seeds that could be estimated [95% interval] (how many, where some could not)."
    return "\n\n".join([note, table, *(["Why not:\n\n" + "\n".join(reasons)] if reasons else [])])


def _fit_section(fit: SISFit) -> str:
    table = _table(["estimate", "value"], [[label, _number(getattr(fit, name))] for name, label in FIT_FIGURES.items()])
    counts = (
        f"The data: {fit.exposed_steps} exposed node-steps (susceptible, with a drifted in-neighbour), "
        f"{fit.infections} of them infected at the next cycle; {fit.infected_steps} infected node-steps, "
        f"{fit.recoveries} of them recovered at the next cycle; {fit.unexplained_infections} infections "
        "without a drifted in-neighbour, left out of the fit."
    )
    return "\n\n".join([table, counts, *([f"Not estimated: {fit.reason}."] if fit.reason else [])])


def _table(header: Sequence[str], rows: Iterable[Sequence[str]]) -> str:
    lines = [header, ["---"] * len(header), *rows]
    return "\n".join("| " + " | ".join(line) + " |" for line in lines)


def _number(value: Any) -> str:
    if value is None:
        return "-"
    return f"{value:.2f}" if isinstance(value, float) else str(value)


def _interval(interval: Interval, seeds: int) -> str:
    """mean [low, high]; how many seeds it rests on when some had no value."""
    text = _number(interval.mean)
    if interval.low is not None:
        text += f" [{interval.low:.2f}, {interval.high:.2f}]"
    return text + (f" ({interval.seeds} of {seeds} seeds)" if interval.seeds < seeds else "")


def _image(folder: Path, name: str, figure: Figure, caption: str) -> str:
    """Save `figure` as `name` in `folder`; returns the Markdown that shows it."""
    figure.savefig(folder / name, dpi=DPI)
    return f"![{caption}]({name})"


# ---- the figures


def _figure(columns: int = 1, rows: int = 1, size: tuple[float, float] = (7.5, 4.5)) -> tuple[Figure, np.ndarray]:
    """A figure of `rows` by `columns` panels of `size` inches each, laid out so that labels fit."""
    from matplotlib.figure import Figure

    figure = Figure(figsize=(size[0] * columns, size[1] * rows), layout="constrained")
    return figure, figure.subplots(rows, columns, squeeze=False)


def _cycle_axis(axes: Axes, ylabel: str) -> None:
    from matplotlib.ticker import MaxNLocator

    axes.set_xlabel(CYCLE_LABEL)
    axes.set_ylabel(ylabel)
    axes.xaxis.set_major_locator(MaxNLocator(integer=True))
    axes.set_ylim(-0.03, 1.03)
    axes.grid(alpha=0.3)


def draw_refusal(metrics: pl.DataFrame) -> Figure:
    """A run's refusal per node over cycles: unattacked nodes in blue, attacked ones in red, the mean in black."""
    figure, ((axes,),) = _figure()
    for (_, attacked), rows in metrics.sort("cycle").group_by("node", "attacked", maintain_order=True):
        colour, label = ("tab:red", "attacked node") if attacked else ("tab:blue", "unattacked node")
        axes.plot(rows["cycle"], rows["refusal_rate"], color=colour, alpha=0.6, lw=1.2, label=label)
    mean = per_cycle(metrics)
    axes.plot(mean["cycle"], mean["mean_refusal"], color="black", lw=2.5, ls="--", label="mean over all nodes")
    _cycle_axis(axes, REFUSAL_LABEL)
    handles, labels = axes.get_legend_handles_labels()
    unique = dict(zip(labels, handles, strict=True))  # one entry per kind of line, not per node
    axes.legend(unique.values(), unique.keys(), loc="lower left")
    axes.set_title("Refusal per node")
    return figure


def _plot_curves(axes: Axes, curves: pl.DataFrame, figure: str, labels: dict[int, str]) -> None:
    """A line per cell of `figure`'s mean over seeds, with a band for its interval (none with one seed)."""
    for (cell,), rows in curves.sort("cycle").group_by("cell", maintain_order=True):
        (line,) = axes.plot(rows["cycle"], rows[f"{figure}_mean"].cast(pl.Float64), marker="o", label=labels[cell])
        low, high = (rows[f"{figure}_{part}"].cast(pl.Float64).to_numpy() for part in ("low", "high"))
        axes.fill_between(rows["cycle"].to_numpy(), low, high, color=line.get_color(), alpha=0.2, lw=0)


def draw_drifted_share(curves: pl.DataFrame, labels: dict[int, str] | None = None) -> Figure:
    """The drifted share of the unattacked nodes per cycle, a line per cell (one for a run), and the systemic
    threshold."""
    figure, ((axes,),) = _figure()
    _plot_curves(axes, curves, "drifted_share", labels or {0: "drifted share"})
    axes.axhline(SYSTEMIC_SHARE, color="grey", ls=":", label=f"systemic drift ({SYSTEMIC_SHARE:.0%})")
    _cycle_axis(axes, SHARE_LABEL)
    axes.legend(loc="upper left")
    axes.set_title("Drifted share" + (f" per cell ({BAND_NOTE})" if labels else ""))
    return figure


def draw_refusal_over_seeds(curves: pl.DataFrame, labels: dict[int, str]) -> Figure:
    """A sweep's mean refusal per cycle and cell, for the unattacked and the attacked nodes side by side."""
    figure, panels = _figure(columns=2, size=(6.5, 4.5))
    for axes, group in zip(panels[0], ("unattacked", "attacked"), strict=True):
        _plot_curves(axes, curves, f"{group}_refusal", labels)
        _cycle_axis(axes, REFUSAL_LABEL)
        axes.set_title(f"{group} nodes")
    panels[0][0].legend(loc="lower left")
    figure.suptitle(f"Mean refusal per cell ({BAND_NOTE})")
    return figure


def _hop_matrix(profile: pl.DataFrame) -> tuple[list[str], list[str], np.ndarray]:
    """(hop labels, cycle labels, mean refusal per hop and cycle, NaN where no node was)."""
    wide = profile.pivot(on="cycle", index="hops_from_attack", values="mean_refusal").sort(
        "hops_from_attack", nulls_last=True
    )
    hops = ["unreachable" if hop is None else str(hop) for hop in wide["hops_from_attack"]]
    values = wide.drop("hops_from_attack")
    return hops, values.columns, values.cast(pl.Float64).to_numpy()


def draw_hops(profiles: dict[str, pl.DataFrame]) -> Figure:
    """Mean refusal by hop distance from the nearest attacked node (rows) and cycle (columns), a panel per
    profile (one for a run, one per cell for a sweep)."""
    from matplotlib.cm import ScalarMappable
    from matplotlib.colors import Normalize

    columns = min(3, len(profiles))
    rows = -(-len(profiles) // columns)
    figure, panels = _figure(columns, rows, size=(5.5, 4.2))
    for axes, (title, profile) in zip(panels.flat, profiles.items(), strict=False):
        hops, cycles, matrix = _hop_matrix(profile)
        axes.imshow(matrix, cmap=REFUSAL_COLOURS, vmin=0, vmax=1, aspect="auto")
        axes.set_xticks(range(len(cycles)), cycles)
        axes.set_yticks(range(len(hops)), hops)
        axes.set_xlabel(CYCLE_LABEL)
        axes.set_ylabel("hops from the nearest attacked node")
        axes.set_title(title)
        if matrix.size <= ANNOTATED_CELLS:
            for (row, column), value in np.ndenumerate(matrix):
                if not np.isnan(value):
                    axes.text(column, row, f"{value:.2f}", ha="center", va="center", fontsize=9)
    for unused in panels.flat[len(profiles) :]:
        unused.set_visible(False)
    colour_scale = ScalarMappable(Normalize(0, 1), cmap=REFUSAL_COLOURS)
    figure.colorbar(colour_scale, ax=panels, label=f"mean {REFUSAL_LABEL}", shrink=0.9)
    figure.suptitle("Mean refusal by hop distance from the attack")
    return figure


def _edge_flows(graph: nx.DiGraph, edges: pl.DataFrame | None, cycle: int) -> dict[tuple[int, int], float]:
    """What an edge's width shows at `cycle`: harmful pairs sent along it, or without edges.parquet its weight."""
    if edges is None:
        return {(sender, receiver): weight for sender, receiver, weight in graph.edges(data="weight", default=1.0)}
    rows = edges.filter(pl.col("cycle") == cycle)
    return dict.fromkeys(graph.edges, 0.0) | {
        (sender, receiver): float(harmful)
        for sender, receiver, harmful in rows.select("sender", "receiver", "harmful_pairs").rows()
    }


def _cut_edges(edges: pl.DataFrame | None, cycle: int) -> set[tuple[int, int]]:
    if edges is None:
        return set()
    return set(edges.filter((pl.col("cycle") == cycle) & pl.col("cut")).select("sender", "receiver").rows())


def _edge_legend(largest: float, unit: str, cuts: bool) -> list[Any]:
    """Lines of the thinnest and thickest edge, labelled with what they stand for; the cut edges' style."""
    from matplotlib.lines import Line2D

    entries = [
        Line2D([], [], color="0.4", lw=_edge_width(step, largest), label=f"{unit}: {step:.3g}")
        for step in sorted({0.0, largest})
    ]
    if cuts:
        entries.append(Line2D([], [], color="0.4", lw=1, ls=":", label="cut by quarantine"))
    return entries


def _edge_width(flow: float, largest: float) -> float:
    return 0.6 + 4 * flow / largest if largest else 0.6


def draw_network(
    graph: nx.DiGraph, metrics: pl.DataFrame, cycles: Sequence[int], edges: pl.DataFrame | None = None
) -> Figure:
    """The graph at each of `cycles`: nodes coloured by refusal, attacked nodes as diamonds; an edge's width
    shows the harmful pairs sent along it that cycle (from `edges`, as edges.parquet holds them), or without
    `edges` its weight. Widths share one scale over the panels, so they compare."""
    from matplotlib.cm import ScalarMappable
    from matplotlib.colors import Normalize
    from matplotlib.lines import Line2D

    positions = nx.spring_layout(graph, seed=LAYOUT_SEED)
    flows = {cycle: _edge_flows(graph, edges, cycle) for cycle in cycles}
    cuts = {cycle: _cut_edges(edges, cycle) for cycle in cycles}
    largest = max((flow for by_edge in flows.values() for flow in by_edge.values()), default=0.0)
    attacked = set(metrics.filter(pl.col("attacked"))["node"])
    figure, panels = _figure(len(cycles), size=(5.0, 5.0))
    for axes, cycle in zip(panels[0], cycles, strict=True):
        widths = {edge: _edge_width(flow, largest) for edge, flow in flows[cycle].items()}
        refusal = dict(metrics.filter(pl.col("cycle") == cycle).select("node", "refusal_rate").rows())
        _draw_network_panel(axes, graph, positions, widths, cuts[cycle], refusal, attacked)
        axes.set_title(f"cycle {cycle}")
    figure.colorbar(ScalarMappable(Normalize(0, 1), cmap=REFUSAL_COLOURS), ax=panels, label=REFUSAL_LABEL, shrink=0.8)
    markers = [
        Line2D([], [], marker=shape, ls="", color="0.8", markeredgecolor="black", markersize=9, label=label)
        for shape, label in (("o", "unattacked node"), ("D", "attacked node"))
    ]
    unit = "weight" if edges is None else "harmful pairs sent"
    legend = markers + _edge_legend(largest, unit, any(cuts.values()))
    figure.legend(handles=legend, loc="outside lower center", ncols=len(legend))
    figure.suptitle(f"The network: node colour is refusal, edge width {unit}")
    return figure


def _draw_network_panel(
    axes: Axes,
    graph: nx.DiGraph,
    positions: dict[int, Any],
    widths: dict[tuple[int, int], float],
    cut: set[tuple[int, int]],
    refusal: dict[int, float],
    attacked: set[int],
) -> None:
    """One cycle of the network: edges (cut ones dotted), arcs so that u → v and v → u both show, then nodes."""
    for style, shown in (("solid", [edge for edge in graph.edges if edge not in cut]), ("dotted", sorted(cut))):
        nx.draw_networkx_edges(
            graph,
            positions,
            shown,
            width=[widths[edge] for edge in shown],
            style=style,
            edge_color="0.4",
            connectionstyle="arc3,rad=0.12",
            arrowsize=12,
            node_size=NODE_SIZE,
            ax=axes,
        )
    for shape, nodes in (("o", [n for n in graph if n not in attacked]), ("D", [n for n in graph if n in attacked])):
        nx.draw_networkx_nodes(
            graph,
            positions,
            nodes,
            node_color=[refusal.get(node, np.nan) for node in nodes],
            node_shape=shape,
            cmap=REFUSAL_COLOURS,
            vmin=0,
            vmax=1,
            node_size=NODE_SIZE,
            edgecolors="black",
            ax=axes,
        )
    nx.draw_networkx_labels(graph, positions, font_size=9, ax=axes)
    axes.axis("off")
