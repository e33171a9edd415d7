"""Bootstrap intervals: they cover the truth about as often as promised, and shrink with n."""

from __future__ import annotations

import numpy as np
import pytest

from router_ml_lab.quality.uncertainty import bootstrap_intervals


def rate_interval(outcomes: np.ndarray, seed: int = 0) -> tuple[float, float]:
    intervals = bootstrap_intervals(
        lambda index: {"rate": float(outcomes[index].mean())}, outcomes.size, seed=seed
    )
    return intervals["rate"]


def test_an_interval_of_a_rate_covers_the_true_rate_about_95_percent_of_the_time() -> None:
    rng = np.random.default_rng(0)
    covered = 0
    for trial in range(100):
        low, high = rate_interval(rng.random(200) < 0.1, seed=trial)
        covered += low <= 0.1 <= high
    assert 88 <= covered <= 100


def test_intervals_shrink_with_more_records_and_are_deterministic() -> None:
    rng = np.random.default_rng(1)
    small, large = rng.random(60) < 0.05, rng.random(6000) < 0.05
    width_small = np.subtract(*rate_interval(small)[::-1])
    width_large = np.subtract(*rate_interval(large)[::-1])
    assert width_small > 3 * width_large
    assert rate_interval(small, seed=3) == rate_interval(small, seed=3)


def test_non_finite_resamples_are_left_out_and_bad_arguments_refused() -> None:
    values = np.array([0.0, 0.0, 1.0, 2.0])

    def ratio(index: np.ndarray) -> dict[str, float]:
        low = float(values[index].min())
        return {"ratio": float(values[index].sum()) / low if low else float("inf")}

    intervals = bootstrap_intervals(ratio, values.size)
    assert intervals["ratio"][0] > 0  # only the resamples without a 0 are finite
    with pytest.raises(ValueError, match="level"):
        bootstrap_intervals(lambda index: {}, 4, level=1.5)
    with pytest.raises(ValueError, match="at least one"):
        bootstrap_intervals(lambda index: {}, 0)
