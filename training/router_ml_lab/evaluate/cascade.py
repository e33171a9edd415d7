"""What a cascade would cost on labeled traffic: try the cheap tier, escalate when it fails.

A cascade (``cascade: [economy, premium]`` in a policy) pays for every tier it tries: one call
when the cheap answer passes its gate, two when it does not. The labels say whether a tier's
answer was good enough (a record's label is the cheapest tier that answers within tolerance of
the best), so on labeled traffic the cascade's cost and quality can be computed exactly for a
gate that catches every bad answer, and in expectation for a gate that catches only a share of
them (``gate_recall``): a bad answer the gate misses is served as is, which is under-routing.

A real gate's recall is far below 1 on free text (structural gates only see broken JSON, bad
tool calls, truncation, empty answers and refusals), so the recall-1 row is a lower bound on
cost and an upper bound on quality, not a forecast.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from router_ml.tiers import TIERS, tier_rank
from router_ml_lab.quality.metrics import fill_missing_tier_scores, serving_tiers

CASCADES: tuple[tuple[str, ...], ...] = (("economy", "premium"), ("economy", "standard", "premium"))
GATE_RECALLS = (1.0, 0.75, 0.5)


def cascade_outcome(
    labels: np.ndarray,
    costs: np.ndarray,
    scores: np.ndarray,
    cascade: Sequence[str],
    gate_recall: float = 1.0,
) -> dict[str, Any]:
    """Expected cost, quality, under-routing and calls of a cascade over labeled records.

    Parameters
    ----------
    labels : (n,) int
        Reference tier index per record (the cheapest tier that is good enough).
    costs : (n, n_tiers)
        Cost of each tier on each record.
    scores : (n, n_tiers)
        Realised outcome per tier, NaN where the record has no model of that tier: such a tier
        is served by its serving tier (``metrics.serving_tiers``), and a cascade step that would
        call the same serving tier as the step before makes no second call.
    cascade : tiers, cheapest first
    gate_recall : float in [0, 1]
        Probability that the gate rejects an answer from a tier below the label.
    """
    if not 0.0 <= gate_recall <= 1.0:
        raise ValueError("gate_recall must be in [0, 1]")
    ranks = [tier_rank(t) for t in cascade]
    if len(ranks) < 2 or ranks != sorted(set(ranks)):
        raise ValueError("a cascade lists two or more distinct tiers, cheapest first")
    labels = np.asarray(labels, dtype=np.int64)
    costs = np.asarray(costs, dtype=np.float64)
    serving = serving_tiers(scores)
    filled = fill_missing_tier_scores(scores)
    n = len(labels)
    cost = np.zeros(n)
    quality = np.zeros(n)
    under = np.zeros(n)
    calls = np.zeros(n)
    served = np.zeros((n, len(TIERS)))
    for i in range(n):
        steps = list(dict.fromkeys(int(serving[i, rank]) for rank in ranks))
        reach = 1.0
        for k, tier in enumerate(steps):
            cost[i] += reach * costs[i, tier]
            calls[i] += reach
            bad = labels[i] > tier
            escalate = gate_recall if bad and k < len(steps) - 1 else 0.0
            stays = reach * (1.0 - escalate)
            quality[i] += stays * filled[i, tier]
            under[i] += stays * bad
            served[i, tier] += stays
            reach *= escalate
    premium_cost = float(costs[np.arange(n), serving[:, -1]].sum())
    premium_quality = float(filled[:, -1].mean())
    return {
        "cascade": list(cascade),
        "gate_recall": gate_recall,
        "n": n,
        "cost_relative": float(cost.sum() / premium_cost) if premium_cost > 0 else float("nan"),
        "quality_kept": float(quality.mean() / premium_quality)
        if premium_quality > 0
        else float("nan"),
        "under_routing": float(under.mean()),
        "calls_per_request": float(calls.mean()),
        "served_shares": dict(zip(TIERS, served.mean(axis=0).tolist(), strict=True)),
    }


def cascade_report(
    labels: np.ndarray,
    costs: np.ndarray,
    scores: np.ndarray,
    cascades: Sequence[Sequence[str]] = CASCADES,
    recalls: Sequence[float] = GATE_RECALLS,
) -> list[dict[str, Any]]:
    """:func:`cascade_outcome` for every cascade and gate recall (rows of the report table)."""
    return [
        cascade_outcome(labels, costs, scores, cascade, recall)
        for cascade in cascades
        for recall in recalls
    ]


def cascade_markdown(rows: Sequence[dict[str, Any]]) -> list[str]:
    """The report section: one table row per cascade and gate recall."""
    if not rows:
        return []
    lines = [
        "## Cascade (try cheap, gate, escalate)",
        "",
        "What a cascade policy would cost on these labeled records: every tier tried is paid "
        "(one call when the cheap answer passes, two when it does not). A tier's answer is "
        "good when the record's label is that tier or cheaper. *Gate recall* is the share of "
        "bad answers the gate catches; at 1.0 the gate is perfect (a bound, not a forecast: "
        "structural gates see only broken JSON, bad tool calls, truncation, empty answers and "
        "refusals), below it missed bad answers are served (under-routing).",
        "",
        "| cascade | gate recall | cost vs premium | quality kept | under-routing "
        "| calls / request |",
        "|---|---:|---:|---:|---:|---:|",
    ]
    for row in rows:
        lines.append(
            f"| {' → '.join(row['cascade'])} | {row['gate_recall']:.2f} "
            f"| {row['cost_relative']:.1%} | {row['quality_kept']:.1%} "
            f"| {row['under_routing']:.1%} | {row['calls_per_request']:.2f} |"
        )
    lines.append("")
    return lines
