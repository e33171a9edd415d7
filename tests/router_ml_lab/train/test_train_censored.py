"""Censored labels ("needs more than tier k") become soft rows over the tiers above."""

from __future__ import annotations

import numpy as np
import pytest

from router_ml_lab.quality.splits import TEST, TRAIN
from router_ml_lab.train.censored import censored_targets
from router_ml_lab.train.sample_size import small_data_warnings


def test_mass_goes_above_the_bound_split_by_the_sources_own_prior() -> None:
    exact = np.array([1] * 30 + [2] * 10 + [0] * 50)
    exact_sources = np.array(["own"] * 40 + ["public"] * 50)
    rows, tiers, weights = censored_targets(np.array([1]), ["own"], exact, exact_sources)
    assert rows.tolist() == [0, 0] and tiers.tolist() == [1, 2]
    assert weights.tolist() == pytest.approx([0.75, 0.25])  # 30 standard : 10 premium
    assert not np.any(tiers == 0)  # economy never gets mass: it was not enough


def test_a_source_with_few_exact_labels_above_uses_the_pooled_prior() -> None:
    exact = np.array([1] * 5 + [2] * 60)
    exact_sources = np.array(["own"] * 5 + ["public"] * 60)
    _, tiers, weights = censored_targets(np.array([1]), ["own"], exact, exact_sources)
    assert dict(zip(tiers.tolist(), weights.tolist(), strict=True)) == pytest.approx(
        {1: 5 / 65, 2: 60 / 65}
    )
    # Nothing above the bound anywhere: spread evenly rather than invent a preference.
    _, tiers, weights = censored_targets(np.array([1]), ["own"], np.array([0, 0]), ["a", "a"])
    assert weights.tolist() == [0.5, 0.5]
    with pytest.raises(ValueError, match="bounds"):
        censored_targets(np.array([0]), ["own"], exact, exact_sources)


def test_small_data_is_warned_about_per_source_and_in_total() -> None:
    splits = np.array([TRAIN] * 140 + [TEST] * 60)
    sources = np.array(["gateway"] * 200)
    warnings = small_data_warnings(splits, sources, n_censored=31)
    assert any("only 200 labeled records (+31 censored)" in w for w in warnings)
    assert any("'gateway' has 60 test records" in w for w in warnings)
    big = np.array([TRAIN] * 700 + [TEST] * 300)
    assert small_data_warnings(big, np.array(["public"] * 1000)) == []
