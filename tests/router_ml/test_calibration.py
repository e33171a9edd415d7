"""Calibration maps, escalation choice, and the per-row fast path agreeing with the batch path."""

from __future__ import annotations

import numpy as np
import pytest

from router_ml.calibration import (
    RiskCalibrator,
    choose_tier,
    choose_tiers,
    non_increasing,
    risks_to_probabilities,
)


def test_uncalibrated_risks_are_upper_tail_sums() -> None:
    risks = RiskCalibrator().risks(np.array([[0.5, 0.3, 0.2], [0.1, 0.1, 0.8]]))
    np.testing.assert_allclose(risks, [[0.5, 0.2], [0.9, 0.8]])


def test_isotonic_maps_apply_and_keep_risks_monotone() -> None:
    calibrator = RiskCalibrator([([0.0, 1.0], [0.0, 0.5]), ([0.0, 1.0], [0.0, 1.0])])
    risks = calibrator.risks(np.array([[0.2, 0.0, 0.8]]))
    # economy risk 0.8 maps to 0.4; the standard risk (0.8) is capped by it.
    np.testing.assert_allclose(risks, [[0.4, 0.4]])


def test_round_trip_through_dict() -> None:
    calibrator = RiskCalibrator([([0.0, 0.5, 1.0], [0.0, 0.2, 1.0]), ([0.0, 1.0], [0.1, 0.9])])
    again = RiskCalibrator.from_dict(calibrator.to_dict())
    probs = np.random.default_rng(1).dirichlet([1, 1, 1], size=50)
    np.testing.assert_array_equal(calibrator.risks(probs), again.risks(probs))
    assert RiskCalibrator.from_dict({"method": "none"}).knots == []


@pytest.mark.parametrize("spec", [{"method": "platt"}, {"method": "isotonic", "risk_above": {}}])
def test_bad_specs_are_refused(spec: dict) -> None:
    with pytest.raises((ValueError, KeyError)):
        RiskCalibrator.from_dict(spec)


def test_decreasing_knots_are_refused() -> None:
    with pytest.raises(ValueError):
        RiskCalibrator([([1.0, 0.0], [0.0, 1.0]), ([0.0, 1.0], [0.0, 1.0])])


def test_row_path_equals_batch_path() -> None:
    rng = np.random.default_rng(0)
    calibrator = RiskCalibrator(
        [([0.0, 0.3, 0.3, 1.0], [0.0, 0.1, 0.5, 1.0]), ([0.0, 0.6, 1.0], [0.05, 0.2, 0.95])]
    )
    probs = rng.dirichlet([1, 1, 1], size=1000)
    batch = calibrator.risks(probs)
    rows = np.array([calibrator.risk_row(p.tolist()) for p in probs])
    np.testing.assert_allclose(rows, batch, atol=1e-12)
    thresholds = (0.3, 0.5)
    assert choose_tiers(batch, thresholds).tolist() == [choose_tier(r, thresholds) for r in rows]


def test_choice_is_the_cheapest_tier_below_its_threshold() -> None:
    risks = np.array([[0.1, 0.0], [0.5, 0.1], [0.5, 0.4], [0.3, 0.3]])
    assert choose_tiers(risks, (0.3, 0.3)).tolist() == [0, 1, 2, 2]


def test_probabilities_from_risks_sum_to_one() -> None:
    probs = risks_to_probabilities(np.array([[0.6, 0.2]]))
    np.testing.assert_allclose(probs, [[0.4, 0.4, 0.2]])


def test_non_increasing_keeps_the_moved_risks() -> None:
    # A raised economy risk stays; a raised standard risk lifts economy's to it.
    assert non_increasing([0.9, 0.1], raise_earlier=True) == [0.9, 0.1]
    assert non_increasing([0.2, 0.7], raise_earlier=True) == [0.7, 0.7]
    # A capped economy risk lowers standard's to it.
    assert non_increasing([0.1, 0.6], raise_earlier=False) == [0.1, 0.1]
    assert non_increasing([0.5, 0.3, 0.4], raise_earlier=False) == [0.5, 0.3, 0.3]
    assert non_increasing([0.5, 0.3, 0.4], raise_earlier=True) == [0.5, 0.4, 0.4]
