"""Label denoising from prompt difficulty: a Rasch (1PL IRT) model over every scored model.

A record's label rests on a handful of representative outcomes, each a noisy coin (two snapshots
of one model disagree on 6-8% of BFCL prompts). Sources that ran many models on each prompt (BFCL
50, MMLU-Pro 29, RouterBench 11) say much more: how hard the prompt is. The Rasch model
``P(model m passes prompt i) = sigmoid(ability_m - difficulty_i)`` pools all of them; simulating
the representatives' outcomes from it and applying the reference label rule gives the label
distribution a prompt of that difficulty has, ``pi_i``. Training then uses the soft target
``(1 - strength) * onehot(label_i) + strength * pi_i`` (one weighted row per tier with mass), which
keeps what the prompt's own outcomes say and shrinks the coin-flip part toward its difficulty.

Whether this helps is an empirical question; the pipeline keeps it only when the config enables
it, and the config was chosen by validation results (see the model card).
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from router_ml.tiers import TIERS
from router_ml_lab.quality.data import TrafficRecord
from router_ml_lab.quality.labels import TierRepresentatives

_ABILITY_PRIOR_VAR = 10.0
_DIFFICULTY_PRIOR_VAR = 4.0
_SIMULATIONS = 256


def fit_rasch(outcomes: np.ndarray, iterations: int = 50) -> tuple[np.ndarray, np.ndarray]:
    """Abilities ``(n_models,)`` and difficulties ``(n_items,)`` of an items × models matrix.

    NaN marks a model that did not score an item; graded outcomes in [0, 1] are fractional
    successes. Gaussian priors keep all-pass and all-fail items finite. Alternating Newton steps.
    """
    outcomes = np.asarray(outcomes, dtype=np.float64)
    if outcomes.ndim != 2:
        raise ValueError("outcomes must be an items x models matrix")
    observed = ~np.isnan(outcomes)
    y = np.where(observed, outcomes, 0.0)
    ability = np.zeros(outcomes.shape[1])
    difficulty = np.zeros(outcomes.shape[0])
    for _ in range(iterations):
        p = _sigmoid(ability[None, :] - difficulty[:, None]) * observed
        grad = (p - y).sum(axis=1) - difficulty / _DIFFICULTY_PRIOR_VAR
        hess = -(p * (1 - p)).sum(axis=1) - 1 / _DIFFICULTY_PRIOR_VAR
        difficulty -= grad / hess
        p = _sigmoid(ability[None, :] - difficulty[:, None]) * observed
        grad = (y - p).sum(axis=0) - ability / _ABILITY_PRIOR_VAR
        hess = -(p * (1 - p)).sum(axis=0) - 1 / _ABILITY_PRIOR_VAR
        ability -= grad / hess
    return ability, difficulty


def _sigmoid(x: np.ndarray) -> np.ndarray:
    return 1.0 / (1.0 + np.exp(-x))


def label_distributions(
    records: Sequence[TrafficRecord],
    representatives: TierRepresentatives,
    min_models: int,
    seed: int,
) -> np.ndarray:
    """``(n, n_tiers)`` label distribution implied by each prompt's difficulty; NaN rows where
    the source has fewer than ``min_models`` models or fewer than two tiers."""
    result = np.full((len(records), len(TIERS)), np.nan)
    by_source: dict[str, list[int]] = defaultdict(list)
    for i, record in enumerate(records):
        if record.tier is None:
            by_source[record.source].append(i)
    rng = np.random.default_rng(seed)
    for source in sorted(by_source):
        rows = by_source[source]
        models = sorted({m for i in rows for m in records[i].outcomes})
        tiers = representatives.models.get(source, {})
        if len(models) < min_models or len(tiers) < 2:
            continue
        column = {m: j for j, m in enumerate(models)}
        matrix = np.full((len(rows), len(models)), np.nan)
        for r, i in enumerate(rows):
            for model, score in records[i].outcomes.items():
                matrix[r, column[model]] = score
        ability, difficulty = fit_rasch(matrix)
        tolerance = representatives.tolerance.get(source, 0.0)
        scores = np.full((_SIMULATIONS, len(rows), len(TIERS)), np.nan)
        for k, tier in enumerate(TIERS):
            members = [column[m] for m in tiers.get(tier, ()) if m in column]
            if not members:
                continue
            present = ~np.isnan(matrix[:, members])  # never simulate a model the record lacks
            p = _sigmoid(ability[members][None, :] - difficulty[:, None])
            draws = rng.random((_SIMULATIONS, *p.shape)) < p[None]
            count = present.sum(axis=1)
            with np.errstate(invalid="ignore", divide="ignore"):
                scores[:, :, k] = np.where(count > 0, (draws & present).sum(axis=2) / count, np.nan)
        labels = _rule_labels(scores, tolerance)
        for k in range(len(TIERS)):
            result[rows, k] = np.mean(labels == k, axis=0)
        undefined = np.mean(labels < 0, axis=0) > 0
        result[np.asarray(rows)[undefined]] = np.nan
    return result


def _rule_labels(scores: np.ndarray, tolerance: float) -> np.ndarray:
    """The reference rule on simulated tier scores ``(..., n_tiers)``; -1 where undefined."""
    present = ~np.isnan(scores)
    best = np.nanmax(np.where(present, scores, -np.inf), axis=-1, keepdims=True)
    within = present & (scores >= best - tolerance - 1e-9)
    labels = np.argmax(within, axis=-1)
    return np.where(present.sum(axis=-1) >= 2, labels, -1)


def denoised_targets(
    records: Sequence[TrafficRecord],
    labels: np.ndarray,
    representatives: TierRepresentatives,
    config: Mapping[str, Any],
    seed: int,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Training rows ``(record index, tier target, weight)`` for the configured denoising.

    ``method: none`` gives each record its reference label with weight 1. ``method: irt`` gives
    one row per tier with probability mass under the soft target described in the module doc.
    """
    labels = np.asarray(labels, dtype=np.int64)
    n = labels.size
    if config["method"] == "none":
        return np.arange(n), labels, np.ones(n)
    strength = float(config["strength"])
    if not 0.0 <= strength <= 1.0:
        raise ValueError(f"denoise.strength must be in [0, 1], got {strength}")
    soft = np.eye(len(TIERS))[labels]
    prior = label_distributions(records, representatives, int(config["min_models"]), seed)
    has_prior = ~np.isnan(prior).any(axis=1)
    soft[has_prior] = (1 - strength) * soft[has_prior] + strength * prior[has_prior]
    rows, tiers = np.nonzero(soft > 1e-6)
    return rows, tiers.astype(np.int64), soft[rows, tiers]
