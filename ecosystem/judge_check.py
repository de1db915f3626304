"""The judge checked by hand: judged responses drawn at random from the runs that kept them (`evaluation.responses`),
labelled by a person who does not see the judge's grades, then set beside those grades."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import polars as pl
from scipy.stats import binomtest

from ecosystem.results import ResultsError, RunDirectory, write_atomic, write_json

# A hand label and whether it is a refusal: the one question the phrase judge answers for a real model.
HAND_LABELS = {
    "refused": True,
    "complied": False,  # does (or begins to do) what was asked
    "evasive": False,  # neither refuses nor does it: off the point, moralising, cut before it says which
}
KEY = ["run", "cycle", "node", "kind", "prompt"]


def judged_responses(folder: Path) -> pl.DataFrame:
    """Every judged response kept by the finished runs under `folder` (a run, a sweep or an experiment), with its
    run's path relative to `folder` in `run`: the same folder gives the same responses, however many runs are still
    going. Links are not followed: a sweep's shared twin is read once, where it lies."""
    frames = []
    for where, folders, files in sorted(os.walk(folder)):
        if RunDirectory.RESPONSES in folders and RunDirectory.SUMMARY in files:  # a summary: the run is finished
            responses = RunDirectory(where).read_responses()
            frames.append(responses.with_columns(run=pl.lit(Path(where).relative_to(folder).as_posix())))
    if not frames:
        raise ResultsError(
            f"no finished run under {folder} kept its judged responses: runs keep them with evaluation.responses = true"
        )
    return pl.concat(frames).select(*KEY, "response", "outcome").sort(KEY)


def draw(folder: Path, labels: Path, count: int, seed: int) -> pl.DataFrame:
    """`count` responses drawn at random (from `seed`) under `folder`, written to the CSV `labels` without the judge's
    grades and with an empty `hand_label` for a person to fill in; beside it, `<labels>-draw.json` says what it was
    drawn from (the seed, and the runs then finished: more may finish later). An existing file is never replaced."""
    if labels.exists():
        raise ResultsError(f"{labels} exists: score it with the same command, or name a new file")
    responses = judged_responses(folder)
    if count > responses.height:
        raise ResultsError(f"{folder} keeps {responses.height} judged responses; ask for at most that many")
    blind = responses.sample(count, seed=seed).select(*KEY, "response").with_columns(hand_label=pl.lit(""))
    labels.parent.mkdir(parents=True, exist_ok=True)
    drawn_from = {"seed": seed, "count": count, "responses": responses.height}
    write_json(_beside(labels, "-draw.json"), drawn_from | {"runs": responses["run"].unique().sort().to_list()})
    write_atomic(labels, blind.write_csv().encode())
    return blind


def score(folder: Path, labels: Path) -> dict[str, Any]:
    """The labelled `labels` set beside the judge's grades: writes `<labels>-scored.csv` (with `outcome`) and
    `<labels>-agreement.json`, and returns the agreement on refusal (with its exact 95% interval) and the counts of
    each hand label against each grade."""
    labelled = _read_labels(labels)
    scored = labelled.join(judged_responses(folder), on=KEY, how="left")
    missing = scored.filter(pl.col("outcome").is_null())
    if missing.height:
        first = missing.row(0, named=True)
        raise ResultsError(
            f"{labels}: {missing.height} labelled responses are not under {folder} (the first: run {first['run']}, "
            f"cycle {first['cycle']}, node {first['node']}); score it against the folder it was drawn from"
        )
    agrees = scored["hand_label"].replace_strict(HAND_LABELS) == (scored["outcome"] == "refused")
    agreed = int(agrees.sum())
    interval = binomtest(agreed, scored.height).proportion_ci(0.95, method="exact")
    counts = scored.group_by("kind", "hand_label", "outcome").len("responses").sort("kind", "hand_label", "outcome")
    summary = {
        "responses": scored.height,
        "agreed_on_refusal": agreed,
        "agreement": agreed / scored.height,
        "agreement_interval": [interval.low, interval.high],
        "interval": "exact (Clopper-Pearson) 95% binomial interval",
        "counts": counts.to_dicts(),
    }
    write_atomic(_beside(labels, "-scored.csv"), scored.with_columns(agrees=agrees).write_csv().encode())
    write_json(_beside(labels, "-agreement.json"), summary)
    return summary


def _read_labels(labels: Path) -> pl.DataFrame:
    try:
        frame = pl.read_csv(labels, schema_overrides={"cycle": pl.Int64, "node": pl.Int64}, infer_schema=False)
    except (OSError, pl.exceptions.PolarsError) as error:
        raise ResultsError(f"cannot read {labels} as a drawn CSV: {error}") from None
    absent = [column for column in [*KEY, "hand_label"] if column not in frame.columns]
    if absent:
        raise ResultsError(f"{labels} lacks the columns {', '.join(absent)}: it was not written by a draw")
    frame = frame.with_columns(pl.col("hand_label").fill_null("").str.strip_chars().str.to_lowercase())
    wrong = frame.with_row_index("row", offset=1).filter(~pl.col("hand_label").is_in(list(HAND_LABELS)))
    if wrong.height:
        raise ResultsError(
            f"{labels}: {wrong.height} rows have no hand_label or another one than {', '.join(HAND_LABELS)} "
            f"(the first: row {wrong['row'][0]}); label every row, then score again"
        )
    return frame.select(*KEY, "response", "hand_label")


def _beside(labels: Path, suffix: str) -> Path:
    return labels.with_name(labels.stem + suffix)
