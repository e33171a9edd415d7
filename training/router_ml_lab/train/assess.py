"""Routing quality of a model on a split, pooled and per source, for the model card.

The routing figures (accuracy, under-routing, cost vs premium, quality kept, APGR) are the shared
:func:`router_ml_lab.quality.summary.routing_summary` on the shared evidence set, so the card and
``router-ml eval`` print the same numbers for the same model and split. This module adds what only
a model has: calibration (ECE, AUC of the economy risk), the accuracy-optimal choice, and the
baselines a number must be read against (majority class, the best random router at the same
under-routing).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import numpy as np

from router_ml.calibration import choose_tiers, risks_to_probabilities
from router_ml.tiers import TIERS
from router_ml_lab.quality import metrics as m
from router_ml_lab.quality.evidence import Evidence
from router_ml_lab.quality.summary import grouped_summaries, routing_summary
from router_ml_lab.quality.uncertainty import bootstrap_intervals


def assess(
    evidence: Evidence,
    risks: np.ndarray,
    thresholds: Sequence[float],
    bootstrap_resamples: int = 0,
    kinds: np.ndarray | None = None,
) -> dict[str, Any]:
    """Pooled, per-source and (given ``kinds``) per-traffic-kind metrics of routed ``risks``.

    With ``bootstrap_resamples`` each slice also gets ``ci95``: 95% percentile-bootstrap
    intervals of its headline routing figures (:data:`INTERVAL_FIGURES`).
    """
    chosen = choose_tiers(risks, thresholds)

    def group(part: Evidence, part_chosen: np.ndarray, part_risks: np.ndarray) -> dict[str, Any]:
        return _assess_group(part, part_chosen, part_risks, bootstrap_resamples)

    return {
        "pooled": group(evidence, chosen, risks),
        "per_source": grouped_summaries(evidence, chosen, risks, evidence.sources, group),
        **(
            {"per_kind": grouped_summaries(evidence, chosen, risks, kinds, _without_intervals)}
            if kinds is not None
            else {}
        ),
    }


def _without_intervals(part: Evidence, part_chosen: np.ndarray, part_risks: np.ndarray) -> dict:
    return _assess_group(part, part_chosen, part_risks, 0)


INTERVAL_FIGURES = ("under_routing", "cost_vs_premium", "quality_kept", "accuracy")
"""The figures that get bootstrap intervals: what a reader decides on."""


def _intervals(evidence: Evidence, chosen: np.ndarray, n_resamples: int) -> dict[str, list[float]]:
    def figures(index: np.ndarray) -> dict[str, float]:
        summary = routing_summary(evidence.subset(index), chosen[index])
        return {name: summary[name] for name in INTERVAL_FIGURES}

    intervals = bootstrap_intervals(figures, len(chosen), n_resamples)
    return {name: list(bounds) for name, bounds in intervals.items()}


def _assess_group(
    evidence: Evidence, chosen: np.ndarray, risks: np.ndarray, bootstrap_resamples: int = 0
) -> dict[str, Any]:
    labels = evidence.labels
    # APGR sweeps P(needs more than economy), the score the runtime's LearnedRouter reports.
    summary = routing_summary(evidence, chosen, risks[:, 0])
    if bootstrap_resamples and len(chosen):
        summary["ci95"] = _intervals(evidence, chosen, bootstrap_resamples)
    # The accuracy-optimal choice (most probable tier), next to the escalation-biased one.
    summary["argmax_accuracy"] = m.tier_accuracy(labels, risks_to_probabilities(risks).argmax(1))
    summary["label_shares"] = {t: float(np.mean(labels == k)) for k, t in enumerate(TIERS)}
    shares = summary["tier_shares"]
    below_premium = shares["economy"] + shares["standard"]
    summary["below_premium_share"] = below_premium
    summary.update(random_baselines(labels, summary["under_routing"]))
    summary["below_premium_vs_random"] = _ratio(
        below_premium, summary["random_below_premium_share"]
    )
    summary["economy_vs_random"] = _ratio(shares["economy"], summary["random_economy_share"])
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
