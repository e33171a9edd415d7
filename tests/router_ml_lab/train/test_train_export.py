"""ONNX export: one input, one `probabilities` output, parity with LightGBM or failure."""

from __future__ import annotations

import numpy as np
import pytest
from lightgbm import LGBMClassifier

from router_ml_lab.train.export import ExportError, check_parity, onnx_probabilities, to_onnx


@pytest.fixture(scope="module")
def fitted() -> tuple[LGBMClassifier, np.ndarray]:
    rng = np.random.default_rng(0)
    x = rng.normal(size=(600, 6)).astype(np.float32)
    y = np.digitize(x[:, 0] + 0.5 * x[:, 1] + rng.normal(scale=0.3, size=600), [-0.5, 0.7])
    model = LGBMClassifier(n_estimators=20, num_leaves=7, verbose=-1, n_jobs=1).fit(x, y)
    return model, x


def test_graph_has_the_runtime_signature(fitted: tuple[LGBMClassifier, np.ndarray]) -> None:
    model, x = fitted
    graph = to_onnx(model, x.shape[1], target_opset=15)
    assert [i.name for i in graph.graph.input] == ["features"]
    assert [o.name for o in graph.graph.output] == ["probabilities"]
    probabilities = onnx_probabilities(graph, x[:5])
    assert probabilities.shape == (5, 3) and probabilities.dtype == np.float32


def test_parity_is_checked(fitted: tuple[LGBMClassifier, np.ndarray]) -> None:
    model, x = fitted
    graph = to_onnx(model, x.shape[1], target_opset=15)
    assert check_parity(model, graph, x, tolerance=1e-5) <= 1e-5
    with pytest.raises(ExportError, match="differs from LightGBM"):
        check_parity(model, graph, x, tolerance=-1.0)  # no graph can meet a negative bound
    other = LGBMClassifier(n_estimators=5, num_leaves=3, verbose=-1, n_jobs=1).fit(
        x, np.roll(model.predict(x), 7)
    )
    with pytest.raises(ExportError):
        check_parity(other, graph, x, tolerance=1e-5)  # a graph of another model fails
