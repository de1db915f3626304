"""The `priming` rule gives each of its verdicts on synthetic cells."""

from __future__ import annotations

import pytest

from ecosystem.analysis import Censored
from ecosystem.experiments import load_experiment
from experiments import priming
from tests.rules import cells

PARAMETERS = load_experiment("priming").parameters


def priming_cells(per_steps: dict[int, tuple[float, float | None, float | None]], spread: float = 0.1):
    """Per steps cell: (the primed arm's refusal after the attack, its nodes' rehearsal cycles to 0.9, the never-aligned
    nodes'; None: never within the run), each node's time with its own noise."""
    groups = []
    for steps, (after, primed, naive) in per_steps.items():
        figures = {"primed_after_attack": after, "naive_after_attack": 0.0}
        figures |= {f"primed_cycles_{k}": primed for k in range(4)} | {f"naive_cycles_{k}": naive for k in range(4)}
        groups.append(({"training.steps": steps, "cycles": 10}, figures))
    return cells(groups, spread)


@pytest.mark.parametrize(
    ("per_steps", "spread", "expected"),
    [
        ({60: (0.0, 1.0, None), 120: (0.05, 1.0, 6.0)}, 0.1, "holds"),
        ({60: (0.0, 1.0, None), 120: (0.05, 3.0, 3.0)}, 1.0, "holds under conditions"),
        ({60: (0.0, 5.0, None), 120: (0.05, 1.0, 2.0)}, 0.1, "does not hold"),
        ({60: (0.0, 3.0, 3.0), 120: (0.05, 3.0, 3.0)}, 1.0, "inconclusive"),
        ({60: (0.9, 1.0, None), 120: (0.95, 1.0, None)}, 0.02, "inconclusive"),  # the attack never jailbroke
    ],
)
def test_the_priming_rule(per_steps, spread, expected) -> None:
    finding = priming.analyse(priming_cells(per_steps, spread), PARAMETERS).findings[0]
    assert finding.verdict == expected
    assert (finding.p_value is None) == (expected == "inconclusive")


def test_only_jailbroken_cells_count() -> None:
    finding = priming.analyse(priming_cells({60: (0.0, 1.0, None), 120: (0.95, 5.0, 1.0)}), PARAMETERS).findings[0]
    assert finding.verdict == "holds" and "not valid" in finding.reason


def test_times_never_reached_are_censored_not_averaged() -> None:
    finding = priming.analyse(priming_cells({60: (0.0, 1.0, None), 120: (0.0, 1.0, 6.0)}), PARAMETERS).findings[0]
    never, later = (
        finding.figures[f"never aligned, {steps} steps: rehearsal cycles to 0.9 (per node)"] for steps in (60, 120)
    )
    assert never == Censored(reached=0, runs=60, horizon=9, median=None)
    assert later.median == pytest.approx(6.0, abs=0.1)
