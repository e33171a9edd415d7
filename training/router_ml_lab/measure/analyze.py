"""``router-ml analyze``: what the traffic is, what it costs, and what routing would save.

From the scanned arrays (:mod:`~router_ml_lab.measure.scan`): traffic by request type (volume,
tokens, share of the bill), the tier mix under the current policy and under each stored
operating point, and the spend of the window and per month before (everything on premium, what
a team pays without a router) and after. Prices come from one ``router_ml.pricing.PriceCatalog``:
a tier costs its model's list price when the catalog lists the policy's model, else the tier
price.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import numpy as np

from router_ml.calibration import choose_tiers
from router_ml.pricing import PriceCatalog, request_costs
from router_ml.router import Router
from router_ml.tiers import TIERS
from router_ml_lab.measure.request_types import REQUEST_TYPES, request_types
from router_ml_lab.measure.scan import PartitionScan

DAYS_PER_MONTH = 30.0
ALL_PREMIUM = "all premium (no router)"
CURRENT = "current policy"


@dataclass(frozen=True)
class Window:
    """How many days of traffic the input holds, and how that was decided."""

    days: float
    basis: str


def traffic_window(scan: PartitionScan, window_days: float | None) -> Window:
    """``window_days`` if given, else the span of the logged timestamps, else one day (said)."""
    if window_days is not None:
        if not (math.isfinite(window_days) and window_days > 0):
            raise ValueError(f"--window-days must be positive, got {window_days}")
        return Window(window_days, "given with --window-days")
    times = scan.times[np.isfinite(scan.times)]
    if len(times) >= 2 and times.max() - times.min() >= 3600:
        return Window(float(times.max() - times.min()) / 86400, "span of the logged timestamps")
    return Window(1.0, "assumed one day (no timestamps; pass --window-days)")


def scenario_tiers(scan: PartitionScan, router: Router) -> dict[str, np.ndarray]:
    """Tier index per request under each scenario: all premium, current policy, each point."""
    scenarios = {ALL_PREMIUM: np.full(len(scan), len(TIERS) - 1, dtype=np.int64)}
    scenarios[CURRENT] = scan.tiers
    for name, point in sorted(router.model.operating_points.items()):
        tiers = scan.tiers.copy()
        if scan.auto.any():
            chosen = choose_tiers(scan.risks[scan.auto], point.thresholds)
            tiers[scan.auto] = np.maximum(chosen, scan.floors[scan.auto])
        scenarios[f"operating point {name}"] = tiers
    return scenarios


def analyze(
    scan: PartitionScan,
    router: Router,
    catalog: PriceCatalog,
    window_days: float | None = None,
) -> dict[str, Any]:
    """The analysis as plain data (JSON-ready); see :func:`report.markdown` for its reading."""
    if not len(scan):
        raise ValueError("no usable requests in the input")
    costs = request_costs(
        scan.input_tokens, scan.output_tokens, catalog.tier_price_matrix(router.tiers)
    )
    rows = np.arange(len(scan))
    window = traffic_window(scan, window_days)
    per_month = DAYS_PER_MONTH / window.days
    types = request_types(scan.features)
    scenarios = scenario_tiers(scan, router)
    current_cost = costs[rows, scan.tiers]
    premium_cost = costs[:, -1]
    total_premium = float(premium_cost.sum())
    total_current = float(current_cost.sum())

    by_type = []
    for index, name in enumerate(REQUEST_TYPES):
        mask = types == index
        n = int(mask.sum())
        if not n:
            continue
        shares = np.bincount(scan.tiers[mask], minlength=len(TIERS)) / n
        by_type.append(
            {
                "type": name,
                "requests": n,
                "request_share": n / len(scan),
                "input_tokens": float(scan.input_tokens[mask].sum()),
                "output_tokens": float(scan.output_tokens[mask].sum()),
                "median_input_tokens": float(np.median(scan.input_tokens[mask])),
                "premium_cost_usd": float(premium_cost[mask].sum()),
                "bill_share": float(premium_cost[mask].sum()) / total_premium,
                "routed_cost_usd": float(current_cost[mask].sum()),
                "routed_bill_share": float(current_cost[mask].sum()) / total_current
                if total_current
                else 0.0,
                "tier_mix": dict(zip(TIERS, shares.tolist(), strict=True)),
            }
        )
    by_type.sort(key=lambda row: -row["premium_cost_usd"])

    scenario_rows = []
    for name, tiers in scenarios.items():
        cost = float(costs[rows, tiers].sum())
        point = router.model.operating_points.get(name.removeprefix("operating point "))
        scenario_rows.append(
            {
                "scenario": name,
                "tier_mix": dict(
                    zip(
                        TIERS,
                        (np.bincount(tiers, minlength=len(TIERS)) / len(scan)).tolist(),
                        strict=True,
                    )
                ),
                "window_cost_usd": cost,
                "monthly_cost_usd": cost * per_month,
                "cost_vs_premium": cost / total_premium if total_premium else float("nan"),
                "validation_under_routing": None
                if point is None
                else point.validation.get("under_routing"),
                "validation_quality_kept": None
                if point is None
                else point.validation.get("quality_kept"),
            }
        )
    observed = _observed(scan, catalog, per_month)
    return {
        "requests": len(scan),
        "partitions": scan.partitions,
        "bad_lines": scan.issues.bad,
        "bad_line_examples": scan.issues.examples,
        "input_tokens": float(scan.input_tokens.sum()),
        "output_tokens": float(scan.output_tokens.sum()),
        "window_days": window.days,
        "window_basis": window.basis,
        "operating_point": router.operating_point.name,
        "policy": router.policy.source,
        "tier_models": dict(router.tiers),
        "tier_prices": {
            t: list(p)
            for t, p in zip(TIERS, catalog.tier_price_matrix(router.tiers).tolist(), strict=True)
        },
        "catalog": catalog.source,
        "rule_decided_share": float((~scan.auto).mean()),
        "by_type": by_type,
        "scenarios": scenario_rows,
        "observed": observed,
    }


def _observed(scan: PartitionScan, catalog: PriceCatalog, per_month: float) -> dict[str, Any]:
    """What the logged requests actually cost, from the served model and the upstream's usage."""
    costs = [
        catalog.cost(model, tier, n_in, n_out)
        for model, tier, n_in, n_out in zip(
            scan.served_models,
            scan.served_tiers,
            scan.input_tokens,
            scan.output_tokens,
            strict=True,
        )
        if model is not None
    ]
    priced = [c for c in costs if c is not None]
    if not priced:
        return {}
    return {
        "served_requests": len(costs),
        "priced_requests": len(priced),
        "window_cost_usd": float(sum(priced)),
        "monthly_cost_usd": float(sum(priced)) * per_month,
    }
