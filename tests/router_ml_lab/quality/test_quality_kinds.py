"""Traffic kinds come from the request's shape."""

from __future__ import annotations

from router_ml.features import FeatureExtractor
from router_ml_lab.quality.kinds import traffic_kinds


def test_kinds_from_shape_and_source() -> None:
    tool = {"type": "function", "function": {"name": "f", "parameters": {"type": "object"}}}
    requests = [
        {"messages": [{"role": "user", "content": "2+2?"}]},
        {"messages": [{"role": "user", "content": "2+2?"}], "tools": [tool]},
        {"messages": [{"role": "user", "content": "word " * 3000}]},
        {"messages": [{"role": "user", "content": "Write a poem"}]},
        {
            "messages": [
                {"role": "user", "content": "hi"},
                {"role": "assistant", "content": "hello"},
                {"role": "user", "content": "shorter"},
            ]
        },
    ]
    features = FeatureExtractor().extract_many(requests)
    sources = ["mmlu", "bfcl", "mmlu", "arena_bench", "mine"]
    assert traffic_kinds(sources, features).tolist() == [
        "benchmark-shaped",
        "agent/tool",
        "long-document",
        "open-ended chat",
        "open-ended chat",
    ]
