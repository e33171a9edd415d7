"""The one routing summary: what a set of tier choices achieved on an evidence set.

The model card (``train``), ``router-ml eval`` (``evaluate``), the notebooks and the README all read
these keys, so a figure means the same thing wherever it is printed:

- ``accuracy``, ``majority_accuracy``, ``macro_f1``, ``under_routing``, ``over_routing``,
  ``tier_shares``, ``confusion``: agreement with the reference label;
- ``cost_vs_premium``: total cost of the choices over always-premium, and ``quality_kept``: mean
  realised score over always-premium's, both with the accounting of :mod:`.evidence` (a tier
  without evidence is scored and paid as the tier that serves it);
- ``apgr``: RouteLLM's average performance gap recovered, economy (weak) vs premium (strong),
  swept over the router's continuous escalation score, on the records where economy and premium
  *both* have a realised outcome (:func:`routellm_metrics`). Nothing on that curve is imputed or
  implied by a label, so the gap it recovers is a gap two real answers showed. ``None`` for a
  router without a continuous score.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np

from router_ml.tiers import TIERS
from router_ml_lab.quality import metrics as m
from router_ml_lab.quality.evidence import Evidence

CURVE_POINTS = 101
"""Points of the call–performance curve kept in a report (the metrics use the full curve)."""


def routing_summary(
    evidence: Evidence, chosen: np.ndarray, escalation: np.ndarray | None = None
) -> dict[str, Any]:
    """Agreement with the label, what the traffic would get and pay, and APGR when scorable."""
    labels = evidence.labels
    chosen = np.asarray(chosen, dtype=np.int64)
    curve = routellm_metrics(evidence, escalation) if escalation is not None else None
    return {
        "n": int(labels.size),
        "accuracy": m.tier_accuracy(labels, chosen),
        "majority_accuracy": m.majority_class_accuracy(labels),
        "macro_f1": m.macro_f1(labels, chosen),
        "under_routing": m.under_routing_rate(labels, chosen),
        "over_routing": m.over_routing_rate(labels, chosen),
        "tier_shares": dict(zip(TIERS, m.tier_shares(chosen).tolist(), strict=True)),
        "cost_vs_premium": _or_nan(m.cost_relative, evidence.serving_costs, chosen),
        "quality_kept": _or_nan(m.quality_kept, evidence.filled_scores, chosen),
        "apgr": curve["apgr"] if curve is not None else None,
        "confusion": m.confusion_matrix(labels, chosen).tolist(),
    }


def grouped_summaries(
    evidence: Evidence,
    chosen: np.ndarray,
    escalation: np.ndarray | None,
    groups: np.ndarray,
    summarise: Callable[..., dict[str, Any]] = routing_summary,
) -> dict[str, dict[str, Any]]:
    """``summarise`` per value of ``groups`` (``evidence.sources`` or ``evidence.categories``)."""
    result = {}
    for group in sorted(set(groups.tolist())):
        mask = groups == group
        result[str(group)] = summarise(
            evidence.subset(mask),
            np.asarray(chosen)[mask],
            None if escalation is None else np.asarray(escalation)[mask],
        )
    return result


def routellm_metrics(evidence: Evidence, escalation: np.ndarray) -> dict[str, Any] | None:
    """Economy vs premium where both realised an outcome: curve, APGR, CPT(50%), CPT(80%)."""
    both = evidence.realised[:, 0] & evidence.realised[:, -1]
    if not both.any():
        return None
    escalation = np.asarray(escalation, dtype=np.float64)
    curve = m.call_performance_curve(
        evidence.scores[both, -1], evidence.scores[both, 0], escalation[both]
    )
    grid = np.linspace(0, 1, CURVE_POINTS)
    return {
        "n": int(both.sum()),
        "weak_performance": curve.weak_performance,
        "strong_performance": curve.strong_performance,
        "apgr": m.apgr(curve),
        "cpt50": m.cpt(curve, 0.5),
        "cpt80": m.cpt(curve, 0.8),
        "curve": {
            "strong_share": grid.tolist(),
            "pgr": np.interp(grid, curve.strong_share, curve.pgr).tolist(),
        },
    }


def _or_nan(metric: Callable[..., float], *args: Any) -> float:
    """The metric, or NaN where it is undefined (e.g. premium scores zero on a tiny subset)."""
    try:
        return float(metric(*args))
    except ValueError:
        return float("nan")
