"""The one evidence set: labels, scores, token counts and costs line up per record."""

from __future__ import annotations

import numpy as np
import pytest

from router_ml.tokenizer import TokenCounter
from router_ml_lab.quality.data import TrafficRecord
from router_ml_lab.quality.evidence import (
    build_evidence,
    count_input_tokens,
    noise_reference,
    output_tokens_of,
)

PRICES = {"economy": (1.0, 5.0), "standard": (3.0, 15.0), "premium": (15.0, 75.0)}
OUTPUT_TOKENS = 256


class _Representatives:
    """Stand-in for TierRepresentatives: scores from the record, label from a fixed map."""

    def __init__(self, labels: dict[str, int | None]) -> None:
        self.labels = labels

    def tier_scores(self, record: TrafficRecord) -> dict[str, float]:
        return {t: s for t, s in record.outcomes.items() if t in PRICES}

    def label(self, record: TrafficRecord) -> int | None:
        return self.labels[record.id]


def _record(rid: str, text: str, outcomes: dict[str, float], **request) -> TrafficRecord:
    body = {"messages": [{"role": "user", "content": text}], **request}
    return TrafficRecord(rid, "src", "cat", body, outcomes)


def test_token_counts_cover_messages_and_tool_schemas() -> None:
    counter = TokenCounter()
    tool = {"type": "function", "function": {"name": "f", "parameters": {"type": "object"}}}
    plain = {"messages": [{"role": "user", "content": "hello world"}]}
    with_tool = {**plain, "tools": [tool]}
    assert count_input_tokens(plain, counter) == counter.count("hello world")
    assert count_input_tokens(with_tool, counter) > count_input_tokens(plain, counter)
    assert output_tokens_of(plain, OUTPUT_TOKENS) == OUTPUT_TOKENS
    assert output_tokens_of({**plain, "max_tokens": 7}, OUTPUT_TOKENS) == 7


def test_evidence_drops_unlabeled_records_and_prices_each_tier() -> None:
    records = [
        _record("a", "hello world", {"economy": 1.0, "premium": 1.0}, max_tokens=1000),
        _record("b", "skip me", {"economy": 1.0}),
        _record("c", "x", {"economy": 0.0, "standard": 1.0, "premium": 1.0}),
    ]
    eval_set = build_evidence(
        records, _Representatives({"a": 0, "b": None, "c": 1}), PRICES, OUTPUT_TOKENS
    )
    assert eval_set.ids == ("a", "c")
    np.testing.assert_array_equal(eval_set.labels, [0, 1])
    assert np.isnan(eval_set.scores[0, 1])
    np.testing.assert_array_equal(eval_set.filled_scores[0], [1.0, 1.0, 1.0])
    tokens = TokenCounter().count("hello world")
    expected = (tokens * np.array([1.0, 3.0, 15.0]) + 1000 * np.array([5.0, 15.0, 75.0])) / 1e6
    np.testing.assert_allclose(eval_set.costs[0], expected)
    # record a has no standard model: standard is served (and paid) as premium
    np.testing.assert_allclose(eval_set.serving_costs[0], expected[[0, 2, 2]])
    assert eval_set.realised[0].tolist() == [True, False, True]
    only_c = eval_set.subset(np.array([False, True]))
    assert only_c.ids == ("c",) and only_c.costs.shape == (1, 3)
    with pytest.raises(ValueError):
        eval_set.subset(np.array([True]))


def test_noise_reference_compares_snapshot_pairs_per_source() -> None:
    records = [
        _record(
            str(i),
            "q",
            {"economy": 1.0, "premium": 1.0, "gpt-4o-2024-05-13": a, "gpt-4o-2024-08-06": b},
        )
        for i, (a, b) in enumerate([(1.0, 1.0), (0.0, 1.0), (0.0, 0.0), (1.0, 1.0)])
    ]
    eval_set = build_evidence(
        records, _Representatives({str(i): 0 for i in range(4)}), PRICES, OUTPUT_TOKENS
    )
    (row,) = noise_reference(eval_set)
    assert row["n"] == 4 and row["agreement"] == 0.75


def test_traffic_summary_rows_by_hand() -> None:
    from router_ml_lab.evaluate.traffic import markdown_table, traffic_summary

    records = [
        _record("a", "short", {"economy": 1.0, "premium": 1.0}),
        _record("b", "a much longer prompt " * 20, {"economy": 0.0, "premium": 1.0}),
    ]
    eval_set = build_evidence(records, _Representatives({"a": 0, "b": 2}), PRICES, OUTPUT_TOKENS)
    rows = traffic_summary(eval_set)
    assert [r["source"] for r in rows] == ["src", "pooled"]
    pooled = rows[-1]
    assert pooled["records"] == 2 and pooled["premium_spend_share"] == 1.0
    assert pooled["label_economy"] == 0.5 and pooled["label_premium"] == 0.5
    costs = eval_set.costs
    assert pooled["oracle_cost_relative"] == pytest.approx(
        (costs[0, 0] + costs[1, 2]) / costs[:, 2].sum()
    )
    assert "| pooled | 2 |" in markdown_table(rows)


def test_direct_tier_labels_without_outcomes_are_scored_by_their_tier() -> None:
    """`router-ml eval --data my-traffic.jsonl` on records labeled only with `tier`."""
    from router_ml_lab.quality.labels import TierRepresentatives
    from router_ml_lab.quality.metrics import fill_missing_tier_scores

    body = {"messages": [{"role": "user", "content": "hi"}]}
    records = [
        TrafficRecord("a", "mine", "", body, {}, "standard"),
        TrafficRecord("b", "mine", "", body, {}, "economy"),
    ]
    eval_set = build_evidence(records, TierRepresentatives.from_deployed({}), PRICES, OUTPUT_TOKENS)
    assert eval_set.labels.tolist() == [1, 0]
    assert eval_set.scores.tolist() == [[0.0, 1.0, 1.0], [1.0, 1.0, 1.0]]
    assert fill_missing_tier_scores(eval_set.scores).shape == (2, 3)  # no "no tier score" error


def test_a_direct_tier_label_scores_its_tier_and_above_but_is_not_a_realised_outcome() -> None:
    body = {"messages": [{"role": "user", "content": "x"}]}
    direct = TrafficRecord("d", "own", "cat", body, {}, tier="standard")
    evidence = build_evidence([direct], _Representatives({"d": 1}), PRICES, OUTPUT_TOKENS)
    assert evidence.scores.tolist() == [[0.0, 1.0, 1.0]]
    assert not evidence.realised.any()  # kept out of APGR, which needs two real answers
    assert evidence.serving_costs.shape == (1, 3)
