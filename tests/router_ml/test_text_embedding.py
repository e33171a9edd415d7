"""The runtime token-embedding table: lookup, mean pooling, file round trip, schema wiring."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from router_ml.features import FEATURE_NAMES, FeatureExtractor
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
