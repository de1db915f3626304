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
    accumulate,
    coupling,
    domains,
    ecosystem_mix,
    midtraining,
    rebound,
    subliminal,
    threshold,
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


# ---- accumulate


@pytest.mark.parametrize(
    ("area", "refusal", "expected"),
    [
        ((0.5, 2.0), (0.5, 0.9), ["holds", "holds"]),
        ((2.0, 0.5), (0.9, 0.5), ["does not hold", "does not hold"]),
        ((1.0, 1.0), (0.8, 0.8), ["inconclusive", "inconclusive"]),
    ],
)
def test_the_accumulate_rules(area, refusal, expected) -> None:
    groups = [
        (
            {"training.received": mode},
            {
                "drifted_share_area": area[index],
                "peak_drifted_share": 0.5,
                "final_mean_refusal": refusal[index],
                "final_unattacked_refusal": refusal[index],
                "final_attacked_refusal": 0.1,
                "helpfulness_retained": 1.0,
            },
        )
        for index, mode in enumerate(("accumulate", "replace"))
    ]
    assert verdicts(accumulate.analyse(cells(groups, 0.05), {})) == expected


def test_no_drift_in_either_mode_is_inconclusive_for_bounding_and_refutes_entrenching() -> None:
    groups = [
        ({"training.received": mode}, dict.fromkeys(accumulate.FIGURES, 0.0)) for mode in ("accumulate", "replace")
    ]
    assert verdicts(accumulate.analyse(cells(groups, 0.0), {})) == ["inconclusive", "does not hold"]


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


# ---- midtraining

ALIGNMENT_SIZES = (250, 1000, 4000)
SWING = (1, -1, 1, -1, 0)


def midtraining_cells(
    ood: dict[str, float], final: dict[str, float], spread: float, swing: float = 0.0
) -> pl.DataFrame:
    """Both sweeps: each arm's 5 bases with refusal 1.0 on covered topics, `ood[arm]` on the others at cycle 0 and
    `final[arm]` after the attack (the same at every alignment-data size). `swing` spreads the bases: base K of the
    midtrained and story arms gets `swing * SWING[K]` added to ood0 and final, the others as much subtracted (mean 0
    over the bases)."""

    def arms(names: tuple[str, ...]) -> dict[str, float]:
        sign = {arm: 1 if arm in ("mid", "evil", "ethical") else -1 for arm in names}
        return {
            f"{arm}_{figure}_{k}": value + (figure != "id0") * sign[arm] * swing * SWING[k - 1]
            for arm in names
            for figure, value in (("id0", 1.0), ("ood0", ood[arm]), ("final", final[arm]))
            for k in range(1, 6)
        }

    sizes = cells([({"model.align_examples": size}, arms(("align", "mid"))) for size in ALIGNMENT_SIZES], spread)
    stories = cells([({"model.align_examples": 4000}, arms(("plain", "evil", "ethical")))], spread)
    return pl.concat(
        [sizes.with_columns(sweep=pl.lit("midtraining")), stories.with_columns(sweep=pl.lit("stories"))],
        how="diagonal",
    )


@pytest.mark.parametrize(
    ("ood", "final", "spread", "swing", "expected"),
    [
        (  # every claim as stated
            {"align": 0.5, "mid": 0.9, "plain": 0.5, "evil": 0.3, "ethical": 0.8},
            {"align": 0.4, "mid": 0.8, "plain": 0.5, "evil": 0.5, "ethical": 0.5},
            0.05,
            0.0,
            ["holds"] * 6,
        ),
        (  # nothing differs: midtrained with little data is then as good as aligned with much
            {"align": 1.0, "mid": 1.0, "plain": 1.0, "evil": 1.0, "ethical": 1.0},
            {"align": 0.5, "mid": 0.5, "plain": 0.5, "evil": 0.5, "ethical": 0.5},
            0.02,
            0.0,
            ["does not hold", "does not hold", "holds", "does not hold", "does not hold", "does not hold"],
        ),
        (  # every effect the other way
            {"align": 0.6, "mid": 0.2, "plain": 0.5, "evil": 0.8, "ethical": 0.2},
            {"align": 0.6, "mid": 0.2, "plain": 0.5, "evil": 0.5, "ethical": 0.5},
            0.05,
            0.0,
            ["holds", *["does not hold"] * 5],
        ),
        (  # small effects, and bases (and runs) that differ far more than the margin
            {"align": 0.95, "mid": 0.95, "plain": 0.95, "evil": 0.95, "ethical": 0.95},
            {"align": 0.5, "mid": 0.5, "plain": 0.5, "evil": 0.5, "ethical": 0.5},
            0.3,
            0.3,
            ["inconclusive"] * 6,
        ),
    ],
)
def test_the_midtraining_rules(ood, final, spread, swing, expected) -> None:
    analysis = midtraining.analyse(midtraining_cells(ood, final, spread, swing), {"margin": 0.1})
    assert verdicts(analysis) == expected


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


# ---- rebound


def rebound_cells(figures: dict[str, tuple[float, float, float]], spread: float) -> pl.DataFrame:
    """Per arm, (speed, depth, rebound) for each of its 5 bases, at doses 10 and 100."""
    values = {
        f"{arm}_{figure}_{k}": value
        for arm, triple in figures.items()
        for figure, value in zip(rebound.FIGURES, triple, strict=True)
        for k in range(1, 6)
    }
    return cells([({"attack.0.examples": dose}, values) for dose in (10, 100)], spread)


@pytest.mark.parametrize(
    ("figures", "spread", "expected"),
    [
        (  # as claimed: template gives way faster and snaps back more, styles lose least
            {"template": (0.8, 0.9, 0.6), "phrasings": (0.5, 0.8, 0.4), "styles": (0.3, 0.5, 0.2)},
            0.05,
            ["holds"] * 4,
        ),
        (  # degraded, no rebound, no difference between arms
            {"template": (0.5, 0.8, 0.0), "phrasings": (0.5, 0.8, 0.0), "styles": (0.5, 0.8, 0.0)},
            0.02,
            ["does not hold"] * 4,
        ),
        (  # the poison did not degrade: no valid dose for the rebound rules
            {"template": (0.0, 0.1, 0.0), "phrasings": (0.0, 0.1, 0.0), "styles": (0.0, 0.1, 0.0)},
            0.02,
            ["inconclusive", "does not hold", "inconclusive", "does not hold"],
        ),
        (  # no effect on average, in noise far wider than the margin
            {"template": (0.5, 0.6, 0.0), "phrasings": (0.5, 0.6, 0.0), "styles": (0.5, 0.6, 0.0)},
            1.0,
            ["inconclusive"] * 4,
        ),
    ],
)
def test_the_rebound_rules(figures, spread, expected) -> None:
    assert verdicts(rebound.analyse(rebound_cells(figures, spread), {"margin": 0.1, "degraded": 0.3})) == expected


# ---- coupling


@pytest.mark.parametrize(
    ("areas", "spread", "expected"),
    [
        (
            {(0.5, 0.2): 2.0, (1.0, 0.4): 0.2, (0.5, 0.4): 0.5, (1.0, 0.2): 3.0},
            0.05,
            ["holds", "holds", "does not hold"],
        ),
        ({(0.5, 0.2): 1.0, (1.0, 0.4): 1.0, (0.5, 0.4): 1.0, (1.0, 0.2): 1.0}, 0.5, ["inconclusive"] * 3),
    ],
)
def test_the_coupling_rules(areas, spread, expected) -> None:
    groups = [
        (
            {"topology.edge_weight": weight, "traffic.harmful_fraction": share},
            {
                "drifted_share_area": area,
                "peak_drifted_share": 0.5,
                "final_unattacked_refusal": 0.8,
                "final_attacked_refusal": 0.1,
            },
        )
        for (weight, share), area in areas.items()
    ]
    # the same spread in every cell (seed by seed): identical cells differ by exactly 0, within wide intervals
    frame = cells(groups, 0.0).with_columns(pl.col("drifted_share_area") + (pl.col("seed") - 2) * spread)
    assert verdicts(coupling.analyse(frame, {})) == expected


# ---- threshold

RADIUS = {"ring": 2.0, "barabasi_albert": 3.5, "complete": 7.0}


def threshold_cells(onsets: dict[str, float | None], beta: float | None, gamma: float):
    """Peak shares above 0 from each family's onset on, and a fit with the given beta and gamma."""
    groups = []
    for family, onset in onsets.items():
        for weight in (0.125, 0.25, 0.5, 1.0):
            spreading = onset is not None and weight >= onset
            figures = {
                "peak_drifted_share": 0.5 if spreading else 0.0,
                "beta": beta,
                "gamma": gamma,
                "unweighted_radius": RADIUS[family],
            }
            groups.append(({"topology.name": family, "topology.edge_weight": weight}, figures))
    return cells(groups, 0.0).with_columns(
        peak_drifted_share=pl.when(pl.col("peak_drifted_share") > 0)
        .then(pl.col("peak_drifted_share") + pl.col("seed") * 0.01)
        .otherwise(0.0)
    )


@pytest.mark.parametrize(
    ("onsets", "beta", "expected"),
    [
        # gamma / (beta * radius) with gamma 0.5, beta 1: 0.25 (ring), 0.14 (scale-free), 0.07 (complete)
        ({"ring": 0.25, "barabasi_albert": 0.25, "complete": 0.125}, 1.0, ["holds", "holds"]),
        ({"ring": 0.125, "barabasi_albert": 1.0, "complete": 1.0}, 1.0, ["holds under conditions", "does not hold"]),
        ({"ring": None, "barabasi_albert": None, "complete": None}, 1.0, ["does not hold", "inconclusive"]),
        ({"ring": 0.5, "barabasi_albert": 0.5, "complete": 0.5}, None, ["inconclusive", "inconclusive"]),
    ],
)
def test_the_threshold_rules(onsets, beta, expected) -> None:
    analysis = threshold.analyse(threshold_cells(onsets, beta, 0.5), load_experiment("threshold").parameters)
    assert verdicts(analysis) == expected


# ---- end to end, and training.received


@pytest.mark.usefixtures("ray_cluster")
def test_a_quick_experiment_runs_end_to_end_and_resumes(tmp_path: Path) -> None:
    out = tmp_path / "accumulate"
    result = CliRunner().invoke(app, ["experiment", "accumulate", "--quick", "--out", str(out)])
    assert result.exit_code == 0, result.output
    verdict = json.loads((out / "verdict.json").read_text())
    assert verdict["quick"] is True and verdict["experiment"] == "accumulate"
    assert [finding["verdict"] in VERDICTS for finding in verdict["findings"]] == [True, True]
    assert all(figure["seeds"] == 2 for finding in verdict["findings"] for figure in finding["figures"].values())
    report = (out / "report" / "report.md").read_text()
    assert report.startswith("# Experiment `accumulate`") and "(quick" in report
    assert "## What the quick version changed" in report and "| sweep `received` | `base.cycles` | `2` |" in report
    cells_written = pl.read_parquet(out / "cells.parquet")
    assert cells_written["sweep"].unique().to_list() == ["received"]
    assert sorted(cells_written["training.received"].to_list()) == ["accumulate"] * 2 + ["replace"] * 2

    again = CliRunner().invoke(app, ["experiment", "accumulate", "--quick", "--out", str(out)])
    assert again.exit_code == 0, again.output
    assert pl.read_parquet(out / "cells.parquet").drop("run").equals(cells_written.drop("run"))

    other = CliRunner().invoke(app, ["experiment", "dose", "--quick", "--out", str(out)])
    assert other.exit_code == 2 and "holds a run of experiment 'accumulate' (quick)" in other.stderr
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
        assert experiment.spec["rule"].strip().startswith("Pre-registered before any full run.")
        assert all(part["seeds"] >= 5 or quick for part in experiment.spec["sweeps"].values())


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
