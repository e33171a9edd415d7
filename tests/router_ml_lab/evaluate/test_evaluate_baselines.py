"""Baselines: the documented rules, reproducibility, and the shared interface."""

from __future__ import annotations

import numpy as np
import pytest

from router_ml.errors import InvalidRequest
from router_ml.tiers import TIERS
from router_ml_lab.evaluate.baselines import (
    AlwaysTier,
    LengthHeuristic,
    Oracle,
    RandomAtShares,
    load_learned_router,
)


def _req(text: str, max_tokens: int | None = None) -> dict:
    body: dict = {"messages": [{"role": "user", "content": text}]}
    if max_tokens is not None:
        body["max_tokens"] = max_tokens
    return body


def test_always_tier_routes_everything_to_its_tier_and_validates() -> None:
    router = AlwaysTier("premium")
    assert router.route(_req("hi")) == "premium"
    np.testing.assert_array_equal(router.route_batch([_req("a"), _req("b")]), [2, 2])
    with pytest.raises(InvalidRequest):
        router.route({"messages": []})
    with pytest.raises(ValueError):
        AlwaysTier("gold")


def test_length_heuristic_cut_offs_by_hand() -> None:
    router = LengthHeuristic()
    assert router.route(_req("x" * 499)) == "economy"
    assert router.route(_req("x" * 400, max_tokens=100)) == "standard"  # 500 is not < 500
    assert router.route(_req("x" * 4999)) == "standard"
    assert router.route(_req("x" * 4000, max_tokens=1000)) == "premium"
    two_turns = {
        "messages": [
            {"role": "system", "content": "s" * 300},
            {"role": "user", "content": "u" * 300},
        ]
    }
    assert LengthHeuristic.size(two_turns) == 600
    requests = [_req("x" * n) for n in (10, 1000, 10_000)]
    np.testing.assert_array_equal(router.route_batch(requests), [0, 1, 2])
    sweep = router.sweep(requests)
    assert sweep.shape[1] == 3
    assert (sweep[0] == 2).all() and (sweep[-1] == 0).all()  # tiny cut-offs, then huge ones


def test_random_at_shares_is_seeded_and_matches_its_shares() -> None:
    requests = [_req(f"q{i}") for i in range(4000)]
    router = RandomAtShares([0.5, 0.3, 0.2], seed=3)
    first, second = router.route_batch(requests), router.route_batch(requests)
    np.testing.assert_array_equal(first, second)
    np.testing.assert_allclose(np.bincount(first) / first.size, [0.5, 0.3, 0.2], atol=0.03)
    assert router.route(_req("q")) in TIERS
    with pytest.raises(ValueError):
        RandomAtShares([0.5, 0.5, 0.5])


def test_oracle_returns_labels_and_escalates_on_conflicting_duplicates() -> None:
    requests = [_req("a"), _req("b"), _req("a")]
    oracle = Oracle(requests, [0, 1, 2])
    np.testing.assert_array_equal(oracle.route_batch([_req("b"), _req("a")]), [1, 2])
    with pytest.raises(KeyError):
        oracle.route_batch([_req("unseen")])


def test_learned_router_batch_equals_per_request_and_sweep_spans_the_tiers(tiny_model) -> None:
    router = load_learned_router(tiny_model)
    requests = [
        _req("What is the capital of France?"),
        _req("Prove theorem 3 step by step, justify each lemma. $\\sum x$ " * 5),
    ]
    batch = router.route_batch(requests)
    assert [TIERS[i] for i in batch] == [router.route(r) for r in requests]
    sweep = router.sweep(requests)
    assert sweep.shape == (21 * 21, 2)
    assert (sweep[0] == 2).all()  # thresholds 0: no risk is below, everything escalates
    assert router.escalation_scores(requests).shape == (2,)
