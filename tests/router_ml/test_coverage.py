"""Coverage: ranges fitted on training rows, ood scores, and the escalation rule."""

from __future__ import annotations

import numpy as np
import pytest

from router_ml.calibration import choose_tier
from router_ml.coverage import Coverage, CoverageRule

NAMES = ("tokens", "n_images", "ratio")


def _fitted(max_flagged: float = 0.01) -> Coverage:
    rng = np.random.default_rng(0)
    training = np.column_stack(
        [rng.integers(1, 500, 5000), np.zeros(5000), rng.random(5000)]
    ).astype(np.float32)
    validation = np.column_stack([rng.integers(1, 520, 1000), np.zeros(1000), rng.random(1000)])
    return Coverage.fit(NAMES, training, validation, max_flagged=max_flagged, min_support=10)


def test_inside_scores_zero_and_unseen_features_score_near_one() -> None:
    coverage = _fitted()
    assert coverage.score(np.array([100.0, 0.0, 0.5])) == 0.0
    assert coverage.score(np.array([100.0, 1.0, 0.5])) > 0.99
    assert coverage.out_of_range(np.array([100.0, 2.0, 0.5])) == ["n_images=2 (never seen)"]
    further = coverage.scores(np.array([[600.0, 0, 0.5], [2000.0, 0, 0.5]]))
    assert 0 < further[0] < further[1] < 1


def test_threshold_flags_at_most_the_asked_share_of_validation() -> None:
    coverage = _fitted(max_flagged=0.01)
    assert coverage.validation_flagged is not None and coverage.validation_flagged <= 0.01
    assert coverage.threshold >= 0.05


def test_round_trip_and_validation() -> None:
    coverage = _fitted()
    again = Coverage.from_dict(coverage.to_dict())
    row = np.array([900.0, 1.0, 0.2])
    assert again.score(row) == coverage.score(row) and again.threshold == coverage.threshold
    with pytest.raises(ValueError, match="unknown coverage method"):
        Coverage.from_dict({"method": "isolation_forest"})
    with pytest.raises(ValueError, match="low <= high"):
        Coverage(("a",), np.array([1.0]), np.array([0.0]), np.array([1.0]), 0.5)


@pytest.mark.parametrize("escalate_to", ["standard", "premium"])
def test_escalated_risks_choose_the_floor_tier_and_stay_ordered(escalate_to: str) -> None:
    rule = CoverageRule(escalate_to=escalate_to)
    thresholds = (0.3, 0.1)
    for risks in ([0.01, 0.0], [0.2, 0.05], [0.9, 0.5]):
        raised = rule.escalate(risks, thresholds, ood=0.6)
        assert raised[0] >= raised[1] and all(r >= o for r, o in zip(raised, risks, strict=True))
        assert choose_tier(raised, thresholds) >= (1 if escalate_to == "standard" else 2)
    # Further out of range ranks riskier.
    low, high = (
        rule.escalate([0.01, 0.0], thresholds, 0.2),
        rule.escalate([0.01, 0.0], thresholds, 0.9),
    )
    assert high[0] > low[0]


def test_rule_from_config() -> None:
    assert CoverageRule.from_config(None) == CoverageRule()
    rule = CoverageRule.from_config({"enabled": False, "threshold": 0.5, "escalate_to": "standard"})
    assert rule == CoverageRule(False, 0.5, "standard")
    with pytest.raises(ValueError, match="unknown keys"):
        CoverageRule.from_config({"treshold": 0.5})
    with pytest.raises(ValueError, match="escalate_to"):
        CoverageRule.from_config({"escalate_to": "gold"})
    with pytest.raises(ValueError, match="threshold"):
        CoverageRule.from_config({"threshold": 2})


def test_unchecked_features_are_never_out_of_range() -> None:
    rng = np.random.default_rng(1)
    training = np.column_stack([rng.integers(1, 500, 2000), rng.normal(size=2000), np.zeros(2000)])
    coverage = Coverage.fit(NAMES, training, training[:500], min_support=10, unchecked=["n_images"])
    assert coverage.score(np.array([100.0, 50.0, 0.0])) == 0.0
    assert coverage.score(np.array([100.0, 0.0, 0.3])) > 0.99
