"""Tier labels from per-model outcomes: the reference rule of the shared data README.

A tier is represented by its ``per_tier`` best models on the source (highest mean outcome over the
source), because a tier's worst member says nothing about what the deployed model of that tier
would do. A record's tier score is the mean outcome of the representatives present in it; the
label is the cheapest tier whose score is within a tolerance of the best tier's score (0 for
pass/fail sources, 0.1 for graded ones). If every tier fails, the cheapest present tier is the
label: paying more gains nothing. A record with one tier present has no label, except an
economy-only record scoring at least 0.5, which is labeled economy. A missing tier is never
imputed: the label is over the tiers the record has evidence for.

Instead of representatives chosen from the data, a user can name the model deployed on each tier
(:meth:`TierRepresentatives.from_deployed`), which then represents its tier on every source.

Own gateway traffic (``tier_outcomes``, written by ``router-ml export-log``) is read differently in
one case: when every tier it has evidence for failed (score below 0.5) and the top tier is not
among them. The tiers of such a record are the ones the gateway *tried*, cheapest first (a failed
answer gate or a reviewer's 0 on the economy answer); an untried tier is unknown, not "paying more
gains nothing". Such a record says "needs more than the best tier tried": a censored label
(:meth:`TierRepresentatives.lower_bound`), which training turns into a target over the tiers above
(``router_ml_lab.train.censored``). Needing more than standard is exactly premium. Public sources
ran a fixed set of models per prompt, where the reference rule's reading holds, and are unchanged.
"""

from __future__ import annotations

import json
import os
from collections import defaultdict
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from router_ml.pricing import PriceCatalog
from router_ml.tiers import TIERS
from router_ml_lab.quality.data import TrafficRecord

BINARY_TOLERANCE = 0.0
GRADED_TOLERANCE = 0.1
ECONOMY_ONLY_PASS = 0.5
ANY_SOURCE = "*"
_EPS = 1e-9


@dataclass(frozen=True)
class Catalog:
    """Model → tier and list prices; tier → default prices used for cost figures."""

    model_tier: dict[str, str | None]
    model_prices: dict[str, tuple[float, float]]
    tier_prices: dict[str, tuple[float, float]]

    @classmethod
    def from_file(cls, path: str | os.PathLike[str]) -> Catalog:
        return cls.from_dict(json.loads(Path(path).read_text(encoding="utf-8")), source=str(path))

    @classmethod
    def from_dict(cls, spec: Mapping[str, Any], source: str = "catalog") -> Catalog:
        """Parse the ``models.json`` format with the runtime's one catalog reader
        (``router_ml.pricing.PriceCatalog``), so evaluation and the gateway price alike."""
        prices = PriceCatalog.from_dict(spec, source=source)
        return cls(
            dict(prices.model_tiers),
            {model: price.as_tuple() for model, price in prices.model_prices.items()},
            {tier: prices.tier_prices[tier].as_tuple() for tier in TIERS},
        )

    def tier_of(self, model: str) -> str | None:
        """The model's tier, None for unpriced models (still difficulty evidence)."""
        return self.model_tier.get(model)

    def __contains__(self, model: object) -> bool:
        return model in self.model_tier


@dataclass(frozen=True)
class TierRepresentatives:
    """Per source: which models stand for each tier, and the label tolerance."""

    models: dict[str, dict[str, tuple[str, ...]]]
    tolerance: dict[str, float]

    @classmethod
    def fit(
        cls,
        records: Iterable[TrafficRecord],
        catalog: Catalog,
        per_tier: int,
        tolerance: float | None = None,
    ) -> TierRepresentatives:
        """Pick each tier's ``per_tier`` best models per source (ties broken by name).

        ``tolerance`` None means: 0 on a source whose outcomes are all 0/1, 0.1 otherwise.
        """
        if per_tier < 1:
            raise ValueError(f"per_tier must be >= 1, got {per_tier}")
        sums: dict[str, dict[str, list[float]]] = defaultdict(lambda: defaultdict(lambda: [0.0, 0]))
        graded: dict[str, bool] = defaultdict(bool)
        for record in records:
            for model, score in record.outcomes.items():
                total = sums[record.source][model]
                total[0] += score
                total[1] += 1
                graded[record.source] |= score not in (0.0, 1.0)
        models: dict[str, dict[str, tuple[str, ...]]] = {}
        tolerances: dict[str, float] = {}
        for source in sorted(sums):
            ranked: dict[str, list[tuple[float, str]]] = defaultdict(list)
            for model, (total, count) in sums[source].items():
                tier = catalog.tier_of(model)
                if tier is not None:
                    ranked[tier].append((-total / count, model))
            models[source] = {
                tier: tuple(model for _, model in sorted(ranked[tier])[:per_tier])
                for tier in TIERS
                if ranked[tier]
            }
            if tolerance is not None:
                tolerances[source] = tolerance
            else:
                tolerances[source] = GRADED_TOLERANCE if graded[source] else BINARY_TOLERANCE
        return cls(models, tolerances)

    @classmethod
    def from_deployed(
        cls, deployed: Mapping[str, str], tolerance: float = BINARY_TOLERANCE
    ) -> TierRepresentatives:
        """Each tier represented by the one model deployed on it, on every source."""
        unknown = set(deployed) - set(TIERS)
        if unknown:
            raise ValueError(f"unknown tiers {sorted(unknown)}; expected some of {TIERS}")
        models = {tier: (deployed[tier],) for tier in TIERS if tier in deployed}
        return cls({ANY_SOURCE: models}, {ANY_SOURCE: tolerance})

    def _for(self, source: str) -> tuple[dict[str, tuple[str, ...]], float]:
        key = source if source in self.models else ANY_SOURCE
        return self.models.get(key, {}), self.tolerance.get(key, BINARY_TOLERANCE)

    def tier_scores(self, record: TrafficRecord) -> dict[str, float]:
        """Mean outcome of each tier's representatives present in the record; no absent tiers.

        A score of the model deployed on a tier (``tier_outcomes``, own gateway traffic) is that
        tier's score.
        """
        representatives, _ = self._for(record.source)
        scores: dict[str, float] = {}
        for tier, models in representatives.items():
            present = [record.outcomes[m] for m in models if m in record.outcomes]
            if present:
                scores[tier] = sum(present) / len(present)
        scores.update(record.tier_outcomes)
        return scores

    def label(self, record: TrafficRecord) -> int | None:
        """Tier index the record needs by the reference rule, or None if it cannot say.

        A direct ``tier`` label on the record wins over outcomes.
        """
        if record.tier is not None:
            return TIERS.index(record.tier)
        scores = self.tier_scores(record)
        if record.tier_outcomes:
            bound = bound_from_failures(scores)
            if bound is not None:
                return bound if bound == len(TIERS) - 1 else None
        _, tolerance = self._for(record.source)
        return label_from_scores(scores, tolerance)

    def lower_bound(self, record: TrafficRecord) -> int | None:
        """The censored label of own traffic: the cheapest tier the record may need, or None.

        Not None only when the record has no exact label and every tier the gateway tried
        failed: the request needs at least the tier above the best one tried (module docstring).
        """
        if record.tier is not None or not record.tier_outcomes:
            return None
        bound = bound_from_failures(self.tier_scores(record))
        return bound if bound is not None and bound < len(TIERS) - 1 else None

    def to_dict(self) -> dict[str, Any]:
        return {
            "models": {
                source: {tier: list(models) for tier, models in tiers.items()}
                for source, tiers in self.models.items()
            },
            "tolerance": dict(self.tolerance),
        }


def label_from_scores(scores: Mapping[str, float], tolerance: float) -> int | None:
    """The cheapest tier within ``tolerance`` of the best present tier (see module docstring)."""
    if not scores:
        return None
    if len(scores) == 1:
        ((tier, score),) = scores.items()
        return 0 if tier == TIERS[0] and score >= ECONOMY_ONLY_PASS else None
    best = max(scores.values())
    for index, tier in enumerate(TIERS):
        if tier in scores and scores[tier] >= best - tolerance - _EPS:
            return index
    raise AssertionError("unreachable: the best tier is within tolerance of itself")


def bound_from_failures(scores: Mapping[str, float]) -> int | None:
    """One above the best tier when every present tier failed and the top tier is absent."""
    if not scores or TIERS[-1] in scores or max(scores.values()) >= ECONOMY_ONLY_PASS:
        return None
    return max(TIERS.index(tier) for tier in scores) + 1


def label_records(
    records: Iterable[TrafficRecord], representatives: TierRepresentatives
) -> list[int | None]:
    """Reference labels of ``records`` (None where a record cannot say)."""
    return [representatives.label(record) for record in records]
