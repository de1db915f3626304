"""The stages a run goes through, as one type: what the progress bar shows and the manifest times."""

from __future__ import annotations

import time
from collections import defaultdict
from collections.abc import Callable
from dataclasses import dataclass
from enum import StrEnum


class Stage(StrEnum):
    base_model = "base_model"  # building or loading the base model, and starting the hosts
    evaluate = "evaluate"
    generate = "generate"
    train = "train"
    twin_run = "twin_run"  # the same run without its attacks: what the nodes would have been without the poison
    control_run = "control_run"  # the same run without its defenses, for their cost and benefit

    @property
    def label(self) -> str:
        return self.value.replace("_", " ")


CYCLE_STAGES = (Stage.generate, Stage.train, Stage.evaluate)  # the stages of every cycle after the baseline
COMPANION_RUNS = (Stage.twin_run, Stage.control_run)  # the runs after the last cycle, in this order


@dataclass(frozen=True)
class StageStart:
    """A stage starts: where the run is, counted in stages (`done` of `total`)."""

    stage: Stage
    cycle: int
    cycles: int
    done: int
    total: int

    @property
    def description(self) -> str:
        return f"cycle {self.cycle}/{self.cycles}: {self.stage.label}"


Progress = Callable[[StageStart], None]


def stage_count(cycles: int, companions: tuple[Stage, ...]) -> int:
    """Stages in a run: the base model and the baseline evaluation, each cycle's, and its companion runs."""
    return 2 + len(CYCLE_STAGES) * cycles + len(companions)


def stages_before(stage: Stage, cycle: int, companions: tuple[Stage, ...]) -> int:
    if stage is Stage.base_model:
        return 0
    if stage in COMPANION_RUNS:  # after the last cycle
        return 2 + len(CYCLE_STAGES) * cycle + companions.index(stage)
    if cycle == 0:  # the baseline evaluation
        return 1
    return 2 + len(CYCLE_STAGES) * (cycle - 1) + CYCLE_STAGES.index(stage)


class StageClock:
    """Reports each stage as it starts and adds up the seconds spent in each."""

    def __init__(self, report: Progress | None, cycles: int, companions: tuple[Stage, ...]) -> None:
        self.report = report or (lambda _: None)
        self.cycles = cycles
        self.companions = companions  # the companion runs this run makes (of COMPANION_RUNS)
        self.total = stage_count(cycles, companions)
        self.seconds: dict[Stage, float] = defaultdict(float)
        self.current: Stage | None = None
        self.since = 0.0

    def __call__(self, stage: Stage, cycle: int) -> None:
        self.stop()
        self.current, self.since = stage, time.perf_counter()
        self.report(StageStart(stage, cycle, self.cycles, stages_before(stage, cycle, self.companions), self.total))

    def stop(self) -> None:
        if self.current is not None:
            self.seconds[self.current] += time.perf_counter() - self.since
            self.current = None
