"""Savings per operating point: hand-checked arithmetic, and the same tiers as the real router."""

from __future__ import annotations

import numpy as np
import pytest

from router_ml_lab.evaluate.baselines import load_learned_router
from router_ml_lab.evaluate.pipeline import load_eval_data, model_contract
from router_ml_lab.evaluate.savings import (
    Savings,
    answer,
    cheapest_within,
    markdown_table,
    savings,
    savings_by_operating_point,
    savings_by_source,
)
from router_ml_lab.quality.evidence import Evidence


def _eval_set() -> Evidence:
    """Four records; tier costs 1/2/10 (record 3 costs double); labels economy..premium."""
    costs = np.array([[1, 2, 10], [1, 2, 10], [1, 2, 10], [2, 4, 20]], dtype=float)
    return Evidence(
        ids=("a", "b", "c", "d"),
        requests=tuple({"messages": [{"role": "user", "content": i}]} for i in "abcd"),
        sources=np.array(["x", "x", "y", "y"], dtype=object),
        categories=np.array(["-"] * 4, dtype=object),
        labels=np.array([0, 0, 1, 2]),
        scores=np.array([[1, 1, 1], [1, 1, 1], [0, 1, 1], [0, 0, 1]], dtype=float),
        realised=np.ones((4, 3), dtype=bool),
        input_tokens=np.ones(4),
        output_tokens=np.ones(4),
        costs=costs,
        outcomes=({},) * 4,
    )


def test_savings_are_the_bill_and_outcomes_of_the_chosen_tiers() -> None:
    row = savings(_eval_set(), np.array([0, 2, 0, 2]), "p")
    assert row.n == 4 and row.tier_shares == {"economy": 0.5, "standard": 0.0, "premium": 0.5}
    assert row.cost_vs_premium == pytest.approx((1 + 10 + 1 + 20) / 50)
    assert row.usd_per_1k == pytest.approx(32 / 4 * 1000)
    assert row.premium_usd_per_1k == pytest.approx(50 / 4 * 1000)
    assert row.saved_share == pytest.approx(1 - 32 / 50)
    assert row.saved_usd_per_1k == pytest.approx((50 - 32) / 4 * 1000)
    assert row.quality_kept == pytest.approx(3 / 4)  # record c needed standard, got economy
    assert row.under_routing == pytest.approx(1 / 4)
    with pytest.raises(ValueError, match="shape"):
        savings(_eval_set(), np.array([0, 1]))


def test_savings_by_source_splits_the_same_choices() -> None:
    per_source = savings_by_source(_eval_set(), np.array([0, 2, 0, 2]))
    assert list(per_source) == ["x", "y"]
    assert per_source["x"].under_routing == 0.0 and per_source["y"].under_routing == 0.5


def _row(name: str, cost: float, under: float, quality: float, default: bool = False) -> Savings:
    shares = {"economy": 1 - cost, "standard": 0.0, "premium": cost}
    return Savings(name, default, 2000, shares, cost, 10 * cost, 10.0, quality, under)


def test_the_cheapest_point_within_both_limits_is_chosen_and_explained() -> None:
    rows = [
        _row("careful", 0.8, 0.01, 1.0),
        _row("middle", 0.5, 0.04, 0.995, default=True),
        _row("cheap", 0.2, 0.12, 0.97),
    ]
    best = cheapest_within(rows, max_under_routing=0.05, min_quality_kept=0.99)
    assert best is rows[1]
    assert cheapest_within(rows, 0.05, 0.999) is rows[0]
    assert cheapest_within(rows, 0.001, 0.9) is None
    text = answer(rows, best, 0.05, 0.99)
    assert "`middle`" in text and "50%" in text and "model's default" in text
    assert "Only" not in text  # 2,000 records is not a small sample
    fallback = answer(rows, None, 0.001, 0.9)
    assert (
        fallback.startswith("No operating point is within your limits") and "`careful`" in fallback
    )
    table = markdown_table(rows, 0.05, 0.99)
    assert table.count("\n") == len(rows) + 1 and "`middle` (default)" in table
    assert table.splitlines()[-1].endswith("| **no** |")


def test_each_operating_point_routes_like_the_router_loaded_at_it(
    tiny_model, fixture_traffic
) -> None:
    traffic, catalog = fixture_traffic
    eval_set = load_eval_data(
        [str(traffic)], str(catalog), model_contract(str(tiny_model))
    ).eval_set
    rows = savings_by_operating_point(eval_set, tiny_model)
    targets = [float(r.operating_point.removeprefix("under_routing_")) for r in rows]
    assert targets == sorted(targets) and sum(r.default for r in rows) == 1
    for row in rows:
        router = load_learned_router(tiny_model, operating_point=row.operating_point)
        expected = savings(eval_set, router.route_batch(list(eval_set.requests)))
        assert row.cost_vs_premium == pytest.approx(expected.cost_vs_premium)
        assert row.under_routing == pytest.approx(expected.under_routing)
        assert row.tier_shares == pytest.approx(expected.tier_shares)
