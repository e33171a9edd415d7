"""Where the training traffic lies, how far outside it a request is, and what the router does then.

A learned risk is only evidence where the model has seen requests like the one at hand. Training
(``router-ml train``) stores, per feature, the range the (augmented) training traffic covered;
:class:`Coverage` scores a feature vector by its largest excursion outside those ranges, relative
to each range's width, squashed into ``[0, 1)``:

    excursion_j = max(low_j - x_j, x_j - high_j, 0) / width_j      ood = 1 - exp(-max_j excursion_j)

The ranges leave out the ``min_support`` most extreme training rows at each end: a tree ensemble
whose leaves need ``min_child_samples`` rows learns nothing from a value that fewer rows have.
A feature the training traffic (almost) never had non-zero (a tool result, an image, CJK text, a
rejected answer) thus has the range 0..0 and width ``UNSEEN_WIDTH``, so any value there scores
close to 1. The threshold is
calibrated at training time so that only a small share of in-distribution validation traffic is
flagged (the share is stored next to it).

:class:`CoverageRule` is the escalation rule: a request scoring at or above the threshold is not
routed by the model's risk alone; it goes at least to ``escalate_to``. The risks a decision
exposes are raised to match (:meth:`CoverageRule.escalate`), so a caller that ranks requests by
risk sees flagged requests as risky as the decision treated them: above every request the model
accepts at a lower tier, ordered by the larger of their model risk and an ``ood``-based floor.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from router_ml.calibration import non_increasing
from router_ml.tiers import TIERS, TOP_TIER, tier_rank

UNSEEN_WIDTH = 1e-3
"""Range width given to a feature that was constant in training: any change is far outside."""
UNBOUNDED = float(2**24)
"""The range of an unchecked feature: every value a feature can take (features are clipped)."""
MIN_THRESHOLD = 0.05
"""Excursions scoring below this are never flagged, however the calibration falls."""
NAMES_IN_REASON = 4
FIRST_NAMED = frozenset({"after_error", "user_rejects_answer", "n_images", "cjk_ratio"})
"""Named first in a reason when outside: they say most plainly what kind of request this is."""


@dataclass(frozen=True)
class Coverage:
    """Per-feature ranges of the training traffic and the calibrated flagging threshold."""

    names: tuple[str, ...]
    low: np.ndarray
    high: np.ndarray
    width: np.ndarray
    threshold: float
    validation_flagged: float | None = None
    _inverse_width: np.ndarray = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        n = len(self.names)
        for name in ("low", "high", "width"):
            array = getattr(self, name)
            if array.shape != (n,) or not np.all(np.isfinite(array)):
                raise ValueError(f"coverage {name} must be {n} finite numbers")
        if np.any(self.width <= 0) or np.any(self.high < self.low):
            raise ValueError("coverage ranges must have low <= high and positive widths")
        if not 0.0 < self.threshold <= 1.0:
            raise ValueError(f"coverage threshold must be in (0, 1], got {self.threshold}")
        object.__setattr__(self, "_inverse_width", 1.0 / self.width)

    @classmethod
    def fit(
        cls,
        names: Sequence[str],
        training: np.ndarray,
        validation: np.ndarray,
        max_flagged: float = 0.01,
        min_support: int = 40,
        unchecked: Sequence[str] = (),
    ) -> Coverage:
        """Ranges from ``training``; the threshold flags at most ``max_flagged`` of ``validation``.

        Each range runs from the ``min_support``-th smallest to the ``min_support``-th largest
        training value: beyond them the trees saw too few rows to learn anything (they extrapolate
        flat), so the model's answer there is a guess. Features in ``unchecked`` get an unbounded
        range: per-feature ranges suit counts and shares, not the axes of a text embedding, where
        a short ordinary prompt lies further out than a long odd one.
        """
        training = np.sort(np.asarray(training, dtype=np.float64), axis=0)
        k = min(max(min_support, 1), training.shape[0]) - 1
        low, high = training[k], training[training.shape[0] - 1 - k]
        low = np.minimum(low, high)
        width = np.where(high > low, high - low, UNSEEN_WIDTH)
        free = np.isin(np.asarray(names), list(unchecked))
        low, high, width = (
            np.where(free, -UNBOUNDED, low),
            np.where(free, UNBOUNDED, high),
            np.where(free, 1.0, width),
        )
        provisional = cls(tuple(names), low, high, width, 1.0)
        scores = provisional.scores(validation)
        threshold = max(MIN_THRESHOLD, float(np.quantile(scores, 1.0 - max_flagged)) + 1e-9)
        threshold = min(threshold, 1.0)
        flagged = float(np.mean(scores >= threshold)) if scores.size else 0.0
        return cls(tuple(names), low, high, width, threshold, flagged)

    def scores(self, features: np.ndarray) -> np.ndarray:
        """``ood`` of each row of ``features`` ``(n, n_features)``."""
        x = np.asarray(features, dtype=np.float64)
        if not x.size:
            return np.zeros(len(x))
        furthest = (np.maximum(self.low - x, x - self.high) * self._inverse_width).max(axis=1)
        return -np.expm1(-np.maximum(furthest, 0.0))

    def score(self, row: np.ndarray) -> float:
        """``ood`` of one feature vector (the per-request path: as few array passes as it takes)."""
        x = np.asarray(row, dtype=np.float64)
        furthest = float((np.maximum(self.low - x, x - self.high) * self._inverse_width).max())
        return -math.expm1(-furthest) if furthest > 0.0 else 0.0

    def out_of_range(self, row: np.ndarray, limit: int = NAMES_IN_REASON) -> list[str]:
        """What lies outside: features training never had non-zero, then the furthest others.

        As ``name=value (never seen)`` or ``name=value (seen lo..hi)``, at most ``limit``.
        """
        x = row.astype(np.float64)
        excursion = np.maximum(np.maximum(self.low - x, x - self.high), 0.0) / self.width
        outside = np.flatnonzero(excursion > 0)
        unseen = sorted(
            (int(j) for j in outside if self.width[j] == UNSEEN_WIDTH),
            key=lambda j: (self.names[j] not in FIRST_NAMED, j),
        )
        ranged = sorted(
            (int(j) for j in outside if self.width[j] != UNSEEN_WIDTH), key=lambda j: -excursion[j]
        )
        shown = [f"{self.names[j]}={x[j]:g} (never seen)" for j in unseen[:limit]]
        shown += [
            f"{self.names[j]}={x[j]:g} (seen {self.low[j]:g}..{self.high[j]:g})"
            for j in ranged[: max(limit - len(shown), 0)]
        ]
        return shown  # only the first ``limit`` are formatted: agent turns have dozens outside

    def to_dict(self) -> dict[str, Any]:
        return {
            "method": "feature_ranges",
            "names": list(self.names),
            "low": self.low.tolist(),
            "high": self.high.tolist(),
            "width": self.width.tolist(),
            "threshold": self.threshold,
            "validation_flagged": self.validation_flagged,
        }

    @classmethod
    def from_dict(cls, spec: Mapping[str, Any]) -> Coverage:
        if spec.get("method") != "feature_ranges":
            raise ValueError(f"unknown coverage method {spec.get('method')!r}")
        return cls(
            tuple(spec["names"]),
            np.asarray(spec["low"], dtype=np.float64),
            np.asarray(spec["high"], dtype=np.float64),
            np.asarray(spec["width"], dtype=np.float64),
            float(spec["threshold"]),
            spec.get("validation_flagged"),
        )


@dataclass(frozen=True)
class CoverageRule:
    """What the router does with a request outside covered ground.

    Parameters
    ----------
    enabled : bool
        False: compute and report ``ood`` but never escalate on it.
    threshold : float or None
        Flag at ``ood >= threshold``; None uses the model's calibrated threshold.
    escalate_to : str
        The least capable tier a flagged request may go to.
    """

    enabled: bool = True
    threshold: float | None = None
    escalate_to: str = TOP_TIER

    def __post_init__(self) -> None:
        tier_rank(self.escalate_to)
        if self.threshold is not None and not 0.0 < self.threshold <= 1.0:
            raise ValueError(f"coverage threshold must be in (0, 1], got {self.threshold}")

    @classmethod
    def from_config(cls, spec: Mapping[str, Any] | CoverageRule | None) -> CoverageRule:
        """From a policy/gateway mapping ``{enabled, threshold, escalate_to}`` (all optional)."""
        if spec is None:
            return cls()
        if isinstance(spec, CoverageRule):
            return spec
        if not isinstance(spec, Mapping):
            raise ValueError("coverage must be a mapping {enabled, threshold, escalate_to}")
        unknown = set(spec) - {"enabled", "threshold", "escalate_to"}
        if unknown:
            raise ValueError(f"coverage: unknown keys {sorted(unknown)}")
        enabled = spec.get("enabled", True)
        if not isinstance(enabled, bool):
            raise ValueError("coverage.enabled must be true or false")
        threshold = spec.get("threshold")
        if threshold is not None and (
            isinstance(threshold, bool) or not isinstance(threshold, int | float)
        ):
            raise ValueError("coverage.threshold must be a number in (0, 1] or null")
        escalate_to = spec.get("escalate_to", TOP_TIER)
        if escalate_to not in TIERS:
            raise ValueError(f"coverage.escalate_to must be one of {', '.join(TIERS)}")
        return cls(enabled, None if threshold is None else float(threshold), escalate_to)

    def threshold_for(self, coverage: Coverage) -> float:
        return coverage.threshold if self.threshold is None else self.threshold

    def escalate(
        self, risks: Sequence[float], thresholds: Sequence[float], ood: float
    ) -> list[float]:
        """Risks raised so that the tier choice lands at ``escalate_to`` or above.

        Below ``escalate_to`` each risk becomes at least ``t + (1 - t) * ood`` (> its threshold
        ``t``), so a ranking by risk puts flagged requests above every request the model would
        accept at that tier, the further out the riskier. Risks stay non-increasing across tiers.
        """
        floor_rank = tier_rank(self.escalate_to)
        raised = [
            max(r, t + (1.0 - t) * ood) if k < floor_rank else r
            for k, (r, t) in enumerate(zip(risks, thresholds, strict=True))
        ]
        return non_increasing(raised, raise_earlier=True)
