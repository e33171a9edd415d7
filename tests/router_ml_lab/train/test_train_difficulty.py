"""Rasch difficulty model and the soft (denoised) training targets."""

from __future__ import annotations

import numpy as np

from router_ml_lab.quality.data import TrafficRecord
from router_ml_lab.quality.labels import TierRepresentatives
from router_ml_lab.train.difficulty import denoised_targets, fit_rasch, label_distributions


def test_rasch_recovers_the_order_of_abilities_and_difficulties() -> None:
    rng = np.random.default_rng(0)
    ability = np.linspace(-1.5, 1.5, 12)
    difficulty = rng.normal(size=400)
    p = 1 / (1 + np.exp(-(ability[None, :] - difficulty[:, None])))
    outcomes = (rng.random(p.shape) < p).astype(float)
    outcomes[rng.random(p.shape) < 0.1] = np.nan  # missing scores are allowed
    fitted_ability, fitted_difficulty = fit_rasch(outcomes)
    assert np.corrcoef(fitted_ability, ability)[0, 1] > 0.95
    assert np.corrcoef(fitted_difficulty, difficulty)[0, 1] > 0.8


def _records(n: int = 300) -> tuple[list[TrafficRecord], np.ndarray, TierRepresentatives]:
    rng = np.random.default_rng(1)
    records, labels = [], []
    for i in range(n):
        hard = i % 3 == 0
        outcomes = {f"o{j}": float(rng.random() < (0.2 if hard else 0.9)) for j in range(10)}
        outcomes["eco"] = float(not hard)
        outcomes["prem"] = 1.0
        records.append(TrafficRecord(str(i), "s", "", {"messages": []}, outcomes))
        labels.append(2 if hard else 0)
    reps = TierRepresentatives({"s": {"economy": ("eco",), "premium": ("prem",)}}, {"s": 0.0})
    return records, np.array(labels), reps


def test_label_distributions_follow_difficulty() -> None:
    records, labels, reps = _records()
    pi = label_distributions(records, reps, min_models=8, seed=0)
    assert np.allclose(pi.sum(axis=1), 1.0)
    assert pi[labels == 2, 2].mean() > pi[labels == 0, 2].mean() + 0.3
    assert np.isnan(label_distributions(records, reps, min_models=50, seed=0)).all()


def test_denoised_targets_are_soft_labels_summing_to_one_per_record() -> None:
    records, labels, reps = _records()
    rows, targets, weights = denoised_targets(records, labels, reps, {"method": "none"}, 0)
    assert np.array_equal(rows, np.arange(len(labels))) and np.array_equal(targets, labels)
    config = {"method": "irt", "strength": 0.5, "min_models": 8}
    rows, targets, weights = denoised_targets(records, labels, reps, config, 0)
    assert np.allclose(np.bincount(rows, weights=weights), 1.0)
    own = weights[targets == labels[rows]]
    assert own.min() >= 0.5  # strength 0.5 keeps at least half the weight on the own label
