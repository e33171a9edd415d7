"""Labeled traffic turned into the aligned arrays every metric reads: the one evidence set.

One :class:`Evidence` holds, per labeled record, the reference tier, the per-tier scores (and
which of them are realised outcomes), the source and kind, and the token counts and per-tier
costs of serving it. The model card (training) and ``router-ml eval`` both build it here, so every
router is judged on the same records, costs and outcomes, with one accounting:

- input tokens: the whole request as the provider bills it (message texts, tool calls and tool
  schemas), counted with o200k (:func:`count_input_tokens`);
- output tokens: ``max_tokens`` when the request gives it, else the model's recorded default
  (``cost.output_tokens_default`` in its metadata, 256 in the training config);
- a tier a record has no evidence for is scored and paid as the tier that stands in for it
  (``metrics.serving_tiers``): :attr:`Evidence.filled_scores` and :attr:`Evidence.serving_costs`.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from router_ml.pricing import billed_input_tokens, expected_output_tokens, request_costs
from router_ml.request import parse_request
from router_ml.tiers import TIERS
from router_ml.tokenizer import TokenCounter
from router_ml_lab.quality.data import TrafficRecord
from router_ml_lab.quality.labels import TierRepresentatives
from router_ml_lab.quality.metrics import fill_missing_tier_scores, serving_tiers

NOISE_PAIRS: tuple[tuple[str, str], ...] = (
    ("gpt-4o-2024-05-13", "gpt-4o-2024-08-06"),
    ("gpt-4-0125-preview", "gpt-4-1106-preview"),
)
"""Near-identical snapshots of one model: how often they disagree is the label-noise floor."""


@dataclass(frozen=True)
class Evidence:
    """Aligned per-record arrays of the labeled records (unlabeled ones are left out)."""

    ids: tuple[str, ...]
    requests: tuple[dict[str, Any], ...]
    sources: np.ndarray
    categories: np.ndarray
    labels: np.ndarray
    scores: np.ndarray
    """``(n, 3)`` outcome per tier, NaN where the record has no evidence for that tier. A record
    with only a direct ``tier`` label scores 1 from that tier up and 0 below it."""
    realised: np.ndarray
    """``(n, 3)`` true where the score is a realised outcome, false where it is implied by a
    direct label (or absent)."""
    input_tokens: np.ndarray
    output_tokens: np.ndarray
    costs: np.ndarray
    """``(n, 3)`` USD of serving the record with each tier at the catalog's tier prices."""
    outcomes: tuple[dict[str, float], ...]

    def __len__(self) -> int:
        return len(self.ids)

    @property
    def filled_scores(self) -> np.ndarray:
        """Score of the tier that serves each routing choice (``metrics.serving_tiers``)."""
        return fill_missing_tier_scores(self.scores)

    @property
    def serving_costs(self) -> np.ndarray:
        """Cost of the tier that serves each routing choice: the cost twin of ``filled_scores``."""
        return self.costs[np.arange(len(self))[:, None], serving_tiers(self.scores)]

    def subset(self, mask: np.ndarray) -> Evidence:
        """The records where boolean ``mask`` is true, in order; or those at integer indices
        (repeats allowed: bootstrap resamples)."""
        mask = np.asarray(mask)
        if mask.dtype == bool:
            if mask.shape != (len(self),):
                raise ValueError(f"mask must have shape ({len(self)},)")
            index = np.flatnonzero(mask)
        else:
            index = mask.astype(np.int64)
        return Evidence(
            ids=tuple(self.ids[i] for i in index),
            requests=tuple(self.requests[i] for i in index),
            sources=self.sources[index],
            categories=self.categories[index],
            labels=self.labels[index],
            scores=self.scores[index],
            realised=self.realised[index],
            input_tokens=self.input_tokens[index],
            output_tokens=self.output_tokens[index],
            costs=self.costs[index],
            outcomes=tuple(self.outcomes[i] for i in index),
        )


def count_input_tokens(request: dict[str, Any], counter: TokenCounter) -> int:
    """o200k input tokens of a request body, as every cost figure counts them."""
    return billed_input_tokens(parse_request(request), counter)


def output_tokens_of(request: dict[str, Any], default: int) -> int:
    """``max_tokens`` (or ``max_completion_tokens``) when given, else ``default``."""
    return expected_output_tokens(parse_request(request), default)


def build_evidence(
    records: Sequence[TrafficRecord],
    representatives: TierRepresentatives,
    tier_prices: Mapping[str, tuple[float, float]],
    default_output_tokens: int,
    counter: TokenCounter | None = None,
) -> Evidence:
    """Label, score and price ``records``.

    ``representatives`` gives each record's per-tier scores and reference label. Records it
    cannot label are dropped, because no metric here can score a routing decision without a
    label. ``default_output_tokens`` is the model's recorded assumption (no default here: the
    evaluated model's metadata is the one place it lives).
    """
    if default_output_tokens < 0:
        raise ValueError("default_output_tokens must be non-negative")
    counter = counter or TokenCounter()
    kept, labels, scores = [], [], []
    for record in records:
        label = representatives.label(record)
        if label is None:
            continue
        tier_scores = representatives.tier_scores(record)
        kept.append(record)
        labels.append(label)
        scores.append([tier_scores.get(tier, np.nan) for tier in TIERS])
    score_array = np.array(scores, dtype=float).reshape(-1, len(TIERS))
    realised = ~np.isnan(score_array)
    label_array = np.array(labels, dtype=np.int64)
    implied = ~realised.any(axis=1)  # a direct tier label only: its tier and above pass
    score_array[implied] = (np.arange(len(TIERS))[None, :] >= label_array[implied, None]).astype(
        float
    )
    input_tokens = np.array([count_input_tokens(r.request, counter) for r in kept], dtype=float)
    output_tokens = np.array(
        [output_tokens_of(r.request, default_output_tokens) for r in kept], dtype=float
    )
    prices = np.array([tier_prices[tier] for tier in TIERS], dtype=float)
    return Evidence(
        ids=tuple(r.id for r in kept),
        requests=tuple(r.request for r in kept),
        sources=np.array([r.source for r in kept], dtype=object),
        categories=np.array([r.category for r in kept], dtype=object),
        labels=label_array,
        scores=score_array,
        realised=realised,
        input_tokens=input_tokens,
        output_tokens=output_tokens,
        costs=request_costs(input_tokens, output_tokens, prices),
        outcomes=tuple(r.outcomes for r in kept),
    )


def noise_reference(eval_set: Evidence) -> list[dict[str, Any]]:
    """Pass/fail agreement of each near-identical snapshot pair, per source where both ran."""
    from router_ml_lab.quality.metrics import agreement_rate

    rows = []
    for first, second in NOISE_PAIRS:
        for source in sorted(set(eval_set.sources)):
            pairs = [
                (o[first], o[second])
                for o, s in zip(eval_set.outcomes, eval_set.sources, strict=True)
                if s == source and first in o and second in o
            ]
            if not pairs:
                continue
            a, b = (np.array(v) for v in zip(*pairs, strict=True))
            rows.append(
                {
                    "source": source,
                    "models": [first, second],
                    "n": len(pairs),
                    "agreement": agreement_rate(a, b),
                }
            )
    return rows
