"""Test-split metrics: baselines to read them against, and the evidence they are computed from."""

from __future__ import annotations

import numpy as np
import pytest

from router_ml_lab.quality.data import TrafficRecord
from router_ml_lab.quality.labels import TierRepresentatives
from router_ml_lab.train.assess import Evidence, assess, gather_evidence, random_baselines


def test_random_baselines_at_the_same_under_routing() -> None:
    labels = np.array([0] * 80 + [1] * 10 + [2] * 10)
    baselines = random_baselines(labels, under_routing=0.05)
    # economy/premium mix: q * P(label > economy) = 0.05 -> q = 0.25
    assert baselines["random_economy_share"] == pytest.approx(0.25)
    # standard first: q * P(label > standard) = 0.05 -> q = 0.5 of traffic below premium
    assert baselines["random_below_premium_share"] == pytest.approx(0.5)
    assert random_baselines(np.zeros(5, dtype=int), 0.0)["random_economy_share"] == 1.0


def test_evidence_fills_missing_tiers_by_escalation_and_prices_requests() -> None:
    reps = TierRepresentatives({"s": {"economy": ("e",), "premium": ("p",)}}, {"s": 0.0})
    records = [
        TrafficRecord("1", "s", "", {}, {"e": 0.0, "p": 1.0}),
        TrafficRecord("2", "s", "", {}, {}, tier="standard"),
    ]
    features = np.zeros((2, 60), dtype=np.float32)
    features[:, 11] = 1000  # tokens_total
    evidence = gather_evidence(
        records,
        np.array([2, 1]),
        features,
        reps,
        {"economy": (1, 1), "standard": (3, 3), "premium": (15, 15)},
        0,
    )
    assert evidence.scores.tolist() == [[0, 1, 1], [0, 1, 1]]  # standard filled from premium
    # ...and paid at premium's price: routing to a tier without evidence earns no discount.
    assert evidence.costs[0].tolist() == pytest.approx([0.001, 0.015, 0.015])
    assert evidence.costs[1].tolist() == pytest.approx([0.001, 0.003, 0.015])


def test_assess_reports_pooled_and_per_source() -> None:
    rng = np.random.default_rng(0)
    n = 400
    labels = rng.choice(3, size=n, p=[0.7, 0.15, 0.15])
    risks = np.column_stack(
        [(labels > 0) * 0.6 + rng.random(n) * 0.4, (labels > 1) * 0.6 + rng.random(n) * 0.3]
    )
    risks[:, 1] = np.minimum(risks[:, 1], risks[:, 0])
    scores = (np.arange(3)[None, :] >= labels[:, None]).astype(float)
    evidence = Evidence(
        labels, np.array(["a", "b"] * (n // 2)), scores, np.tile([1.0, 3.0, 15.0], (n, 1))
    )
    result = assess(evidence, risks, (0.5, 0.5))
    pooled = result["pooled"]
    assert set(result["per_source"]) == {"a", "b"}
    assert pooled["accuracy"] > pooled["majority_accuracy"]
    assert pooled["apgr"] > 0.8 and pooled["under_routing"] == 0.0  # perfect ranking: 1 - 0.3/2
    assert pooled["quality_kept"] == pytest.approx(1.0)
