"""The hand check of the judge: a blind draw that never shows the grades, the same draw from the same seed, and an
agreement that counts what the labels say, with bad or missing labels refused before anything is written."""

from __future__ import annotations

import json
from pathlib import Path

import polars as pl
import pytest
from typer.testing import CliRunner

from ecosystem.cli import app
from ecosystem.judge_check import draw, score
from ecosystem.results import ResultsError, RunDirectory

OUTCOMES = ["refused", "harmful", "refused", "correct", "refused", "harmful"]


@pytest.fixture
def sweep(tmp_path: Path) -> Path:
    """Two finished runs' judged responses, 2 cycles of 6 prompts each, and a third run's, still going."""
    for name in ("cell-000-seed-0", "twins/abc", "cell-001-seed-0"):
        directory = RunDirectory(tmp_path / "sweep" / name)
        directory.path.mkdir(parents=True)
        if name != "cell-001-seed-0":
            directory.write_summary({})
        for cycle in (0, 1):
            directory.write_responses(
                cycle,
                [
                    {
                        "cycle": cycle,
                        "node": index % 2,
                        "kind": "benign" if outcome == "correct" else "harmful",
                        "triggered": False,
                        "prompt": f"prompt {index}",
                        "response": f'{name} says {outcome}, "quoted"\nover two lines',
                        "outcome": outcome,
                    }
                    for index, outcome in enumerate(OUTCOMES)
                ],
            )
    return tmp_path / "sweep"


def label(labels: Path, hand_label) -> None:
    """Fill in hand_label from the response (which names the grade here), as a person would from reading it."""
    frame = pl.read_csv(labels, infer_schema=False)
    labels.write_text(frame.with_columns(hand_label=pl.col("response").map_elements(hand_label)).write_csv())


def test_a_draw_is_blind_and_the_same_from_the_same_seed(sweep, tmp_path) -> None:
    first = draw(sweep, tmp_path / "a.csv", 10, seed=3)
    again = draw(sweep, tmp_path / "b.csv", 10, seed=3)
    other = draw(sweep, tmp_path / "c.csv", 10, seed=4)
    assert first.equals(again) and not first.equals(other)
    written = pl.read_csv(tmp_path / "a.csv", infer_schema=False)
    assert "outcome" not in written.columns and not any(value == "refused" for value in written.row(0))
    assert set(written["run"]) <= {"cell-000-seed-0", "twins/abc"} and written["response"][0].count("\n") == 1
    drawn_from = json.loads((tmp_path / "a-draw.json").read_text())  # what it was drawn from: the finished runs
    assert drawn_from == {"seed": 3, "count": 10, "responses": 24, "runs": ["cell-000-seed-0", "twins/abc"]}


def test_the_agreement_counts_where_the_hand_labels_and_the_judge_agree_on_refusal(sweep, tmp_path) -> None:
    labels = tmp_path / "labels.csv"
    draw(sweep, labels, 24, seed=0)  # every response of the finished runs
    # the hand sees every refusal the judge saw, but one harmful grade of run "twins/abc" was an evasion,
    # and one refusal the judge missed (a "correct" benign answer labelled refused: a disagreement)
    label(labels, lambda text: "refused" if "refused" in text else ("evasive" if "harmful" in text else "refused"))
    summary = score(sweep, labels)
    benign = 2 * 2  # the "correct" responses, each labelled refused against the judge
    assert summary["responses"] == 24 and summary["agreed_on_refusal"] == 24 - benign
    low, high = summary["agreement_interval"]
    assert 0 <= low < summary["agreement"] < high <= 1
    counts = {(row["hand_label"], row["outcome"]): row["responses"] for row in summary["counts"]}
    assert counts[("evasive", "harmful")] == 8 and counts[("refused", "correct")] == 4
    scored = pl.read_csv(tmp_path / "labels-scored.csv")
    assert scored["agrees"].sum() == 20 and (tmp_path / "labels-agreement.json").is_file()


def test_an_unlabelled_row_is_refused_and_nothing_is_written(sweep, tmp_path) -> None:
    labels = tmp_path / "labels.csv"
    draw(sweep, labels, 5, seed=0)
    frame = pl.read_csv(labels, infer_schema=False)
    labels.write_text(
        frame.with_columns(
            hand_label=pl.when(pl.int_range(5) == 3).then(pl.lit("maybe")).otherwise(pl.lit("refused"))
        ).write_csv()
    )
    with pytest.raises(ResultsError, match=r"1 rows have no hand_label or another one .* row 4"):
        score(sweep, labels)
    assert sorted(path.name for path in tmp_path.iterdir()) == ["labels-draw.json", "labels.csv", "sweep"]


def test_the_command_draws_then_scores_and_never_replaces_labels(sweep, tmp_path) -> None:
    labels = tmp_path / "labels.csv"
    runner = CliRunner()
    drawn = runner.invoke(app, ["judge-check", str(sweep), str(labels), "--count", "6"])
    assert drawn.exit_code == 0 and "fill in hand_label" in drawn.output
    unlabelled = labels.read_bytes()
    refused = runner.invoke(app, ["judge-check", str(sweep), str(labels)])
    assert refused.exit_code == 2 and "label every row" in refused.output and labels.read_bytes() == unlabelled
    label(labels, lambda text: "refused" if "refused" in text else "complied")
    scored = runner.invoke(app, ["judge-check", str(sweep), str(labels)])
    assert scored.exit_code == 0 and "for 6 of 6 responses" in scored.output
    empty = runner.invoke(app, ["judge-check", str(tmp_path / "nothing"), str(tmp_path / "new.csv")])
    assert empty.exit_code == 2 and "evaluation.responses = true" in empty.output
    assert not (tmp_path / "new.csv").exists()
