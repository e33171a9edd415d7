"""Route an evaluation set with every router and compute all metrics, pooled and per source.

The result is a plain dict (JSON-ready): ``report.py`` renders it, ``plots.py`` draws it, and the
notebooks read it. Outcome metrics use the per-tier scores with missing tiers imputed
(``metrics.fill_missing_tier_scores``); RouteLLM's economy-vs-premium metrics use only the records
where both tiers really ran, so nothing there is imputed.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from router_ml.progress import Progress
from router_ml.tiers import TIERS
from router_ml_lab.evaluate.baselines import TierRouter
from router_ml_lab.evaluate.cascade import cascade_report
from router_ml_lab.quality import metrics as m
from router_ml_lab.quality.evidence import EvalSet, noise_reference

ACCURACY_TARGET = 0.90
CURVE_POINTS = 101
"""Points of the call–performance curve kept in the report (the metrics use the full curve)."""


@dataclass
class RouterRun:
    """What one router did on the evaluation set."""

    name: str
    kind: str
    """``ours``, ``baseline``, ``peer`` or ``reference`` (oracle)."""
    description: str
    chosen: np.ndarray
    escalation: np.ndarray | None
    sweep: np.ndarray | None
    seconds: float


def run_router(router: TierRouter, eval_set: EvalSet, kind: str) -> RouterRun:
    """Route every request of ``eval_set`` (in batches) and collect its sweep and scores."""
    requests = list(eval_set.requests)
    start = time.perf_counter()
    chosen = (
        np.concatenate(
            [router.route_batch(requests[i : i + 512]) for i in range(0, len(requests), 512)]
        )
        if requests
        else np.zeros(0, dtype=np.int64)
    )
    seconds = time.perf_counter() - start
    return RouterRun(
        name=router.name,
        kind=kind,
        description=router.description,
        chosen=np.asarray(chosen, dtype=np.int64),
        escalation=router.escalation_scores(requests),
        sweep=router.sweep(requests),
        seconds=seconds,
    )


def routing_summary(eval_set: EvalSet, chosen: np.ndarray) -> dict[str, Any]:
    """Agreement with the label and what the traffic would get and pay."""
    labels = eval_set.labels
    scores = eval_set.filled_scores  # computed once: it is a property
    return {
        "n": len(labels),
        "accuracy": m.tier_accuracy(labels, chosen),
        "majority_accuracy": m.majority_class_accuracy(labels),
        "macro_f1": m.macro_f1(labels, chosen),
        "under_routing": m.under_routing_rate(labels, chosen),
        "over_routing": m.over_routing_rate(labels, chosen),
        "quality_kept": _or_nan(m.quality_kept, scores, chosen),
        "cost_relative": m.cost_relative(eval_set.serving_costs, chosen),
        "tier_shares": dict(zip(TIERS, m.tier_shares(chosen).tolist(), strict=True)),
        "confusion": m.confusion_matrix(labels, chosen).tolist(),
    }


def routellm_metrics(eval_set: EvalSet, escalation: np.ndarray) -> dict[str, Any] | None:
    """Economy vs premium on the records where both ran: curve, APGR, CPT(50%), CPT(80%)."""
    both = ~np.isnan(eval_set.scores[:, 0]) & ~np.isnan(eval_set.scores[:, -1])
    if not both.any():
        return None
    curve = m.call_performance_curve(
        eval_set.scores[both, -1], eval_set.scores[both, 0], escalation[both]
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


def cost_quality(eval_set: EvalSet, run: RouterRun) -> dict[str, Any]:
    """The router's (relative cost, quality kept) point, and its hull and AIQ when it sweeps.

    A sweep is closed with the all-economy and all-premium points (any threshold router reaches
    both), and AIQ is taken over the shared range from all-economy cost to all-premium cost.
    """
    scores, costs_per_tier = eval_set.filled_scores, eval_set.serving_costs
    n = len(eval_set)
    point = (m.cost_relative(costs_per_tier, run.chosen), m.quality_kept(scores, run.chosen))
    result: dict[str, Any] = {"point": list(point), "hull": None, "aiq": None}
    if run.sweep is None:
        return result
    anchors = np.stack([np.zeros(n, dtype=np.int64), np.full(n, len(TIERS) - 1)])
    choices = np.concatenate([run.sweep, anchors])
    costs = np.array([m.cost_relative(costs_per_tier, c) for c in choices])
    quality = np.array([m.quality_kept(scores, c) for c in choices])
    hull_c, hull_q = m.nondecreasing_convex_hull(costs, quality)
    result["hull"] = {"cost": hull_c.tolist(), "quality": hull_q.tolist()}
    result["aiq"] = m.aiq(costs, quality, cost_range=(float(costs[-2]), 1.0))
    return result


def evaluate(
    eval_set: EvalSet,
    runs: Sequence[RouterRun],
    context: dict[str, Any],
    skipped: dict[str, str] | None = None,
) -> dict[str, Any]:
    """Every metric for every router, pooled and per source, plus the label-noise reference."""
    sources = sorted(set(eval_set.sources))
    routers = []
    with Progress(len(runs), "metrics") as bar:
        for run in runs:
            escalation = run.escalation if run.escalation is not None else run.chosen.astype(float)
            per_source = {
                source: routing_summary(
                    eval_set.subset(eval_set.sources == source),
                    run.chosen[eval_set.sources == source],
                )
                for source in sources
            }
            routers.append(
                {
                    "name": run.name,
                    "kind": run.kind,
                    "description": run.description,
                    "pooled": routing_summary(eval_set, run.chosen),
                    "per_source": per_source,
                    "routellm": routellm_metrics(eval_set, escalation),
                    "routellm_score": "continuous" if run.escalation is not None else "tier index",
                    "cost_quality": cost_quality(eval_set, run),
                    "route_seconds": run.seconds,
                }
            )
            bar.update()
    return {
        "context": context,
        "accuracy_target": ACCURACY_TARGET,
        "n_records": len(eval_set),
        "label_shares": _label_shares(eval_set, sources),
        "noise_reference": noise_reference(eval_set),
        "routers": routers,
        "cascade": cascade_report(eval_set.labels, eval_set.costs, eval_set.scores),
        "skipped": dict(skipped or {}),
    }


def _label_shares(eval_set: EvalSet, sources: Sequence[str]) -> dict[str, dict[str, float]]:
    shares = {"pooled": dict(zip(TIERS, m.tier_shares(eval_set.labels).tolist(), strict=True))}
    for source in sources:
        labels = eval_set.labels[eval_set.sources == source]
        shares[source] = dict(zip(TIERS, m.tier_shares(labels).tolist(), strict=True))
    return shares


def _or_nan(metric: Any, *args: Any) -> float:
    """The metric, or NaN where it is undefined (e.g. premium scores zero on a tiny subset)."""
    try:
        return float(metric(*args))
    except ValueError:
        return float("nan")
