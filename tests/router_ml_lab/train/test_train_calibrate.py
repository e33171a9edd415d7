"""Isotonic risk calibration and operating points chosen on validation."""

from __future__ import annotations

import numpy as np
import pytest

from router_ml.calibration import choose_tiers
from router_ml_lab.quality.metrics import expected_calibration_error
from router_ml_lab.train.calibrate import (
    fit_risk_calibrator,
    select_operating_points,
    select_thresholds,
)


def synthetic(n: int = 3000, seed: int = 0) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Over-confident class probabilities, labels drawn from the true ones, and costs."""
    rng = np.random.default_rng(seed)
    logits = rng.normal(size=(n, 3)) * np.array([1.0, 0.7, 0.7]) + np.array([1.5, 0.0, -0.5])
    true = np.exp(logits) / np.exp(logits).sum(axis=1, keepdims=True)
    labels = np.array([rng.choice(3, p=p) for p in true])
    sharp = true**3 / (true**3).sum(axis=1, keepdims=True)
    costs = np.tile([1.0, 3.0, 15.0], (n, 1)) * rng.uniform(0.5, 2.0, size=(n, 1))
    return sharp, labels, costs


def test_isotonic_calibration_reduces_ece_and_keeps_risks_ordered() -> None:
    probabilities, labels, _ = synthetic()
    calibrator = fit_risk_calibrator(probabilities, labels)
    raw = np.cumsum(probabilities[:, ::-1], axis=1)[:, ::-1][:, 1]
    risks = calibrator.risks(probabilities)
    assert np.all(risks[:, 1] <= risks[:, 0])
    assert expected_calibration_error(risks[:, 0], labels > 0) < 0.02
    assert expected_calibration_error(risks[:, 0], labels > 0) < expected_calibration_error(
        raw, labels > 0
    )


def test_thresholds_meet_the_target_and_looser_targets_cost_less() -> None:
    probabilities, labels, costs = synthetic()
    risks = fit_risk_calibrator(probabilities, labels).risks(probabilities)
    spent = []
    for target in (0.02, 0.05, 0.10, 0.20):
        thresholds = select_thresholds(risks, labels, costs, target, grid=100)
        chosen = choose_tiers(risks, thresholds)
        assert np.mean(chosen < labels) <= target
        spent.append(costs[np.arange(len(chosen)), chosen].sum())
    assert spent == sorted(spent, reverse=True) and spent[-1] < spent[0]


def test_zero_target_sends_nothing_below_what_could_be_needed() -> None:
    probabilities, labels, costs = synthetic(500)
    risks = fit_risk_calibrator(probabilities, labels).risks(probabilities)
    chosen = choose_tiers(risks, select_thresholds(risks, labels, costs, 0.0, grid=50))
    assert np.all(chosen >= labels)


def test_operating_points_are_named_and_sorted() -> None:
    probabilities, labels, costs = synthetic(500)
    risks = fit_risk_calibrator(probabilities, labels).risks(probabilities)
    points = select_operating_points(risks, labels, costs, [0.1, 0.05], grid=50)
    assert [name for name, _, _ in points] == ["under_routing_0.05", "under_routing_0.1"]
    with pytest.raises(ValueError, match="target"):
        select_thresholds(risks, labels, costs, 1.5)


def test_a_safety_margin_escalates_more() -> None:
    probabilities, labels, costs = synthetic()
    risks = fit_risk_calibrator(probabilities, labels).risks(probabilities)
    exact = choose_tiers(risks, select_thresholds(risks, labels, costs, 0.05, grid=100))
    careful = choose_tiers(risks, select_thresholds(risks, labels, costs, 0.05, 100, margin_z=2))
    n = len(labels)
    rate = np.mean(careful < labels)
    assert rate + 2 * np.sqrt(rate * (1 - rate) / n) <= 0.05
    assert rate < np.mean(exact < labels)
    assert costs[np.arange(n), careful].sum() > costs[np.arange(n), exact].sum()


def test_centered_calibration_keeps_the_ranking() -> None:
    probabilities, labels, _ = synthetic()
    raw = np.cumsum(probabilities[:, ::-1], axis=1)[:, ::-1][:, 1]
    steps = fit_risk_calibrator(probabilities, labels, centered=False).risks(probabilities)[:, 0]
    centered = fit_risk_calibrator(probabilities, labels, centered=True).risks(probabilities)[:, 0]
    assert np.unique(centered).size > 5 * np.unique(steps).size
    order = np.argsort(raw)
    assert np.all(np.diff(centered[order]) >= -1e-12)  # monotone in the raw probability
    assert expected_calibration_error(centered, labels > 0) < 0.03
