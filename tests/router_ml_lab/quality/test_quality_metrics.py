"""Every metric on tiny cases computed by hand, and the sweep metrics against their definitions."""

from __future__ import annotations

import numpy as np
import pytest

from router_ml.pricing import request_costs
from router_ml_lab.quality import metrics as m

LABELS = np.array([0, 1, 2, 2])
CHOSEN = np.array([0, 2, 1, 2])


def test_confusion_matrix_rows_are_labels_columns_are_choices() -> None:
    expected = np.array([[1, 0, 0], [0, 0, 1], [0, 1, 1]])
    np.testing.assert_array_equal(m.confusion_matrix(LABELS, CHOSEN), expected)


def test_confusion_matrix_rejects_out_of_range_tiers() -> None:
    with pytest.raises(ValueError, match="tier indices"):
        m.confusion_matrix(np.array([0, 3]), np.array([0, 1]))


def test_accuracy_under_and_over_routing_by_hand() -> None:
    assert m.tier_accuracy(LABELS, CHOSEN) == 0.5
    assert m.under_routing_rate(LABELS, CHOSEN) == 0.25  # label 2 sent to 1
    assert m.over_routing_rate(LABELS, CHOSEN) == 0.25  # label 1 sent to 2
    assert m.majority_class_accuracy(np.array([0, 0, 1])) == pytest.approx(2 / 3)
    np.testing.assert_allclose(m.tier_shares(CHOSEN), [0.25, 0.25, 0.5])


def test_metrics_reject_mismatched_or_empty_input() -> None:
    with pytest.raises(ValueError):
        m.tier_accuracy(np.array([0, 1]), np.array([0]))
    with pytest.raises(ValueError):
        m.tier_accuracy(np.array([]), np.array([]))


def test_macro_f1_by_hand_and_against_scikit_learn() -> None:
    # F1: economy 1, standard 0, premium 2*1/(2+2) = 0.5 -> mean 0.5
    assert m.macro_f1(LABELS, CHOSEN) == pytest.approx(0.5)
    sklearn_metrics = pytest.importorskip("sklearn.metrics")
    rng = np.random.default_rng(0)
    labels, chosen = rng.integers(0, 3, 200), rng.integers(0, 2, 200)
    assert m.macro_f1(labels, chosen) == pytest.approx(
        sklearn_metrics.f1_score(labels, chosen, average="macro")
    )


def test_fill_missing_tier_scores_prefers_the_next_more_capable_tier() -> None:
    scores = np.array(
        [[np.nan, 1.0, 0.0], [1.0, np.nan, 0.0], [1.0, 0.0, np.nan], [0.0, np.nan, np.nan]]
    )
    expected = np.array([[1.0, 1.0, 0.0], [1.0, 0.0, 0.0], [1.0, 0.0, 0.0], [0.0, 0.0, 0.0]])
    np.testing.assert_array_equal(m.fill_missing_tier_scores(scores), expected)
    with pytest.raises(ValueError, match="no tier score"):
        m.fill_missing_tier_scores(np.array([[np.nan, np.nan, np.nan]]))
    np.testing.assert_array_equal(
        m.serving_tiers(scores), [[1, 1, 2], [0, 2, 2], [0, 1, 1], [0, 0, 0]]
    )


def test_quality_kept_by_hand() -> None:
    scores = np.array([[1, 1, 1], [0, 1, 1], [0, 0, 1], [1, 1, 0]], dtype=float)
    # realised [1, 1, 0, 0] -> 0.5; always-premium 0.75
    assert m.quality_kept(scores, np.array([0, 1, 0, 2])) == pytest.approx(2 / 3)
    assert m.quality_kept(scores, np.full(4, 2)) == 1.0
    with pytest.raises(ValueError, match="NaN"):
        m.realised_scores(np.array([[np.nan, 1, 1]]), np.array([0]))


def test_request_costs_and_cost_relative_by_hand() -> None:
    prices = np.array([[1, 5], [3, 15], [15, 75]], dtype=float)
    costs = request_costs(np.array([1e6]), np.array([2e6]), prices)
    np.testing.assert_allclose(costs, [[11.0, 33.0, 165.0]])
    costs = request_costs(np.array([1e6, 1e6]), np.array([0.0, 0.0]), prices)
    assert m.cost_relative(costs, np.array([0, 2])) == pytest.approx(16 / 30)
    assert m.cost_relative(costs, np.array([2, 2])) == 1.0
    with pytest.raises(ValueError):
        request_costs(np.array([-1.0]), np.array([0.0]), prices)


def test_expected_calibration_error_binary_and_multiclass_by_hand() -> None:
    # bin [0.1,0.2): mean y 0.5 vs p 0.1 -> 0.4 * 1/2; bin [0.9,1]: 1 vs 0.9 -> 0.1 * 1/2
    p = np.array([0.1, 0.1, 0.9, 0.9])
    y = np.array([0, 1, 1, 1])
    assert m.expected_calibration_error(p, y) == pytest.approx(0.25)
    # top-class confidence 0.6 correct (gap 0.4), 0.7 wrong (gap 0.7)
    probs = np.array([[0.6, 0.3, 0.1], [0.2, 0.7, 0.1]])
    assert m.expected_calibration_error(probs, np.array([0, 0])) == pytest.approx(0.55)
    perfect = np.array([0.0, 0.0, 1.0, 1.0])
    assert m.expected_calibration_error(perfect, np.array([0, 0, 1, 1])) == 0.0


STRONG = np.array([1.0, 1.0, 0.0, 1.0])
WEAK = np.array([0.0, 1.0, 0.0, 0.0])
SCORE = np.array([0.9, 0.1, 0.5, 0.7])


def test_call_performance_curve_by_hand() -> None:
    curve = m.call_performance_curve(STRONG, WEAK, SCORE)
    np.testing.assert_allclose(curve.strong_share, [0, 0.25, 0.5, 0.75, 1])
    np.testing.assert_allclose(curve.performance, [0.25, 0.5, 0.75, 0.75, 0.75])
    np.testing.assert_allclose(curve.pgr, [0, 0.5, 1, 1, 1])


def test_apgr_and_cpt_by_hand() -> None:
    curve = m.call_performance_curve(STRONG, WEAK, SCORE)
    # trapezoids: 0.25*0.25 + 0.25*0.75 + 0.25 + 0.25
    assert m.apgr(curve) == pytest.approx(0.75)
    assert m.cpt(curve, 0.5) == pytest.approx(0.25)
    assert m.cpt(curve, 0.8) == pytest.approx(0.25 + 0.3 * 0.25 / 0.5)
    assert m.cpt(curve, 0.0) == 0.0


def test_ties_move_together_and_a_constant_score_is_the_random_diagonal() -> None:
    curve = m.call_performance_curve(
        np.array([1.0, 0.0, 1.0]), np.zeros(3), np.array([1.0, 1.0, 0.0])
    )
    np.testing.assert_allclose(curve.strong_share, [0, 2 / 3, 1])
    np.testing.assert_allclose(curve.performance, [0, 1 / 3, 2 / 3])
    flat = m.call_performance_curve(STRONG, WEAK, np.zeros(4))
    assert m.apgr(flat) == pytest.approx(0.5)
    assert m.cpt(flat, 0.8) == pytest.approx(0.8)


def test_apgr_and_cpt_match_their_definitions_on_random_data() -> None:
    """PGR at k strong calls = gain of the top-k; APGR = its integral over the share in [0, 1]."""
    rng = np.random.default_rng(1)
    n = 50
    strong, weak = rng.integers(0, 2, n).astype(float), rng.integers(0, 2, n).astype(float)
    score = rng.random(n)  # no ties
    gap = strong.mean() - weak.mean()
    order = np.argsort(-score)
    brute = []
    for k in range(n + 1):
        routed = weak.copy()
        routed[order[:k]] = strong[order[:k]]
        brute.append((routed.mean() - weak.mean()) / gap)
    brute = np.array(brute)
    curve = m.call_performance_curve(strong, weak, score)
    np.testing.assert_allclose(curve.pgr, brute)
    dense = np.linspace(0, 1, 200_001)
    integral = np.mean(np.interp(dense, np.arange(n + 1) / n, brute))
    assert m.apgr(curve) == pytest.approx(integral, abs=1e-4)
    target = 0.8
    reached = dense[np.interp(dense, np.arange(n + 1) / n, brute) >= target][0]
    assert m.cpt(curve, target) == pytest.approx(reached, abs=1e-4)


def test_oracle_ordering_beats_random_on_apgr() -> None:
    rng = np.random.default_rng(2)
    strong, weak = rng.integers(0, 2, 300).astype(float), rng.integers(0, 2, 300).astype(float)
    oracle = m.apgr(m.call_performance_curve(strong, weak, strong - weak))
    random = m.apgr(m.call_performance_curve(strong, weak, rng.random(300)))
    assert oracle > random


def test_zero_gap_gives_nan() -> None:
    curve = m.call_performance_curve(np.ones(3), np.ones(3), np.arange(3.0))
    assert np.isnan(m.apgr(curve))
    assert np.isnan(m.cpt(curve, 0.5))


def test_nondecreasing_convex_hull_drops_points_below_the_chord_and_after_the_peak() -> None:
    costs, quals = m.nondecreasing_convex_hull(np.array([0, 1, 2.0]), np.array([0.5, 0.6, 1.0]))
    np.testing.assert_allclose(costs, [0, 2])
    np.testing.assert_allclose(quals, [0.5, 1.0])
    costs, quals = m.nondecreasing_convex_hull(np.array([2, 0, 1.0]), np.array([0.8, 0.5, 1.0]))
    np.testing.assert_allclose(costs, [0, 1])
    np.testing.assert_allclose(quals, [0.5, 1.0])


def test_aiq_by_hand() -> None:
    # hull (0, .5) - (2, 1): mean height 0.75
    assert m.aiq(np.array([0, 1, 2.0]), np.array([0.5, 0.6, 1.0])) == pytest.approx(0.75)
    # hull (0, .5) - (1, 1) then flat to 2: (0.75 + 1) / 2
    assert m.aiq(np.array([0, 1, 2.0]), np.array([0.5, 1.0, 0.8])) == pytest.approx(0.875)
    # shared range [0, 4]: nothing before cost 1, ramp 1..3 (area 1.5), flat 3..4 (area 1)
    value = m.aiq(np.array([1, 3.0]), np.array([0.5, 1.0]), cost_range=(0.0, 4.0))
    assert value == pytest.approx(2.5 / 4)


def test_aiq_matches_dense_integration_of_the_hull() -> None:
    rng = np.random.default_rng(3)
    costs, quals = rng.random(12), rng.random(12)
    hull_c, hull_q = m.nondecreasing_convex_hull(costs, quals)
    dense = np.linspace(costs.min(), costs.max(), 100_001)
    expected = np.mean(np.interp(dense, hull_c, hull_q))
    assert m.aiq(costs, quals) == pytest.approx(expected, abs=1e-4)
    # every original point lies on or under the hull
    assert np.all(quals <= np.interp(costs, hull_c, hull_q) + 1e-12)


def test_agreement_rate_by_hand() -> None:
    a = np.array([1.0, 0.0, 1.0, 0.6])
    b = np.array([1.0, 1.0, 0.0, 1.0])
    assert m.agreement_rate(a, b) == 0.5


def test_roc_auc_matches_sklearn_with_ties() -> None:
    sklearn_metrics = pytest.importorskip("sklearn.metrics")
    rng = np.random.default_rng(3)
    scores = rng.integers(0, 5, 200).astype(float)
    events = rng.random(200) < 0.3 + 0.1 * scores
    assert m.roc_auc(scores, events) == pytest.approx(sklearn_metrics.roc_auc_score(events, scores))
    assert m.roc_auc(np.array([1.0, 2.0]), np.array([0, 1])) == 1.0
    assert np.isnan(m.roc_auc(np.array([1.0, 2.0]), np.array([1, 1])))
