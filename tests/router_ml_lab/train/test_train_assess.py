"""Test-split metrics: baselines to read them against, and the evidence they are computed from."""

from __future__ import annotations

import numpy as np
import pytest

from router_ml_lab.quality.evidence import Evidence
from router_ml_lab.train.assess import assess, random_baselines


def test_random_baselines_at_the_same_under_routing() -> None:
    labels = np.array([0] * 80 + [1] * 10 + [2] * 10)
    baselines = random_baselines(labels, under_routing=0.05)
    # economy/premium mix: q * P(label > economy) = 0.05 -> q = 0.25
    assert baselines["random_economy_share"] == pytest.approx(0.25)
    # standard first: q * P(label > standard) = 0.05 -> q = 0.5 of traffic below premium
    assert baselines["random_below_premium_share"] == pytest.approx(0.5)
    assert random_baselines(np.zeros(5, dtype=int), 0.0)["random_economy_share"] == 1.0


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
        ids=tuple(str(i) for i in range(n)),
        requests=tuple({} for _ in range(n)),
        sources=np.array(["a", "b"] * (n // 2)),
        categories=np.array(["c"] * n),
        labels=labels,
        scores=scores,
        realised=np.ones((n, 3), dtype=bool),
        input_tokens=np.full(n, 1000.0),
        output_tokens=np.zeros(n),
        costs=np.tile([1.0, 3.0, 15.0], (n, 1)) / 1000,
        outcomes=tuple({} for _ in range(n)),
    )
    result = assess(evidence, risks, (0.5, 0.5))
    pooled = result["pooled"]
    assert set(result["per_source"]) == {"a", "b"}
    assert pooled["accuracy"] > pooled["majority_accuracy"]
    assert pooled["apgr"] > 0.8 and pooled["under_routing"] == 0.0  # perfect ranking: 1 - 0.3/2
    assert pooled["quality_kept"] == pytest.approx(1.0)
