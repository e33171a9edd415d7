"""How the router users run routes the same validation requests delivered three ways.

The labeled traffic is single-turn; real requests arrive wrapped by gateways (a generic system
prompt, ``max_tokens``, JSON mode, unrelated earlier turns: :mod:`.augment`) or as a conversation
whose last turn is a follow-up to material sent before (:mod:`router_ml_lab.quality.follow_up`).
Neither changes what the request asks for, so the labels stand, and the router should route them
alike. Measured with the written model's ``Router`` (default policy and operating point: coverage
rule, task table and thread reading included), unlike the model-only envelope check beside it.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from router_ml.calibration import choose_tiers
from router_ml.router import Router
from router_ml_lab.quality import metrics as m
from router_ml_lab.quality.evidence import Evidence
from router_ml_lab.quality.follow_up import follow_up_set
from router_ml_lab.quality.summary import routing_summary

DELIVERIES = ("as recorded", "in a gateway envelope", "as a follow-up")


def delivery_effect(
    router: Router, evidence: Evidence, enveloped: Sequence[dict[str, Any]]
) -> dict[str, dict[str, Any]]:
    """Per delivery: records changed, under-routing, economy share, cost, APGR and AUC.

    ``enveloped``: ``evidence``'s requests in a random envelope (``augment.augment_requests``),
    in the same order.
    """
    follow_ups, converted = follow_up_set(evidence)
    deliveries: Sequence[tuple[str, Sequence[dict[str, Any]], int]] = (
        (DELIVERIES[0], evidence.requests, 0),
        (DELIVERIES[1], enveloped, len(enveloped)),
        (DELIVERIES[2], follow_ups.requests, converted),
    )
    result = {}
    for name, requests, changed in deliveries:
        risks = router.risks(requests)
        summary = routing_summary(evidence, choose_tiers(risks, router.thresholds), risks[:, 0])
        result[name] = {
            "n": len(requests),
            "changed": changed,
            "under_routing": summary["under_routing"],
            "economy_share": summary["tier_shares"]["economy"],
            "cost_vs_premium": summary["cost_vs_premium"],
            "apgr": summary["apgr"],
            "auc_needs_above_economy": m.roc_auc(risks[:, 0], evidence.labels > 0),
        }
    return result
