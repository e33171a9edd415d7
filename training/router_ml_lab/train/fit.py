"""Fit the tier classifier: a small multiclass LightGBM, weighted toward escalation.

Why multiclass and not ordinal heads: the label is the cheapest adequate tier, a 3-class target,
and most sources have only two tiers (economy/premium or economy/standard), so a "needs more than
standard" head would see almost no positives outside BFCL. One softmax ensemble shares its trees
across tiers, exports as one ONNX graph, and the runtime still gets ordinal risks: P(needs more
than tier k) is the upper tail of the class probabilities, calibrated per k afterwards.

Escalation bias enters twice: class weights make missing a higher tier costlier in training, and
the thresholds (:mod:`router_ml_lab.train.calibrate`) are set on validation to a target
under-routing rate.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
from lightgbm import LGBMClassifier

from router_ml.tiers import TIERS


def sample_weights(
    labels: np.ndarray,
    sources: Sequence[str],
    class_weight: Mapping[str, float],
    balance_sources: bool,
    base: np.ndarray | None = None,
) -> np.ndarray:
    """Per-record training weights: class weight × source balance × ``base`` (e.g. denoising).

    With ``balance_sources`` every source contributes the same total weight, so RouteLLM's 11k
    MMLU rows do not decide what "hard" means for function calling.
    """
    labels = np.asarray(labels, dtype=np.int64)
    if labels.ndim != 1 or len(sources) != labels.size:
        raise ValueError("labels and sources must have one entry per record")
    missing = set(TIERS) - set(class_weight)
    if missing:
        raise ValueError(f"class_weight lacks tiers {sorted(missing)}")
    weights = np.array([float(class_weight[TIERS[k]]) for k in labels])
    if balance_sources:
        names, index, counts = np.unique(
            np.asarray(sources), return_inverse=True, return_counts=True
        )
        weights *= (labels.size / len(names)) / counts[index]
    if base is not None:
        weights *= np.asarray(base, dtype=np.float64)
    if not np.all(np.isfinite(weights)) or np.any(weights < 0):
        raise ValueError("sample weights must be finite and non-negative")
    return weights / weights.mean()


def fit_classifier(
    features: np.ndarray,
    labels: np.ndarray,
    weights: np.ndarray,
    params: Mapping[str, Any],
    seed: int,
    blind_columns: Sequence[int] = (),
) -> LGBMClassifier:
    """Fit the multiclass LightGBM; deterministic for a given seed (single thread, row-wise).

    ``blind_columns`` are zeroed in the fitted copy: LightGBM drops a constant column, so no tree
    reads them (``router_ml.features.MODEL_BLIND_FEATURES``), and the column sampling and
    every tree are those of a fit without them.
    """
    features = np.asarray(features, dtype=np.float32)
    if blind_columns:
        features = features.copy()  # the caller's matrix keeps its values
        features[:, list(blind_columns)] = 0.0
    labels = np.asarray(labels, dtype=np.int64)
    if features.ndim != 2 or features.shape[0] != labels.size or labels.size != len(weights):
        raise ValueError("features, labels and weights must have one row per record")
    if labels.min() < 0 or labels.max() >= len(TIERS):
        raise ValueError(f"labels must be tier indices in [0, {len(TIERS)})")
    present = set(np.unique(labels).tolist())
    if present != set(range(len(TIERS))):
        # The probability columns must always mean TIERS in order, so every tier must occur.
        raise ValueError(
            f"training labels lack tier(s) {sorted(set(range(len(TIERS))) - present)}; "
            "the model needs examples of every tier"
        )
    tree_params = {k: v for k, v in params.items() if k not in ("class_weight", "balance_sources")}
    model = LGBMClassifier(
        objective="multiclass",
        num_class=len(TIERS),
        random_state=seed,
        n_jobs=1,
        deterministic=True,
        force_row_wise=True,
        verbose=-1,
        **tree_params,
    )
    model.fit(features, labels, sample_weight=weights)
    return model
