"""Bootstrap confidence intervals of routing figures: how much a number could move by chance.

A team retraining on a few hundred of its own records gets a test split of a few dozen; an
under-routing rate of 5% measured on 60 records is compatible with anything from 0% to ~12%.
Percentile bootstrap over the records (resampled with replacement, the routing choices fixed)
makes that visible next to every figure, without assuming a distribution for ratios such as
cost vs premium or quality kept.
"""

from __future__ import annotations

import math
from collections import defaultdict
from collections.abc import Callable, Mapping

import numpy as np

DEFAULT_RESAMPLES = 500
DEFAULT_LEVEL = 0.95


def bootstrap_intervals(
    statistic: Callable[[np.ndarray], Mapping[str, float]],
    n: int,
    n_resamples: int = DEFAULT_RESAMPLES,
    level: float = DEFAULT_LEVEL,
    seed: int = 0,
) -> dict[str, tuple[float, float]]:
    """Percentile intervals of each figure ``statistic(index)`` returns over resampled records.

    ``statistic`` receives an index array of ``n`` positions drawn with replacement and returns
    named figures; non-finite values of a resample (e.g. a ratio with a zero denominator) are
    left out of that figure's distribution. Deterministic for a ``seed``.
    """
    if n < 1:
        raise ValueError("bootstrap needs at least one record")
    if n_resamples < 2:
        raise ValueError(f"n_resamples must be >= 2, got {n_resamples}")
    if not 0.0 < level < 1.0:
        raise ValueError(f"level must be in (0, 1), got {level}")
    rng = np.random.default_rng(seed)
    draws: dict[str, list[float]] = defaultdict(list)
    for _ in range(n_resamples):
        for name, value in statistic(rng.integers(0, n, n)).items():
            if value is not None and math.isfinite(value):
                draws[name].append(float(value))
    tail = (1.0 - level) / 2.0
    return {
        name: (float(np.quantile(values, tail)), float(np.quantile(values, 1.0 - tail)))
        for name, values in draws.items()
    }
