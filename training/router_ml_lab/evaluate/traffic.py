"""What labeled traffic looks like before any routing: "measure before you route".

Per source: how many records, which categories, how the labels split over the tiers, how long
the prompts are, and which share of the all-premium bill it would cause. A router only pays off
where traffic is both expensive and often answerable by a cheaper tier; this table shows where.
"""

from __future__ import annotations

from collections import Counter
from typing import Any

import numpy as np

from router_ml.tiers import TIERS
from router_ml_lab.quality.evidence import Evidence
from router_ml_lab.quality.metrics import tier_shares


def traffic_summary(eval_set: Evidence, top_categories: int = 3) -> list[dict[str, Any]]:
    """One row per source plus a ``pooled`` row, sorted by all-premium spend (largest first)."""
    total_premium = float(eval_set.costs[:, -1].sum())
    rows = []
    for source in sorted(set(eval_set.sources)):
        rows.append(
            _row(source, eval_set.subset(eval_set.sources == source), total_premium, top_categories)
        )
    rows.sort(key=lambda row: -row["premium_spend_share"])
    rows.append(_row("pooled", eval_set, total_premium, top_categories))
    return rows


def _row(name: str, subset: Evidence, total_premium: float, top: int) -> dict[str, Any]:
    categories = Counter(subset.categories.tolist())
    shares = tier_shares(subset.labels)
    premium_spend = float(subset.costs[:, -1].sum())
    return {
        "source": name,
        "records": len(subset),
        "categories": len(categories),
        "top_categories": [c for c, _ in categories.most_common(top)],
        **{f"label_{tier}": float(share) for tier, share in zip(TIERS, shares, strict=True)},
        "input_tokens_median": float(np.median(subset.input_tokens)),
        "input_tokens_p90": float(np.percentile(subset.input_tokens, 90)),
        "premium_spend_usd": premium_spend,
        "premium_spend_share": premium_spend / total_premium if total_premium else 0.0,
        "oracle_cost_relative": float(
            subset.costs[np.arange(len(subset)), subset.labels].sum() / premium_spend
        )
        if premium_spend
        else 0.0,
    }


def markdown_table(rows: list[dict[str, Any]]) -> str:
    """The summary as a Markdown table (for notebooks and reports)."""
    lines = [
        "| source | records | economy | standard | premium | median input tokens | p90 "
        "| share of all-premium spend | cost if routed by label |",
        "|---|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for row in rows:
        lines.append(
            f"| {row['source']} | {row['records']} | {row['label_economy']:.0%} "
            f"| {row['label_standard']:.0%} | {row['label_premium']:.0%} "
            f"| {row['input_tokens_median']:.0f} | {row['input_tokens_p90']:.0f} "
            f"| {row['premium_spend_share']:.0%} | {row['oracle_cost_relative']:.0%} |"
        )
    return "\n".join(lines)
