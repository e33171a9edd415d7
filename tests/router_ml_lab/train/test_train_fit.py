"""Sample weights and the LightGBM fit."""

from __future__ import annotations

import numpy as np
import pytest

from router_ml_lab.train.config import load_config
from router_ml_lab.train.fit import fit_classifier, sample_weights

CLASS_WEIGHT = {"economy": 1.0, "standard": 2.0, "premium": 3.0}


def test_weights_favour_higher_tiers_and_balance_sources() -> None:
    labels = np.array([0, 0, 0, 1, 2, 0])
    sources = ["big", "big", "big", "big", "big", "small"]
    plain = sample_weights(labels, sources, CLASS_WEIGHT, balance_sources=False)
    assert plain[4] == pytest.approx(3 * plain[0]) and plain.mean() == pytest.approx(1.0)
    balanced = sample_weights(labels, sources, CLASS_WEIGHT, balance_sources=True)
    assert balanced[5] == pytest.approx(5 * balanced[0])  # one small record weighs as five big
    with pytest.raises(ValueError, match="class_weight"):
        sample_weights(labels, sources, {"economy": 1.0}, balance_sources=False)


def test_fit_is_deterministic_and_needs_every_tier() -> None:
    rng = np.random.default_rng(0)
    x = rng.normal(size=(300, 4)).astype(np.float32)
    y = np.digitize(x[:, 0], [-0.5, 0.5])
    params = {**load_config()["model"], "n_estimators": 10}
    a = fit_classifier(x, y, np.ones(300), params, seed=1).predict_proba(x)
    b = fit_classifier(x, y, np.ones(300), params, seed=1).predict_proba(x)
    assert np.array_equal(a, b) and a.shape == (300, 3)
    assert np.mean(a.argmax(axis=1) == y) > 0.8
    with pytest.raises(ValueError, match="lack tier"):
        fit_classifier(x, np.minimum(y, 1), np.ones(300), params, seed=1)
