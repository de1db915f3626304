"""`cascade report DIR`: a Markdown report with PNG figures for a finished run or a sweep of runs.

The report goes to DIR/report/ (`report.md` and the figures beside it). It is written into a
temporary sibling and renamed into place, so a reader sees the old report or the new one, never
half of one. The figures are drawn by `ecosystem.drawings` and saved here by the Agg renderer.

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
import polars as pl

from ecosystem.analysis import (
    BASE,
    CURVE_RESAMPLES,
    SYSTEMIC_SHARE,
    Interval,
    SISFit,
    cluster_bootstrap,
    fit_sis,
    hop_profile,
    over_seeds,
    per_cycle,
    with_bases,
)
from ecosystem.config import Config, flatten
from ecosystem.drawings import (
    draw_against_twin,
    draw_drifted_share,
    draw_hops,
    draw_infection,
    draw_network,
    draw_refusal,
    draw_refusal_over_seeds,
    draw_transmission,
)
from ecosystem.results import Manifest, ResultsError, RunDirectory
from ecosystem.sweeps import SweepDirectory
from ecosystem.verdicts import Analysis, describe, p_value, rests_on

if TYPE_CHECKING:
    from matplotlib.figure import Figure

REPORT = "report"  # the report's folder inside the run or sweep directory
MARKDOWN = "report.md"
DPI = 120

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
# With a poison-free twin: what the poison did, and what fine-tuning eroded without it.
INFECTION_FIGURES = {
    "twin_final_mean_refusal": "the twin's mean refusal at the last cycle",
    "infected_share_final": "infected share of the unattacked nodes at the last cycle (excess loss over the twin)",
    "infected_share_peak": "peak infected share over cycles 1..T",
    "infected_share_area": "infected share summed over cycles 1..T (share-cycles)",
    "time_to_systemic_infection": f"first cycle with at least {SYSTEMIC_SHARE:.0%} of the unattacked nodes infected",
    "infection_speed": "farthest hop distance of an infected node ÷ the first cycle it was reached",
    "eroded_share_final": "the twin's drifted share of the same nodes at the last cycle: erosion without poison",
    "eroded_share_area": "the twin's drifted share summed over cycles 1..T",
    "causal_horizon_breaches": "node-cycles that differ from the twin before the poison could reach them (must be 0)",
}
GAMMA = "\N{GREEK SMALL LETTER GAMMA}"  # by name: ruff would take the letter for a "y"
INTERVAL_NOTE = (
    "The interval is a hierarchical bootstrap's: it resamples a cell's bases (model seeds), then the seeds on "
    "each, and holds the central 95% of the resampled means, so it stays within the values the seeds took. "
    "What it rests on: each cell's seeds and bases in the table above, and (k of n seeds) where some had no value."
)
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
            *_twin_sections(run, folder),
            "## Epidemic fit (discrete-time SIS, on infection over the twin)",
            _fit_section(fit_sis(run.metrics, run.graph)),
        ]
    )


def _twin_sections(run: Run, folder: Path) -> list[str]:
    """An attacked run against its poison-free twin: infection and erosion figures, each node against its
    twin, the infected and eroded shares, and the transmission tree (none without a twin)."""
    if "infected_share_final" not in run.summary or not run.directory.twin.holds_run():
        return []
    twin, tree = run.directory.twin.read_metrics(), run.directory.read_transmission()
    rows = [[f"`{k}`", _number(run.summary[k]), v] for k, v in INFECTION_FIGURES.items()]
    generations = [
        [str(row["generation"]), str(row["nodes"]), str(row["children"]), _number(row["mean_children"])]
        for row in run.summary["transmission"]
    ]
    return [
        "## Against the poison-free twin",
        "The twin is this run with its attacks removed and every random stream unchanged (`twin/`): a node is "
        "*infected* when its refusal is at least the drift threshold below its twin's at the same cycle; the "
        "twin's own drift is *erosion*.",
        _table(["figure", "value", "meaning"], rows),
        _image(folder, "against-twin.png", draw_against_twin(run.metrics), "each node against its twin"),
        _image(folder, "infection.png", draw_infection(run.metrics, twin), "infected and eroded shares"),
        "### Transmission tree",
        "Each infected node's likely infector: of its in-neighbours infected before it, the one that sent it the "
        "most harmful pairs (`transmission.parquet`). Mean infected children per generation (the last one's are "
        "cut short by the horizon):",
        _table(["generation", "nodes", "infected children", "mean children"], generations),
        _image(folder, "transmission.png", draw_transmission(run.graph, tree, run.metrics), "transmission tree"),
    ]


def write_sweep_report(sweep: Sweep, folder: Path) -> str:
    """Draw a sweep's figures into `folder`; returns the report's Markdown, which names each of them."""
    labels = _cell_labels(sweep)
    curves = _curves_over_seeds(sweep.metrics, sweep.cells)
    bases = pl.col(BASE).n_unique() if BASE in sweep.cells.columns else pl.lit(1, pl.UInt32)  # before bases: one
    seeds = sweep.cells.group_by("cell").agg(seeds=pl.len(), bases=bases)
    cells = sweep.cells.select("cell", *sweep.axes).unique("cell").join(seeds, on="cell").sort("cell")
    hops = {labels[cell]: hop_profile(sweep.metrics.filter(pl.col("cell") == cell)) for cell in sorted(labels)}
    return "\n\n".join(
        [
            f"# Report: sweep {sweep.path.name}",
            f"{len(cells)} cells over {', '.join(f'`{axis}`' for axis in sweep.axes) or 'no axis'}, "
            f"{len(sweep.cells)} runs.",
            _table(
                ["cell", *sweep.axes, "seeds", "bases"], [[_number(value) for value in row] for row in cells.rows()]
            ),
            f"## Cascade figures (mean over seeds [95% bootstrap interval])\n\n{INTERVAL_NOTE}",
            _sweep_figures(sweep, labels),
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
            _table(
                ["claim", "verdict", "p-value", "Holm-adjusted"],
                [
                    [finding.name, f"**{finding.verdict}**", p_value(finding.p_value), p_value(finding.p_holm)]
                    for finding in analysis.findings
                ],
            ),
        ]
        for finding in analysis.findings:
            figures = _table(
                ["figure", "mean [95% interval]", "rests on"],
                [[label, describe(value), rests_on(value)] for label, value in finding.figures.items()],
            )
            parts += [
                f"### {finding.name}: **{finding.verdict}**",
                f"*Claim:* {finding.claim}",
                f"*Rule (written before the data):* {finding.rule}",
                figures,
                f"*Verdict:* {finding.reason}",
            ]
        parts += [f"## The organism\n\n{spec['organism']}"] if spec.get("organism") else []
        if quick_changes := verdict.get("quick_changes"):
            parts += [
                "## What the quick version changed",
                "The claim, rule and organism above describe the full experiment. This quick version ran with "
                "the experiment file's `[quick]` table merged over it: these settings replaced the file's.",
                _table(["in", "setting", "quick value"], _quick_rows(quick_changes)),
            ]
        if overrides := verdict.get("overrides"):
            settings = ", ".join(f"`{override}`" for override in overrides)
            parts += ["## Settings given with `--set`", f"Every sweep's base had {settings} set (`verdict.json`)."]
        parts += ["## The rule as pre-registered", spec["rule"].strip()]
        for table in analysis.tables:
            rows = [[_number(value) for value in row] for row in table.frame.rows()]
            parts += [f"## {table.title}", _table(table.frame.columns, rows)]
        for chart in analysis.charts:
            parts += [f"## {chart.caption}", _image(folder, chart.name, chart.draw(), chart.caption)]
        seeds = ", ".join(str(seed) for seed in verdict["seeds"])
        made = "; ".join(
            f"{made['runs']} runs at commit {str(made.get('commit'))[:10]}"
            f"{' (uncommitted changes)' * bool(made.get('dirty'))} on {made.get('cpu')}, "
            f"{made.get('threads')} thread(s) per group"
            for made in verdict.get("provenance", [])
        )
        hours = ", ".join(
            f"`{part}` {seconds / 3600:.2f} h" for part, seconds in verdict.get("compute_seconds_per_part", {}).items()
        )
        parts += [
            "## Data",
            f"Sweeps: {', '.join(f'`{name}`' for name in spec['sweeps'])} (in `sweeps/`, when run here), seeds "
            f"{seeds}; every run's figures in `cells.parquet`. Intervals are hierarchical bootstrap intervals "
            "(bases, then seeds within a base; 95%, percentile) where a figure says it rests on bases, Student-t "
            f"over seeds otherwise. The runs: {made or 'not recorded'}; they computed for "
            f"{verdict.get('compute_seconds', 0) / 3600:.1f} hours ({hours}), this invocation took "
            f"{verdict['seconds']:.0f} s. "
            "Exact figures depend on the CPU type and thread count; the same machine gives the same figures.",
        ]
        return "\n\n".join(parts)

    return _replace_report(out / REPORT, write)


def calibration_report(calibration: dict[str, Any]) -> str:
    """`cascade calibrate`'s report.md: a row per protocol's figure (the organism's with its interval, a real
    model's under the same protocol where one was calibrated, the anchor's published figure, the target, pass
    or fail), then each figure's details and what it rests on, and the machine and versions."""
    quick = " (quick: a reduced version, which checks the pipeline, not the organism)" if calibration["quick"] else ""
    real = {row["label"]: row for row in calibration["real_model"] or []}
    verdicts = {True: "**pass**", False: "**fail**", None: "-"}

    def real_model(label: str) -> str:
        if calibration["real_model"] is None:
            return "not yet run"
        return _interval(Interval(**real[label]["value"]), real[label]["seeds"]) if label in real else "not measured"

    rows = [
        [
            row["label"],
            _interval(Interval(**row["value"]), row["value"]["seeds"]),
            real_model(row["label"]),
            f"{row['anchor']['published']} ({row['anchor']['citation']})",
            row["target"]["text"] if row["target"] else "-",
            verdicts[row["pass"]],
        ]
        for row in calibration["protocols"]
    ]
    parts = [
        f"# Calibration of the organism{quick}",
        "Each protocol runs on the configuration's defaults (with the settings below), over bases (model seeds) "
        "and run seeds; an attacked run is measured against its poison-free twin. Intervals: 95% hierarchical "
        "percentile bootstrap, resampling bases, then run seeds within each. A figure passes when its mean lies "
        "in the target range. The findings of the experiments are conditional on this calibration.",
        _table(["protocol", "organism [95% interval]", "real model", "published (anchor)", "target", ""], rows),
    ]
    for row in calibration["protocols"]:
        inside = {True: "; the whole interval lies in the target", False: "; the interval leaves the target"}
        details = [[name, _interval(Interval(**value), value["seeds"])] for name, value in row["details"].items()]
        parts += [
            f"## {row['label']}: {verdicts[row['pass']]}",
            f"*Figure:* {row['figure']}. {row['bases']} bases, {row['seeds']} run seeds each"
            + inside.get(row["interval_within_target"], "")
            + ".",
            *([_table(["also measured", "mean [95% interval]"], details)] if details else []),
        ]
    if settings := calibration["settings"]:
        parts += ["## Settings changed from the defaults", _table(["setting", "value"], _setting_rows(settings))]
    if calibration["quick"]:
        changes = calibration["quick_changes"]
        parts += [
            "## What the quick version changed",
            f"Bases (model seeds) {changes['bases']}, {changes['seeds']} run seeds, and these settings:",
            _table(["in", "setting", "quick value"], _calibration_quick_rows(changes)),
        ]
    versions = ", ".join(f"{name} {version}" for name, version in calibration["versions"].items() if version)
    changed = ", with uncommitted changes" if calibration["dirty"] else ""
    parts += [
        "## Data",
        f"Commit {calibration['commit']}{changed}; CPU {calibration['cpu']}, {calibration['threads']} torch threads "
        f"per group; {versions}. Its runs and twins took {calibration['compute_seconds']:.0f} compute seconds; this "
        f"invocation {calibration['seconds']:.0f} s. Exact figures "
        "depend on the CPU type and thread count. Every run's figures are in `cells.parquet`, every run in "
        "`sweeps/PROTOCOL/` (when run here).",
    ]
    return "\n\n".join(parts) + "\n"


def _setting_rows(settings: dict[str, Any]) -> list[list[str]]:
    return [[f"`{key}`", f"`{value}`"] for key, value in settings.items()]


def _calibration_quick_rows(changes: dict[str, Any]) -> list[list[str]]:
    tables = {key: value for key, value in changes.items() if isinstance(value, dict)}
    return [[where, *row] for where, table in tables.items() for row in _setting_rows(table)]


def _quick_rows(changes: dict[str, Any]) -> list[list[str]]:
    """An experiment's [quick] table as rows of (where, setting, value): a sweep's settings as the sweep
    file names them."""
    tables = {f"sweep `{part}`": table for part, table in changes.get("sweeps", {}).items()}
    tables |= {key: value for key, value in changes.items() if key != "sweeps"}
    return [
        [where, f"`{key}`", f"`{value}`"] for where, table in tables.items() for key, value in flatten(table).items()
    ]


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
        f"`harmful_rate`: {config.world.harmful_means}",
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


def _curves_over_seeds(metrics: pl.DataFrame, cells: pl.DataFrame | None = None) -> pl.DataFrame:
    """Per (cell, cycle), the mean and interval over seeds of `per_cycle`'s drifted share and refusals, the
    seeds grouped by their base as a sweep's `cells` name them (one base without)."""
    runs = pl.concat(
        per_cycle(rows).with_columns(cell=pl.lit(cell, pl.Int64), seed=pl.lit(seed, pl.Int64))
        for (cell, seed), rows in metrics.group_by("cell", "seed")
    )
    figures = ["drifted_share", "unattacked_refusal", "attacked_refusal"]
    return over_seeds(
        runs if cells is None else with_bases(runs, cells), ["cell", "cycle"], figures, resamples=CURVE_RESAMPLES
    )


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
    """Fit each run, then per cell the mean and interval of each estimate over the seeds that have one,
    the seeds grouped by their base (`cluster_bootstrap`)."""
    by_base: dict[int, dict[Any, list[SISFit]]] = {}  # per cell, the fits of its runs on each base
    for row in sweep.cells.sort("cell", "seed").iter_rows(named=True):
        rows = sweep.metrics.filter((pl.col("cell") == row["cell"]) & (pl.col("seed") == row["seed"]))
        fit = fit_sis(rows, sweep.graphs[row["cell"], row["seed"]])
        by_base.setdefault(row["cell"], {}).setdefault(row.get(BASE), []).append(fit)
    fits = {cell: [fit for runs in bases.values() for fit in runs] for cell, bases in by_base.items()}
    table = _table(
        ["cell", *FIT_FIGURES.values(), "seeds without a full estimate"],
        [
            [labels[cell]]
            + [_interval(_fit_interval(by_base[cell], name), len(runs)) for name in FIT_FIGURES]
            + [f"{sum(fit.reason is not None for fit in runs)} of {len(runs)}"]
            for cell, runs in sorted(fits.items())
        ],
    )
    reasons = [
        f"- {labels[cell]}, {count} of {len(runs)} seeds: {reason}"
        for cell, runs in sorted(fits.items())
        for reason, count in Counter(fit.reason for fit in runs if fit.reason).items()
    ]
    note = (
        "Each entry: mean over the seeds that could be estimated [95% bootstrap interval, bases then seeds] "
        "(how many, where some could not)."
    )
    return "\n\n".join([note, table, *(["Why not:\n\n" + "\n".join(reasons)] if reasons else [])])


def _fit_interval(by_base: dict[Any, list[SISFit]], name: str) -> Interval:
    """An estimate's mean over a cell's runs with its hierarchical bootstrap interval (bases, then seeds)."""
    return cluster_bootstrap([[getattr(fit, name) for fit in runs] for runs in by_base.values()])


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
