"""The `domains` rule (v2) gives each of its verdicts on synthetic cells."""

from __future__ import annotations

import pytest

from ecosystem.experiments import judged, load_experiment
from experiments import domains
from tests.rules import cells, verdicts

PARAMETERS = load_experiment("domains").parameters
CLAIMED = {"support": 0.55, "code": 0.62, "medical": 0.78, "legal": 0.85}
CYCLES = range(1, 11)


def domain_cells(retained: dict[str, float], spread: float, late: float | None = None):
    """Each domain's retention at every cycle up to 5 (after it, `late` where given: a figure no rule judges)."""
    figures = {
        f"{figure}_{domain}_{cycle}": 0.1
        if figure == "gain"
        else (late if late is not None and cycle > PARAMETERS["cycle"] else value)
        for domain, value in retained.items()
        for cycle in CYCLES
        for figure in ("retained", "gain")
    }
    return cells([({"cycles": 10}, figures)], spread)


@pytest.mark.parametrize(
    ("retained", "spread", "expected"),
    [
        (CLAIMED, 0.02, ["holds"] * 6),
        # the v1 case: retention far below every claimed figure contradicts them all
        (dict.fromkeys(CLAIMED, 0.08), 0.02, ["holds"] + ["does not hold"] * 5),
        # no erosion: above every band; the domains tied
        (dict.fromkeys(CLAIMED, 0.99), 0.02, ["does not hold"] * 6),
        # the order reversed, each value inside its band
        (
            {"support": 0.63, "code": 0.56, "medical": 0.76, "legal": 0.83},
            0.02,
            ["holds"] * 5 + ["does not hold"],
        ),
        (CLAIMED, 1.5, ["holds"] + ["inconclusive"] * 5),  # the mean of four domains is clear, each alone is not
    ],
)
def test_the_domain_rules(retained, spread, expected) -> None:
    findings = judged(domains, domain_cells(retained, spread), PARAMETERS).findings
    assert [finding.verdict for finding in findings] == expected
    assert all(finding.p_holm < 0.05 for finding in findings if finding.verdict != "inconclusive")


def test_erosion_is_inconclusive_where_the_retention_neither_lies_below_1_nor_within_the_margin() -> None:
    finding = judged(domains, domain_cells(dict.fromkeys(CLAIMED, 0.97), 0.6), PARAMETERS).findings[0]
    assert finding.verdict == "inconclusive" and finding.p_value is None
    assert finding.figures["retention, all domains"].low < 1 < finding.figures["retention, all domains"].high


def test_a_claimed_figure_is_inconclusive_where_its_interval_straddles_the_band_edge() -> None:
    findings = domains.analyse(domain_cells(CLAIMED | {"support": 0.65}, 0.1), PARAMETERS).findings
    assert findings[1].verdict == "inconclusive" and findings[1].p_value is None


def test_the_rules_judge_the_pre_registered_cycle_only() -> None:
    analysis = domains.analyse(domain_cells(CLAIMED, 0.02, late=0.1), PARAMETERS)
    assert verdicts(analysis) == ["holds"] * 6
    assert analysis.findings[1].figures["retention, support"].mean == pytest.approx(0.55, abs=0.02)
    assert analysis.findings[1].figures["retention, support"].bases == 3
