"""Cascade cost on labeled records: one call when the cheap answer is good, two when not."""

from __future__ import annotations

import numpy as np
import pytest

from router_ml_lab.evaluate.cascade import cascade_markdown, cascade_outcome, cascade_report

# Three records: economy is enough, standard is needed, premium is needed.
LABELS = np.array([0, 1, 2])
COSTS = np.array([[1.0, 3.0, 15.0]] * 3)
SCORES = np.array([[1.0, 1.0, 1.0], [0.0, 1.0, 1.0], [0.0, 0.0, 1.0]])


def test_a_perfect_gate_pays_one_call_for_good_cheap_answers_and_two_for_bad() -> None:
    result = cascade_outcome(LABELS, COSTS, SCORES, ["economy", "premium"])
    # economy alone (1), economy + premium twice (16 + 16), over premium for all (45).
    assert result["cost_relative"] == pytest.approx(33 / 45)
    assert result["quality_kept"] == pytest.approx(1.0)
    assert result["under_routing"] == 0.0
    assert result["calls_per_request"] == pytest.approx(5 / 3)
    assert result["served_shares"] == pytest.approx(
        {"economy": 1 / 3, "standard": 0.0, "premium": 2 / 3}
    )


def test_a_three_step_cascade_stops_at_the_first_good_tier() -> None:
    result = cascade_outcome(LABELS, COSTS, SCORES, ["economy", "standard", "premium"])
    assert result["cost_relative"] == pytest.approx((1 + 4 + 19) / 45)
    assert result["calls_per_request"] == pytest.approx((1 + 2 + 3) / 3)
    assert result["under_routing"] == 0.0


def test_missed_bad_answers_are_served_and_counted_as_under_routing() -> None:
    blind = cascade_outcome(LABELS, COSTS, SCORES, ["economy", "premium"], gate_recall=0.0)
    assert blind["cost_relative"] == pytest.approx(3 / 45)  # economy only
    assert blind["under_routing"] == pytest.approx(2 / 3)
    assert blind["quality_kept"] == pytest.approx(1 / 3)
    half = cascade_outcome(LABELS, COSTS, SCORES, ["economy", "premium"], gate_recall=0.5)
    assert half["under_routing"] == pytest.approx(1 / 3)
    assert half["cost_relative"] == pytest.approx((3 + 15) / 45)
    # A cascade that ends below the label under-routes even with a perfect gate.
    short = cascade_outcome(LABELS, COSTS, SCORES, ["economy", "standard"])
    assert short["under_routing"] == pytest.approx(1 / 3)


def test_a_tier_the_record_has_no_model_for_is_not_called_twice() -> None:
    # No standard model: the standard step is served by premium, which is then not called again.
    scores = np.array([[0.0, np.nan, 1.0]])
    costs = np.array([[1.0, 3.0, 15.0]])
    result = cascade_outcome(np.array([2]), costs, scores, ["economy", "standard", "premium"])
    assert result["cost_relative"] == pytest.approx(16 / 15)
    assert result["calls_per_request"] == pytest.approx(2.0)
    assert result["under_routing"] == 0.0


def test_bad_arguments_are_refused_and_the_report_renders() -> None:
    with pytest.raises(ValueError):
        cascade_outcome(LABELS, COSTS, SCORES, ["premium", "economy"])
    with pytest.raises(ValueError):
        cascade_outcome(LABELS, COSTS, SCORES, ["economy", "premium"], gate_recall=1.5)
    rows = cascade_report(LABELS, COSTS, SCORES)
    assert len(rows) == 6
    text = "\n".join(cascade_markdown(rows))
    assert "economy → premium | 1.00 | 73.3%" in text
