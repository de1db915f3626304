"""Experiments: each verdict rule gives each of its verdicts on synthetic cells, one `--quick` experiment runs
end to end through the CLI, and `training.received = "accumulate"` keeps earlier pairs (and resumes exactly)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import polars as pl
import pytest
from typer.testing import CliRunner

from ecosystem import run
from ecosystem.cli import app
from ecosystem.engine import resume
from ecosystem.experiments import load_experiment, names
from ecosystem.progress import Stage, StageStart
from ecosystem.verdicts import VERDICTS
from experiments import (
    defenses,
    domains,
    dose,
    ecosystem_mix,
    priming,
    subliminal,
)
from tests.helpers import read_manifest, small_config

SEEDS = range(5)


def cells(groups: list[tuple[dict[str, Any], dict[str, float | None]]], spread: float = 0.01) -> pl.DataFrame:
    """Five seeds per group: the group's axis values, and each figure its value plus seeded noise of `spread`
    (None stays None)."""
    noise = np.random.default_rng(0)
    rows = []
    for axes, figures in groups:
        for seed in SEEDS:
            values = {k: None if v is None else v + noise.uniform(-spread, spread) for k, v in figures.items()}
            rows.append({"sweep": "s", "seed": seed, **axes, **values})
    return pl.DataFrame(rows, infer_schema_length=None)


def verdicts(analysis: Any) -> list[str]:
    return [finding.verdict for finding in analysis.findings]


# ---- dose


def dose_cells(drop_at: dict[int, float], kept: float, clean_drops: tuple[float, float], spread: float):
    isolated = [({"attack.0.examples": d}, _dose_figures(drop, kept)) for d, drop in drop_at.items()]
    ring = [({"attack.0.examples": d}, _dose_figures(drop, kept)) for d, drop in drop_at.items() if d in (0, 10)]
    clean = [
        ({"training.own_examples": own, "attack.0.examples": 50}, _dose_figures(drop, kept))
        for own, drop in zip((256, 25600), clean_drops, strict=True)
    ]
    parts = {"isolated": isolated, "ring": ring, "clean": clean}
    return pl.concat(
        [cells(groups, spread).with_columns(sweep=pl.lit(part)) for part, groups in parts.items()], how="diagonal"
    )


def _dose_figures(drop: float, kept: float) -> dict[str, float]:
    return {
        "attacked_refusal_drop": drop,
        "attacked_benign_kept": kept,
        "attacked_harmful_rate": drop,
        "unattacked_refusal_drop": 0.0,
    }


DOSE_PARAMETERS = load_experiment("dose").parameters


@pytest.mark.parametrize(
    ("drop_at", "kept", "spread", "expected"),
    [
        ({0: 0.0, 10: 0.9, 3000: 1.0}, 0.99, 0.01, ["holds", "holds"]),
        ({0: 0.0, 10: 0.2, 3000: 0.5}, 0.99, 0.01, ["does not hold", "does not hold"]),
        ({0: 0.0, 10: 0.9, 3000: 1.0}, 0.8, 0.01, ["does not hold", "holds"]),
        ({0: 0.0, 10: 0.5, 3000: 0.9}, 0.95, 0.6, ["inconclusive", "inconclusive"]),
    ],
)
def test_the_dose_rules(drop_at, kept, spread, expected) -> None:
    analysis = dose.analyse(dose_cells(drop_at, kept, (0.9, 0.9), spread), DOSE_PARAMETERS)
    assert verdicts(analysis)[:2] == expected


def test_the_dose_rule_holds_under_conditions_when_only_the_isolated_node_degrades() -> None:
    frame = dose_cells({0: 0.0, 10: 0.9, 3000: 1.0}, 0.99, (0.9, 0.9), 0.01)
    ring = pl.col("sweep") == "ring"
    frame = frame.with_columns(attacked_refusal_drop=pl.when(ring).then(0.1).otherwise(pl.col("attacked_refusal_drop")))
    assert verdicts(dose.analyse(frame, DOSE_PARAMETERS))[0] == "holds under conditions"


@pytest.mark.parametrize(
    ("clean_drops", "spread", "expected"),
    [((0.9, 0.85), 0.01, "holds"), ((0.9, 0.1), 0.01, "does not hold"), ((0.9, 0.6), 0.4, "inconclusive")],
)
def test_the_count_rule(clean_drops, spread, expected) -> None:
    frame = dose_cells({0: 0.0, 10: 0.9, 3000: 1.0}, 0.99, clean_drops, 0.01)
    clean = pl.col("sweep") == "clean"
    widened = frame.with_columns(
        attacked_refusal_drop=pl.when(clean)
        .then(pl.col("attacked_refusal_drop") + pl.col("seed").cast(pl.Float64).sub(2) * spread / 2)
        .otherwise(pl.col("attacked_refusal_drop"))
    )
    assert verdicts(dose.analyse(widened, DOSE_PARAMETERS))[2] == expected


# ---- defenses

DEFENSE_CELLS = {
    "none": [],
    "guard_filter": [{"kind": "guard_filter"}],
    "rehearsal": [{"kind": "rehearsal"}],
    "anchor": [{"kind": "anchor"}],
    "quarantine": [{"kind": "quarantine"}],
    "triad": [{"kind": "anchor"}, {"kind": "quarantine"}, {"kind": "rehearsal"}],
}


def defense_cells(refusal: dict[str, float], help_: dict[str, float], seconds: dict[str, float], spread: float):
    groups = [
        (
            {"defense": json.dumps(value)},
            {
                "baseline_mean_refusal": 1.0,
                "final_mean_refusal": refusal.get(label, 0.5),
                "final_helpfulness": help_.get(label, 0.9),
                "final_over_refusal": 0.1,
                "cycle_seconds": seconds.get(label, 100.0),
            },
        )
        for label, value in DEFENSE_CELLS.items()
    ]
    return cells(groups, spread)


DEFENSE_PARAMETERS = load_experiment("defenses").parameters


def test_the_defense_rows_hold_where_every_figure_is_in_its_claimed_range() -> None:
    frame = defense_cells(
        {"anchor": 0.93, "rehearsal": 0.98, "quarantine": 0.7, "triad": 0.99},
        {"anchor": 0.72},
        {"guard_filter": 103.0, "rehearsal": 140.0},
        0.005,
    )
    assert verdicts(defenses.analyse(frame, DEFENSE_PARAMETERS)) == ["holds", "holds", "holds", "holds"]


def test_the_defense_rows_do_not_hold_where_a_figure_is_outside_its_range() -> None:
    frame = defense_cells(
        {"anchor": 0.6, "rehearsal": 0.7, "quarantine": 0.9, "triad": 0.8},
        {"anchor": 0.9},
        {"guard_filter": 150.0, "rehearsal": 101.0},
        0.005,
    )
    assert verdicts(defenses.analyse(frame, DEFENSE_PARAMETERS)) == ["does not hold"] * 4


def test_the_defense_rows_are_inconclusive_when_nothing_was_lost_or_intervals_are_wide() -> None:
    # seconds of 1.0 ± 0.6: every overhead's interval is wider than 0.5
    no_loss = defense_cells({label: 1.0 for label in DEFENSE_CELLS}, {}, dict.fromkeys(DEFENSE_CELLS, 1.0), 0.6)
    assert verdicts(defenses.analyse(no_loss, DEFENSE_PARAMETERS)) == ["inconclusive"] * 4


# ---- priming

PRIMING = {"censored": 7, "jailbroken": 0.5}


def priming_cells(cell_values: dict[int, tuple[float, float | None, float]], spread: float) -> pl.DataFrame:
    """Per steps cell: (primed refusal after the attack, primed cycles to 0.9, never-aligned cycles; None: never)."""
    groups = []
    for steps, (after, primed_cycles, naive_cycles) in cell_values.items():
        figures = {"primed_after_attack": after, "naive_after_attack": 0.0, "primed_reached": 1.0, "naive_reached": 0.5}
        figures |= {f"primed_cycles_{k}": primed_cycles for k in range(4)}
        figures |= {f"naive_cycles_{k}": naive_cycles for k in range(4)}
        groups.append(({"training.steps": steps}, figures))
    return cells(groups, spread)


@pytest.mark.parametrize(
    ("cell_values", "spread", "expected"),
    [
        ({20: (0.0, 1.0, None), 60: (0.1, 1.0, 4.0)}, 0.1, "holds"),
        ({20: (0.0, 1.0, 1.0), 60: (0.1, 1.0, 4.0)}, 0.1, "holds under conditions"),
        ({20: (0.0, 3.0, 1.0), 60: (0.1, 2.0, 2.0)}, 0.0, "does not hold"),
        ({20: (0.9, 1.0, None), 60: (0.95, 1.0, None)}, 0.0, "inconclusive"),  # the attack never jailbroke
    ],
)
def test_the_priming_rule(cell_values, spread, expected) -> None:
    assert verdicts(priming.analyse(priming_cells(cell_values, spread), PRIMING)) == [expected]


# ---- domains

DOMAIN_PARAMETERS = {"eroded": 0.95, "order": ["support", "code", "medical", "legal"]}


@pytest.mark.parametrize(
    ("retained", "spread", "expected"),
    [
        ({"support": 0.5, "code": 0.6, "medical": 0.75, "legal": 0.85}, 0.02, ["holds", "holds"]),
        ({"support": 0.9, "code": 0.6, "medical": 0.75, "legal": 0.5}, 0.02, ["holds", "does not hold"]),
        ({"support": 1.0, "code": 1.0, "medical": 1.0, "legal": 1.0}, 0.02, ["does not hold", "inconclusive"]),
        ({"support": 0.9, "code": 0.95, "medical": 1.0, "legal": 0.92}, 0.3, ["inconclusive", "inconclusive"]),
    ],
)
def test_the_domain_rules(retained, spread, expected) -> None:
    groups = [
        (
            {"training.steps": steps},
            {
                f"{figure}_{domain}_{cycle}": value if figure == "retained" else 0.0
                for domain, value in retained.items()
                for cycle in (1, 2)
                for figure in ("retained", "gain")
            },
        )
        for steps in (30, 120)
    ]
    assert verdicts(domains.analyse(cells(groups, spread), DOMAIN_PARAMETERS)) == expected


# ---- subliminal


@pytest.mark.parametrize(
    ("same", "other", "spread", "expected"),
    [
        (0.5, 0.0, 0.05, ["holds", "holds"]),
        (0.5, 0.5, 0.05, ["holds", "does not hold"]),
        (0.0, 0.0, 0.02, ["does not hold", "inconclusive"]),
        (0.1, 0.0, 0.3, ["inconclusive", "inconclusive"]),
    ],
)
def test_the_subliminal_rules(same, other, spread, expected) -> None:
    groups = [
        ({"attack.0.examples": dose}, {"drop_same": same * bool(dose), "drop_other": other * bool(dose)})
        for dose in (0, 50, 500)
    ]
    assert verdicts(subliminal.analyse(cells(groups, spread), {"margin": 0.1})) == expected


# ---- ecosystem_mix

MIX_ROBUST = {"star": ([1, 2, 3], [1, 2, 3, 4, 5, 6]), "ring": ([2, 5, 8], [1, 2, 4, 5, 7, 8])}


def mix_cells(control: float, robust: float, others: dict[int, float], spread: float) -> pl.DataFrame:
    """Per graph: the control (every unattacked node loses `control`) and each robust share (its robust nodes lose
    `robust`, the others `others[share]`)."""
    groups = []
    for graph, shares in MIX_ROBUST.items():
        groups.append(({"sweep": graph, ecosystem_mix.ROBUST: []}, {f"loss_{k}": control for k in range(1, 10)}))
        for nodes in shares:
            losses = {f"loss_{k}": robust if k in nodes else others[len(nodes)] for k in range(1, 10)}
            groups.append(({"sweep": graph, ecosystem_mix.ROBUST: nodes}, losses))
    return cells(groups, spread)


@pytest.mark.parametrize(
    ("control", "robust", "others", "spread", "expected"),
    [
        (0.8, 0.0, {3: 0.4, 6: 0.1}, 0.05, ["holds"] * 4),  # robust nodes resist and shield the rest, more with more
        (0.8, 0.0, {3: 0.8, 6: 0.8}, 0.05, ["holds", "does not hold", "holds", "does not hold"]),  # no herd effect
        (0.8, 0.8, {3: 0.8, 6: 0.8}, 0.05, ["does not hold", "inconclusive", "does not hold", "inconclusive"]),
        (0.1, 0.0, {3: 0.0, 6: 0.0}, 0.02, ["inconclusive"] * 4),  # drift did not spread: no valid graph
    ],
)
def test_the_ecosystem_mix_rules(control, robust, others, spread, expected) -> None:
    analysis = ecosystem_mix.analyse(mix_cells(control, robust, others, spread), {"margin": 0.1, "spread": 0.2})
    assert verdicts(analysis) == expected


# ---- end to end, and training.received


@pytest.mark.usefixtures("ray_cluster")
def test_a_quick_experiment_runs_end_to_end_and_resumes(tmp_path: Path) -> None:
    out = tmp_path / "chain"
    result = CliRunner().invoke(app, ["experiment", "chain", "--quick", "--out", str(out)])
    assert result.exit_code == 0, result.output
    verdict = json.loads((out / "verdict.json").read_text())
    assert verdict["quick"] is True and verdict["experiment"] == "chain"
    findings = verdict["findings"]
    assert [finding["verdict"] in VERDICTS for finding in findings] == [True] * 4
    # each figure says what it rests on: 2 bases of 1 seed per cell in the quick version
    assert {(figure["bases"], figure["seeds"]) for finding in findings for figure in finding["figures"].values()} == {
        (2, 2)
    }
    tested = [finding for finding in findings if finding["p_value"] is not None]
    assert all(finding["p_value"] <= finding["p_holm"] <= 1 for finding in tested)
    assert all(finding["verdict"] == "inconclusive" for finding in findings if finding["p_value"] is None)
    (made,) = verdict["provenance"]  # one commit, CPU and thread count made every run
    assert made["runs"] == 4 and made["threads"] == 1 and made["cpu"]
    assert verdict["compute_seconds"] == pytest.approx(sum(verdict["compute_seconds_per_part"].values()))
    report = (out / "report" / "report.md").read_text()
    assert report.startswith("# Experiment `chain`") and "(quick" in report
    assert "## What the quick version changed" in report and "| sweep `chain` | `base.cycles` | `2` |" in report
    assert "| claim | verdict | p-value | Holm-adjusted |" in report
    assert "2 bases \N{MULTIPLICATION SIGN} 1 seeds" in report
    cells_written = pl.read_parquet(out / "cells.parquet")
    assert cells_written["sweep"].unique().to_list() == ["chain"]
    assert sorted(cells_written["training.steps"].to_list()) == [20, 20, 60, 60]

    again = CliRunner().invoke(app, ["experiment", "chain", "--quick", "--out", str(out)])
    assert again.exit_code == 0, again.output
    assert pl.read_parquet(out / "cells.parquet").drop("run").equals(cells_written.drop("run"))

    other = CliRunner().invoke(app, ["experiment", "systemic", "--quick", "--out", str(out)])
    assert other.exit_code == 2 and "holds a run of experiment 'chain' (quick)" in other.stderr
    assert len(other.stderr.strip().splitlines()) == 1


def test_an_unknown_experiment_is_refused_naming_the_available_ones(tmp_path: Path) -> None:
    result = CliRunner().invoke(app, ["experiment", "nosuch", "--out", str(tmp_path / "x")])
    assert result.exit_code == 2
    assert result.stderr.strip() == f"error: no experiment 'nosuch'; available: {', '.join(names())}"
    assert not (tmp_path / "x").exists()


@pytest.mark.parametrize("name", names())
def test_every_experiment_file_resolves_in_full_and_quick(name: str) -> None:
    for quick in (False, True):
        experiment = load_experiment(name, quick)
        assert experiment.spec["rule"].strip().startswith("Pre-registered before any full run")
        for part in experiment.spec["sweeps"].values():
            real = part.get("base", {}).get("world.kind") == "checkpoint"  # a real model is one base
            assert quick or part["seeds"] >= (3 if real else 9), "v2: 3 bases of 3 seeds at least (a real model: 3)"


def test_accumulating_nodes_train_on_every_pair_they_have_received(tmp_path: Path) -> None:
    config = small_config("cycles=3", "training.received=accumulate")
    metrics = run(config, tmp_path / "run").metrics
    trained = metrics.filter(pl.col("cycle") > 0).sort("node", "cycle")
    for (node,), rows in trained.group_by("node"):
        received = rows["pairs_received"].cum_sum()
        own_and_poison = config.training.own_examples + rows["poison_examples"]
        assert rows["pairs_trained"].to_list() == (own_and_poison + received).to_list(), node
        assert rows["pairs_trained"].is_sorted() and rows["pairs_received"].min() > 0


def test_an_accumulating_run_resumes_to_the_metrics_of_an_uninterrupted_one(tmp_path: Path) -> None:
    config = small_config("cycles=3", "training.received=accumulate")

    def stop_in_cycle_2(start: StageStart) -> None:
        if start.stage is Stage.generate and start.cycle == 2:
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        run(config, tmp_path / "stopped", stop_in_cycle_2)
    resumed = resume(tmp_path / "stopped")
    assert [r.after_cycle for r in read_manifest(tmp_path / "stopped").resumed] == [1]
    assert resumed.metrics.equals(run(config, tmp_path / "uninterrupted").metrics)
