"""The runtime token-embedding table: lookup, mean pooling, file round trip, schema wiring."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from router_ml.features import FEATURE_NAMES, FeatureExtractor
from router_ml.task_kinds import TASK_KINDS
from router_ml.text_embedding import N_DIMS, TextEmbedding


def _table() -> TextEmbedding:
    ids = np.array([3, 10, 42])
    vectors = np.zeros((3, N_DIMS))
    vectors[:, 0] = [1.0, 2.0, 4.0]
    return TextEmbedding(ids, vectors)


def test_pool_means_known_ids_and_skips_unknown_ones() -> None:
    table = _table()
    assert table.pool([3, 42])[0] == pytest.approx(2.5)
    assert table.pool([3, 7, 10**6])[0] == pytest.approx(1.0)  # 7 and 10**6 are not in it
    assert table.pool([]) == [0.0] * N_DIMS and table.pool([5]) == [0.0] * N_DIMS


def test_round_trip_and_validation(tmp_path: Path) -> None:
    digest = _table().save(tmp_path)
    assert len(digest) == 64
    again = TextEmbedding.load(tmp_path / "text_embedding.npz")
    assert again.pool([10]) == _table().pool([10])
    with pytest.raises(ValueError, match="strictly increasing"):
        TextEmbedding(np.array([2, 1]), np.zeros((2, N_DIMS)))
    with pytest.raises(ValueError, match="vectors"):
        TextEmbedding(np.array([1]), np.zeros((1, 3)))


def test_extractor_fills_the_text_embedding_features_only_with_a_table() -> None:
    request = {"messages": [{"role": "user", "content": "Summarize this paragraph for me."}]}
    start = FEATURE_NAMES.index("text_emb_0")
    plain = FeatureExtractor().extract(request)
    assert not plain[start : start + N_DIMS].any()
    counter_ids = FeatureExtractor()._counter.encode("Summarize this paragraph for me.")
    table = TextEmbedding(
        np.array(sorted(set(counter_ids))), np.ones((len(set(counter_ids)), N_DIMS))
    )
    embedded = FeatureExtractor(embedding=table).extract(request)
    assert np.allclose(embedded[start : start + N_DIMS], 1.0)
    # Everything else is identical: the shared tokenisation gives the same token counts.
    others = [i for i in range(len(FEATURE_NAMES)) if not start <= i < start + N_DIMS]
    assert np.array_equal(plain[others], embedded[others])


def test_negative_embedding_components_are_kept() -> None:
    text = "Negative components survive the feature clip."
    ids = sorted(set(FeatureExtractor()._counter.encode(text)))
    table = TextEmbedding(np.array(ids), -np.ones((len(ids), N_DIMS)))
    row = FeatureExtractor(embedding=table).extract(
        {"messages": [{"role": "user", "content": text}]}
    )
    start = FEATURE_NAMES.index("text_emb_0")
    assert np.allclose(row[start : start + N_DIMS], -1.0)


def _kind_table() -> TextEmbedding:
    ids = np.array([3, 10, 42])
    weights = np.zeros((3, len(TASK_KINDS)))
    weights[0, TASK_KINDS.index("summarization")] = 4.0
    weights[1, TASK_KINDS.index("code_generation")] = 4.0
    return TextEmbedding(ids, np.zeros((3, N_DIMS)), weights, np.zeros(len(TASK_KINDS)))


def test_kind_probabilities_are_the_softmax_of_the_mean_token_scores() -> None:
    table = _kind_table()
    probabilities = np.array(table.kind_probabilities([3, 3, 10, 999]))  # 999: unknown, skipped
    logits = np.zeros(len(TASK_KINDS))
    logits[TASK_KINDS.index("summarization")] = 8.0 / 3
    logits[TASK_KINDS.index("code_generation")] = 4.0 / 3
    expected = np.exp(logits) / np.exp(logits).sum()
    np.testing.assert_allclose(probabilities, expected, rtol=1e-3)
    assert table.kind_probabilities([999]) == [0.0] * len(TASK_KINDS)
    assert _table().kind_probabilities([3]) == [0.0] * len(TASK_KINDS)  # no reader


def test_the_reader_weighs_the_edges_above_the_middle() -> None:
    from router_ml.text_embedding import (
        KIND_EDGE_TOKENS,
        KIND_MIDDLE_WEIGHT,
        kind_position_weights,
    )

    assert kind_position_weights(2 * KIND_EDGE_TOKENS).tolist() == [1.0] * (2 * KIND_EDGE_TOKENS)
    weights = kind_position_weights(150)
    assert weights[:KIND_EDGE_TOKENS].tolist() == [1.0] * KIND_EDGE_TOKENS
    assert weights[-KIND_EDGE_TOKENS:].tolist() == [1.0] * KIND_EDGE_TOKENS
    assert set(weights[KIND_EDGE_TOKENS:-KIND_EDGE_TOKENS].tolist()) == {KIND_MIDDLE_WEIGHT}
    # One code token at the start outweighs the same count of summary tokens in the middle.
    table = _kind_table()
    ids = [10] + [3] * 20 + [42] * 99
    summary_first = [42] * 40 + [3] + [42] * 79
    code = TASK_KINDS.index("code_generation")
    summary = TASK_KINDS.index("summarization")
    assert table.kind_probabilities(ids)[summary] > table.kind_probabilities(summary_first)[summary]
    assert (
        table.kind_probabilities([10] + [42] * 119)[code]
        > table.kind_probabilities([42] * 40 + [10] + [42] * 79)[code]
    )


def test_kind_reader_round_trips_and_is_validated(tmp_path: Path) -> None:
    _kind_table().save(tmp_path)
    again = TextEmbedding.load(tmp_path / "text_embedding.npz")
    assert again.reads_kinds and again.kind_probabilities([10]) == pytest.approx(
        _kind_table().kind_probabilities([10]), abs=1e-3
    )
    with pytest.raises(ValueError, match="both"):
        TextEmbedding(np.array([1]), np.zeros((1, N_DIMS)), np.zeros((1, len(TASK_KINDS))))
    with pytest.raises(ValueError, match="kind_weights must be"):
        TextEmbedding(np.array([1]), np.zeros((1, N_DIMS)), np.zeros((1, 2)), np.zeros(2))
    with pytest.raises(ValueError, match="finite"):
        TextEmbedding(
            np.array([1]),
            np.zeros((1, N_DIMS)),
            np.full((1, len(TASK_KINDS)), np.nan),
            np.zeros(len(TASK_KINDS)),
        )


def test_read_gathers_what_pool_and_kind_probabilities_give() -> None:
    from router_ml.text_embedding import kind_token_ids

    rng = np.random.default_rng(1)
    ids = np.arange(0, 400, 2)
    table = TextEmbedding(
        ids,
        rng.normal(size=(ids.size, N_DIMS)),
        rng.normal(size=(ids.size, len(TASK_KINDS))),
        rng.normal(size=len(TASK_KINDS)),
    )
    for n in (0, 5, 150, 192, 193, 300):
        head = rng.integers(0, 420, size=n).tolist()  # odd ids and ids past 400 are unknown
        for tail in (None, rng.integers(0, 420, size=80).tolist()):
            vector, kinds = table.read(head, tail)
            np.testing.assert_allclose(vector, table.pool(head), atol=1e-5)
            expected = table.kind_probabilities(kind_token_ids(head, tail))
            np.testing.assert_allclose(kinds, expected, atol=1e-5)
    assert _table().read([3], None) == (_table().pool([3]), None)


def _word_table(words: dict[str, str]) -> tuple[FeatureExtractor, dict[str, int]]:
    """An extractor whose reader scores each word's o200k ids for the given kind only."""
    counter = FeatureExtractor()._counter
    owner: dict[int, str] = {}
    for word, kind in words.items():
        for token in counter.encode(word):
            owner[token] = kind
    ids = np.array(sorted(owner))
    weights = np.zeros((ids.size, len(TASK_KINDS)))
    for row, token in enumerate(ids.tolist()):
        weights[row, TASK_KINDS.index(owner[token])] = 6.0
    table = TextEmbedding(ids, np.zeros((ids.size, N_DIMS)), weights, np.zeros(len(TASK_KINDS)))
    return FeatureExtractor(embedding=table), {k: TASK_KINDS.index(k) for k in words.values()}


def test_the_thread_reading_joins_the_recent_user_turns_and_kinds_read_the_last_one() -> None:
    from router_ml.features import THREAD_KIND_FEATURES, THREAD_TURNS

    extractor, index = _word_table({" triangle": "hard_reasoning", " capital": "lookup"})
    kind_start = FEATURE_NAMES.index("kind_classification")
    thread_start = FEATURE_NAMES.index(THREAD_KIND_FEATURES[0])
    n = len(TASK_KINDS)
    single = extractor.extract({"messages": [{"role": "user", "content": "the capital"}]})
    assert single[kind_start + index["lookup"]] > 0.5
    assert not single[thread_start : thread_start + n].any()  # no earlier turn
    follow_up = {
        "messages": [
            {"role": "user", "content": "a triangle triangle"},
            {"role": "assistant", "content": "the capital capital capital"},  # not read
            {"role": "user", "content": "the capital"},
        ]
    }
    row = extractor.extract(follow_up)
    np.testing.assert_array_equal(
        row[kind_start : kind_start + n], single[kind_start : kind_start + n]
    )
    assert row[thread_start + index["hard_reasoning"]] > 0.5
    # Only the THREAD_TURNS most recent earlier user turns count.
    old = [{"role": "user", "content": "a triangle"}, {"role": "assistant", "content": "ok"}]
    recent = [{"role": "user", "content": "the capital"}, {"role": "assistant", "content": "ok"}]
    far = {"messages": [*old, *recent * THREAD_TURNS, {"role": "user", "content": "hi"}]}
    thread = extractor.extract(far)[thread_start : thread_start + n]
    assert thread[index["lookup"]] > 0.5 and thread[index["hard_reasoning"]] < 0.01
