"""Route an evaluation set with every router and compute all metrics, pooled and per source.

The result is a plain dict (JSON-ready): ``report.py`` renders it, ``plots.py`` draws it, and the
notebooks read it. Every router's figures are the shared
:func:`router_ml_lab.quality.summary.routing_summary` (the model card's too): outcome metrics
score and price a tier without evidence as the tier that serves it; RouteLLM's economy-vs-premium
metrics use only the records where both tiers realised an outcome, so nothing there is imputed.
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
from router_ml_lab.quality.evidence import Evidence, noise_reference
from router_ml_lab.quality.kinds import KINDS, traffic_kinds
from router_ml_lab.quality.summary import grouped_summaries, routellm_metrics, routing_summary

ACCURACY_TARGET = 0.90


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


def run_router(router: TierRouter, eval_set: Evidence, kind: str) -> RouterRun:
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


def cost_quality(eval_set: Evidence, run: RouterRun) -> dict[str, Any]:
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
    eval_set: Evidence,
    runs: Sequence[RouterRun],
    context: dict[str, Any],
    skipped: dict[str, str] | None = None,
    kinds: np.ndarray | None = None,
) -> dict[str, Any]:
    """Every metric for every router, pooled and per source, plus the label-noise reference.

    ``kinds``: the traffic kind of each record (None: read from its request).
    """
    sources = sorted(set(eval_set.sources))
    kinds = request_kinds(eval_set) if kinds is None else kinds
    routers = []
    with Progress(len(runs), "metrics") as bar:
        for run in runs:
            escalation = run.escalation if run.escalation is not None else run.chosen.astype(float)
            per_source = grouped_summaries(eval_set, run.chosen, run.escalation, eval_set.sources)
            routers.append(
                {
                    "name": run.name,
                    "kind": run.kind,
                    "description": run.description,
                    "pooled": routing_summary(eval_set, run.chosen, run.escalation),
                    "per_source": per_source,
                    "per_kind": _per_kind(eval_set, run.chosen, escalation, kinds),
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


def request_kinds(eval_set: Evidence) -> np.ndarray:
    """The traffic kind of every record (``router_ml_lab.quality.kinds``), from its features."""
    from router_ml.features import FeatureExtractor

    features = FeatureExtractor().extract_many(eval_set.requests)
    return traffic_kinds(eval_set.sources, features)


def _per_kind(
    eval_set: Evidence, chosen: np.ndarray, escalation: np.ndarray, kinds: np.ndarray
) -> dict[str, Any]:
    """Routing summary and economy-vs-premium APGR per traffic kind."""
    result = {}
    for kind in KINDS:
        mask = kinds == kind
        if not mask.any():
            continue
        summary = routing_summary(eval_set.subset(mask), chosen[mask])
        routellm = routellm_metrics(eval_set.subset(mask), escalation[mask])
        summary["apgr"] = routellm["apgr"] if routellm else float("nan")
        result[kind] = summary
    return result


def _label_shares(eval_set: Evidence, sources: Sequence[str]) -> dict[str, dict[str, float]]:
    shares = {"pooled": dict(zip(TIERS, m.tier_shares(eval_set.labels).tolist(), strict=True))}
    for source in sources:
        labels = eval_set.labels[eval_set.sources == source]
        shares[source] = dict(zip(TIERS, m.tier_shares(labels).tolist(), strict=True))
    return shares
