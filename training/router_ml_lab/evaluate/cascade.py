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

CASCADES: tuple[tuple[str, ...], ...] = (("economy", "premium"), ("economy", "standard", "premium"))
GATE_RECALLS = (1.0, 0.75, 0.5)


def cascade_outcome(
    labels: np.ndarray,
    serving_costs: np.ndarray,
    filled_scores: np.ndarray,
    cascade: Sequence[str],
    gate_recall: float = 1.0,
) -> dict[str, Any]:
    """Expected cost, quality, under-routing and calls of a cascade over labeled records.

    Parameters
    ----------
    labels : (n,) int
        Reference tier index per record (the cheapest tier that is good enough).
    serving_costs, filled_scores : (n, n_tiers)
        Cost and realised outcome of each tier on each record (``EvalSet`` properties).
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
    n = len(labels)
    rows = np.arange(n)
    reach = np.ones(n)  # probability the cascade gets to the current step
    cost = np.zeros(n)
    quality = np.zeros(n)
    under = np.zeros(n)
    calls = np.zeros(n)
    served = np.zeros((n, len(TIERS)))
    for step, rank in enumerate(ranks):
        cost += reach * serving_costs[rows, rank]
        calls += reach
        last = step == len(ranks) - 1
        bad = labels > rank
        escalate = np.where(bad, 0.0 if last else gate_recall, 0.0)
        stays = reach * (1.0 - escalate)
        quality += stays * filled_scores[rows, rank]
        under += stays * bad
        served[:, rank] += stays
        reach = reach * escalate
    premium_cost = float(serving_costs[:, -1].sum())
    premium_quality = float(filled_scores[:, -1].mean())
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
    serving_costs: np.ndarray,
    filled_scores: np.ndarray,
    cascades: Sequence[Sequence[str]] = CASCADES,
    recalls: Sequence[float] = GATE_RECALLS,
) -> list[dict[str, Any]]:
    """:func:`cascade_outcome` for every cascade and gate recall (rows of the report table)."""
    return [
        cascade_outcome(labels, serving_costs, filled_scores, cascade, recall)
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
