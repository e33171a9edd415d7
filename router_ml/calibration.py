"""From the classifier's tier probabilities to calibrated escalation risks and a tier.

The model file stores, for each tier below the top, an isotonic map from the raw probability that
the request needs *more* than that tier to a calibrated one, fitted on the validation split by
``training``. The runtime applies it with ``np.interp``: no scikit-learn at run time, and training
computes its operating points with this very function, so the thresholds mean the same thing in
both places.
"""

from __future__ import annotations

from bisect import bisect_right
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from router_ml.tiers import TIERS


def non_increasing(risks: list[float], raise_earlier: bool) -> list[float]:
    """``risks`` (one per tier but the top) made non-increasing across tiers, in place.

    Needing more than standard implies needing more than economy, so a rule that moves some risks
    must restore that order without undoing its own move: after raising risks (``raise_earlier``)
    each earlier risk is lifted to the later ones; after capping them each later risk is lowered
    to the earlier ones.
    """
    if raise_earlier:
        for k in range(len(risks) - 2, -1, -1):
            risks[k] = max(risks[k], risks[k + 1])
    else:
        for k in range(1, len(risks)):
            risks[k] = min(risks[k], risks[k - 1])
    return risks


class RiskCalibrator:
    """Maps class probabilities ``(n, n_tiers)`` to calibrated risks ``(n, n_tiers - 1)``.

    ``risk[:, k]`` estimates P(request needs a tier above ``tiers[k]``); it is non-increasing in
    ``k`` by construction, so escalating never lowers the risk.
    """

    def __init__(
        self, knots: Sequence[tuple[Sequence[float], Sequence[float]]] | None = None
    ) -> None:
        self.knots = [
            (np.asarray(x, dtype=np.float64), np.asarray(y, dtype=np.float64))
            for x, y in (knots or [])
        ]
        for x, y in self.knots:
            if x.ndim != 1 or x.shape != y.shape or x.size < 2 or np.any(np.diff(x) < 0):
                raise ValueError(
                    "each calibration map needs >= 2 increasing x knots and matching y"
                )
        # Plain-float copies: one request's risks cost less in Python than in numpy's call overhead.
        self._knot_lists = [(x.tolist(), y.tolist()) for x, y in self.knots]

    @classmethod
    def from_dict(cls, spec: Mapping[str, Any], tiers: Sequence[str] = TIERS) -> RiskCalibrator:
        method = spec.get("method", "none")
        if method == "none":
            return cls()
        if method != "isotonic":
            raise ValueError(f"unknown calibration method {method!r}")
        maps = spec["risk_above"]
        return cls([(maps[tier]["x"], maps[tier]["y"]) for tier in tiers[:-1]])

    def to_dict(self, tiers: Sequence[str] = TIERS) -> dict[str, Any]:
        if not self.knots:
            return {"method": "none"}
        return {
            "method": "isotonic",
            "risk_above": {
                tier: {"x": x.tolist(), "y": y.tolist()}
                for tier, (x, y) in zip(tiers[:-1], self.knots, strict=True)
            },
        }

    def risks(self, probabilities: np.ndarray) -> np.ndarray:
        """Calibrated P(needs more than tier k) for each row and each tier but the top."""
        probabilities = np.asarray(probabilities, dtype=np.float64)
        # P(needs more than tier k) = sum of the probabilities of the tiers above k.
        raw = np.cumsum(probabilities[:, :0:-1], axis=1)[:, ::-1]
        raw[np.isnan(raw)] = 1.0  # like risk_row: a row the model answered NaN escalates
        if self.knots:
            raw = np.column_stack(
                [np.interp(raw[:, k], x, y) for k, (x, y) in enumerate(self.knots)]
            )
        # Needing more than standard implies needing more than economy.
        return np.minimum.accumulate(np.clip(raw, 0.0, 1.0), axis=1)

    def risk_row(self, probabilities: Sequence[float]) -> list[float]:
        """``risks`` of a single row, in plain Python (same result, ~10x less overhead)."""
        above, raw = 0.0, []
        for p in reversed(probabilities[1:]):
            above += float(p)
            raw.append(above)
        raw.reverse()
        risks, ceiling = [], 1.0
        for k, value in enumerate(raw):
            if value == value:  # a NaN (a model gone wrong on this row) keeps the risk: escalate
                if self._knot_lists:
                    value = _interp(value, *self._knot_lists[k])
                ceiling = min(ceiling, max(0.0, value))
            risks.append(ceiling)
        return risks


def _interp(value: float, xs: list[float], ys: list[float]) -> float:
    """``np.interp`` for one value: linear between knots, flat beyond the ends."""
    if value <= xs[0]:
        return ys[0]
    if value >= xs[-1]:
        return ys[-1]
    i = bisect_right(xs, value)
    x0, x1, y0, y1 = xs[i - 1], xs[i], ys[i - 1], ys[i]
    return y0 if x1 == x0 else y0 + (y1 - y0) * (value - x0) / (x1 - x0)


def risks_to_probabilities(risks: np.ndarray) -> np.ndarray:
    """Calibrated per-tier probabilities implied by the cumulative risks."""
    n = risks.shape[0]
    above = np.column_stack([np.ones(n), risks, np.zeros(n)])
    return above[:, :-1] - above[:, 1:]


def choose_tier(risks: Sequence[float], thresholds: Sequence[float]) -> int:
    """``choose_tiers`` for one row of risks (plain Python, for the per-request path)."""
    for k, (risk, threshold) in enumerate(zip(risks, thresholds, strict=True)):
        if risk < threshold:
            return k
    return len(risks)


def choose_tiers(risks: np.ndarray, thresholds: Sequence[float]) -> np.ndarray:
    """Index of the cheapest tier whose risk of being too weak is below its threshold.

    The top tier is always acceptable; so when unsure, the choice escalates.
    """
    cuts = np.asarray(thresholds, dtype=np.float64)
    acceptable = risks < cuts[None, :]
    acceptable = np.column_stack([acceptable, np.ones(len(risks), dtype=bool)])
    return np.argmax(acceptable, axis=1)
