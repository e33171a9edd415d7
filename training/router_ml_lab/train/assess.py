"""Routing quality of a model on a split, pooled and per source, with the shared metrics.

Every figure is computed by ``router_ml_lab.quality.metrics`` (one definition per metric across
the project); this module only gathers the per-record evidence (labels, realised tier scores,
list-price costs) and the baselines a number must be read against: the majority-class accuracy
and the best random router at the same under-routing.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from router_ml.calibration import choose_tiers, risks_to_probabilities
from router_ml.features import FEATURE_NAMES
from router_ml.tiers import TIERS
from router_ml_lab.quality import metrics as m
from router_ml_lab.quality.data import TrafficRecord
from router_ml_lab.quality.labels import TierRepresentatives
from router_ml_lab.quality.uncertainty import bootstrap_intervals

_TOKENS_TOTAL = FEATURE_NAMES.index("tokens_total")


@dataclass(frozen=True)
class Evidence:
    """Per-record arrays of one set of labeled records."""

    labels: np.ndarray  # (n,) reference tier index
    sources: np.ndarray  # (n,) source name
    scores: np.ndarray  # (n, 3) realised tier scores, missing tiers filled by escalation
    costs: np.ndarray  # (n, 3) USD of serving the request on each tier

    def subset(self, mask: np.ndarray) -> Evidence:
        return Evidence(self.labels[mask], self.sources[mask], self.scores[mask], self.costs[mask])


def gather_evidence(
    records: Sequence[TrafficRecord],
    labels: np.ndarray,
    features: np.ndarray,
    representatives: TierRepresentatives,
    tier_prices: Mapping[str, tuple[float, float]],
    assumed_output_tokens: int,
) -> Evidence:
    """Evidence of labeled ``records``; input tokens come from the feature row (o200k count)."""
    raw = np.full((len(records), len(TIERS)), np.nan)
    for i, record in enumerate(records):
        for tier, score in representatives.tier_scores(record).items():
            raw[i, TIERS.index(tier)] = score
        if record.tier is not None and np.isnan(raw[i]).all():
            # A direct label carries no outcome: its tier and above pass, below fail.
            raw[i] = (np.arange(len(TIERS)) >= TIERS.index(record.tier)).astype(float)
    input_tokens = features[:, _TOKENS_TOTAL].astype(np.float64)
    output_tokens = np.full(len(records), float(assumed_output_tokens))
    prices = np.array([tier_prices[t] for t in TIERS], dtype=np.float64)
    # A tier the record has no evidence for is served (scored and paid) by the tier that stands in
    # for it (metrics.serving_tiers), the same accounting as `router-ml eval`: a router earns no
    # stronger tier's score at a cheaper tier's price.
    serving = m.serving_tiers(raw)
    rows = np.arange(len(records))[:, None]
    return Evidence(
        labels=np.asarray(labels, dtype=np.int64),
        sources=np.array([r.source for r in records]),
        scores=raw[rows, serving],
        costs=m.request_costs(input_tokens, output_tokens, prices)[rows, serving],
    )


def routing_summary(evidence: Evidence, chosen: np.ndarray) -> dict[str, float]:
    """What a set of tier choices achieved on these records."""
    shares = m.tier_shares(chosen)
    return {
        "n": int(evidence.labels.size),
        "accuracy": m.tier_accuracy(evidence.labels, chosen),
        "under_routing": m.under_routing_rate(evidence.labels, chosen),
        "over_routing": m.over_routing_rate(evidence.labels, chosen),
        "economy_share": float(shares[0]),
        "standard_share": float(shares[1]),
        "premium_share": float(shares[2]),
        "cost_vs_premium": m.cost_relative(evidence.costs, chosen),
        "quality_kept": _quality_kept(evidence.scores, chosen),
    }


def _quality_kept(scores: np.ndarray, chosen: np.ndarray) -> float:
    try:
        return m.quality_kept(scores, chosen)
    except ValueError:  # premium scores zero on every record: nothing to keep
        return float("nan")


def assess(
    evidence: Evidence,
    risks: np.ndarray,
    thresholds: Sequence[float],
    bootstrap_resamples: int = 0,
) -> dict[str, Any]:
    """Pooled and per-source metrics of calibrated ``risks`` routed with ``thresholds``.

    With ``bootstrap_resamples`` each slice also gets ``ci95``: 95% percentile-bootstrap
    intervals of its headline routing figures (:data:`INTERVAL_FIGURES`).
    """
    chosen = choose_tiers(risks, thresholds)
    result = {"pooled": _assess_group(evidence, risks, chosen, bootstrap_resamples)}
    result["per_source"] = {
        source: _assess_group(
            evidence.subset(evidence.sources == source),
            risks[evidence.sources == source],
            chosen[evidence.sources == source],
            bootstrap_resamples,
        )
        for source in sorted(set(evidence.sources.tolist()))
    }
    return result


INTERVAL_FIGURES = ("under_routing", "cost_vs_premium", "quality_kept", "accuracy")
"""The figures that get bootstrap intervals: what a reader decides on."""


def _intervals(evidence: Evidence, chosen: np.ndarray, n_resamples: int) -> dict[str, list[float]]:
    def figures(index: np.ndarray) -> dict[str, float]:
        summary = routing_summary(evidence.subset(index), chosen[index])
        return {name: summary[name] for name in INTERVAL_FIGURES}

    intervals = bootstrap_intervals(figures, len(chosen), n_resamples)
    return {name: list(bounds) for name, bounds in intervals.items()}


def _assess_group(
    evidence: Evidence, risks: np.ndarray, chosen: np.ndarray, bootstrap_resamples: int = 0
) -> dict[str, Any]:
    labels = evidence.labels
    summary = routing_summary(evidence, chosen)
    if bootstrap_resamples and len(chosen):
        summary["ci95"] = _intervals(evidence, chosen, bootstrap_resamples)
    summary["majority_accuracy"] = m.majority_class_accuracy(labels)
    # The accuracy-optimal choice (most probable tier), next to the escalation-biased one.
    summary["argmax_accuracy"] = m.tier_accuracy(labels, risks_to_probabilities(risks).argmax(1))
    summary["label_shares"] = {t: float(np.mean(labels == k)) for k, t in enumerate(TIERS)}
    below_premium = summary["economy_share"] + summary["standard_share"]
    summary["below_premium_share"] = below_premium
    summary.update(random_baselines(labels, summary["under_routing"]))
    summary["below_premium_vs_random"] = _ratio(
        below_premium, summary["random_below_premium_share"]
    )
    summary["economy_vs_random"] = _ratio(summary["economy_share"], summary["random_economy_share"])
    curve = m.call_performance_curve(evidence.scores[:, 2], evidence.scores[:, 0], risks[:, 0])
    summary["apgr"] = m.apgr(curve)
    summary["auc_needs_above_economy"] = m.roc_auc(risks[:, 0], labels > 0)
    summary["ece"] = {
        "needs_above_economy": m.expected_calibration_error(risks[:, 0], labels > 0),
        "needs_above_standard": m.expected_calibration_error(risks[:, 1], labels > 1),
        "tier": m.expected_calibration_error(risks_to_probabilities(risks), labels),
    }
    return summary


def random_baselines(labels: np.ndarray, under_routing: float) -> dict[str, float]:
    """Shares that request-blind random routers reach at the same under-routing.

    A random router sending a share q to tier j under-routes q·P(label > j). The economy baseline
    mixes economy and premium; the below-premium baseline is the best random mix of all tiers:
    standard risks least per request sent below premium, so it gets UR / P(label > standard).
    """
    above_economy = float(np.mean(labels > 0))
    above_standard = float(np.mean(labels > 1))
    economy = 1.0 if above_economy == 0 else min(1.0, under_routing / above_economy)
    below = 1.0 if above_standard == 0 else min(1.0, under_routing / above_standard)
    return {"random_economy_share": economy, "random_below_premium_share": below}


def _ratio(a: float, b: float) -> float:
    return a / b if b > 0 else (math.inf if a > 0 else float("nan"))
