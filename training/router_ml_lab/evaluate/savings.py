"""What a model saves on a set of labeled traffic at each of its operating points.

"What will I save on my traffic, and at which operating point?" answered in money and in risk:
per operating point, the tier mix, the bill relative to sending everything to premium and in USD
per 1,000 requests at the catalog's tier prices, the quality kept and the share under-routed. The
model's risks are computed once and every operating point is applied to them, so comparing four
points costs one routing pass. Policy rules are not applied: this measures the model's thresholds.
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

import numpy as np

from router_ml.calibration import choose_tiers
from router_ml.tiers import TIERS
from router_ml_lab.quality.evidence import Evidence
from router_ml_lab.quality.summary import routing_summary

PER_REQUESTS = 1000
"""Absolute spend is reported per this many requests of the evaluated traffic mix."""
FEW_RECORDS = 1000
"""Below this many records, shares of a few percent move by points between samples: say so."""


@dataclass(frozen=True)
class Savings:
    """What one routing of an evaluation set costs and keeps, next to always-premium."""

    operating_point: str
    default: bool
    """Whether this is the operating point the model uses when none is named."""
    n: int
    tier_shares: dict[str, float]
    cost_vs_premium: float
    """Spend divided by always-premium's spend on the same records."""
    usd_per_1k: float
    premium_usd_per_1k: float
    quality_kept: float
    """Mean outcome of the serving tiers divided by always-premium's (NaN where undefined)."""
    under_routing: float
    """Share of records sent to a tier below their label."""

    @property
    def saved_share(self) -> float:
        return 1.0 - self.cost_vs_premium

    @property
    def saved_usd_per_1k(self) -> float:
        return self.premium_usd_per_1k - self.usd_per_1k


def savings(
    eval_set: Evidence, chosen: np.ndarray, operating_point: str = "", default: bool = False
) -> Savings:
    """Cost, quality kept and under-routing of the tier choices ``chosen`` on ``eval_set``."""
    chosen = np.asarray(chosen, dtype=np.int64)
    if chosen.shape != (len(eval_set),):
        raise ValueError(f"chosen must have shape ({len(eval_set)},), got {chosen.shape}")
    if not len(eval_set):
        raise ValueError("no labeled records: savings are undefined")
    costs = eval_set.serving_costs
    spent = costs[np.arange(len(chosen)), chosen]
    summary = routing_summary(eval_set, chosen)  # the one definition of cost, quality, shares
    return Savings(
        operating_point=operating_point,
        default=default,
        n=summary["n"],
        tier_shares=summary["tier_shares"],
        cost_vs_premium=summary["cost_vs_premium"],
        usd_per_1k=float(spent.mean() * PER_REQUESTS),
        premium_usd_per_1k=float(costs[:, -1].mean() * PER_REQUESTS),
        quality_kept=summary["quality_kept"],
        under_routing=summary["under_routing"],
    )


def operating_point_choices(
    eval_set: Evidence, model_dir: str | os.PathLike[str] | None = None
) -> dict[str, np.ndarray]:
    """Tier indices chosen for every record at each operating point the model stores.

    Ordered from the most cautious point (lowest under-routing target) to the cheapest.
    """
    from router_ml.router import Router

    router = Router.load(model_dir=model_dir)
    features = np.vstack([router.features(r) for r in eval_set.requests])
    points = sorted(
        router.model.operating_points.values(),
        key=lambda op: (op.target_under_routing is None, op.target_under_routing or 0.0),
    )
    # Risks per point: out-of-range requests are escalated relative to that point's thresholds.
    return {
        op.name: choose_tiers(router.risks_of_features(features, op.name), op.thresholds).astype(
            np.int64
        )
        for op in points
    }


def savings_by_operating_point(
    eval_set: Evidence, model_dir: str | os.PathLike[str] | None = None
) -> list[Savings]:
    """:func:`savings` at every operating point of the model, most cautious first."""
    from router_ml.model import TierModel

    default = TierModel.load(model_dir).default_operating_point.name
    choices = operating_point_choices(eval_set, model_dir)
    return [savings(eval_set, chosen, name, name == default) for name, chosen in choices.items()]


def savings_by_source(
    eval_set: Evidence, chosen: np.ndarray, operating_point: str = ""
) -> dict[str, Savings]:
    """:func:`savings` of one routing on each source of the traffic, largest source first."""
    chosen = np.asarray(chosen, dtype=np.int64)
    sources = sorted(set(eval_set.sources), key=lambda s: (-(eval_set.sources == s).sum(), s))
    return {
        source: savings(
            eval_set.subset(eval_set.sources == source),
            chosen[eval_set.sources == source],
            operating_point,
        )
        for source in sources
    }


def cheapest_within(
    rows: Sequence[Savings], max_under_routing: float, min_quality_kept: float
) -> Savings | None:
    """The cheapest row that under-routes at most and keeps at least the given shares, if any."""
    eligible = [
        row
        for row in rows
        if row.under_routing <= max_under_routing and row.quality_kept >= min_quality_kept
    ]
    return min(eligible, key=lambda row: row.cost_vs_premium, default=None)


def within_limits(row: Savings, max_under_routing: float, min_quality_kept: float) -> bool:
    return row.under_routing <= max_under_routing and row.quality_kept >= min_quality_kept


def markdown_table(
    rows: Iterable[Savings],
    max_under_routing: float,
    min_quality_kept: float,
    first_column: str = "operating point",
    names: Sequence[str] | None = None,
) -> str:
    """The rows as a Markdown table; ``names`` replaces the first column (e.g. source names)."""
    rows = list(rows)
    names = list(names) if names is not None else [_point_name(row) for row in rows]
    lines = [
        f"| {first_column} | n | economy / standard / premium | USD per 1k requests | saved "
        "| quality kept | under-routed | within your limits |",
        "|---|---:|---|---:|---:|---:|---:|:---:|",
    ]
    for name, row in zip(names, rows, strict=True):
        shares = " / ".join(f"{row.tier_shares[t]:.0%}" for t in TIERS)
        ok = "yes" if within_limits(row, max_under_routing, min_quality_kept) else "**no**"
        lines.append(
            f"| {name} | {row.n:,} | {shares} | ${row.usd_per_1k:,.2f} "
            f"(premium ${row.premium_usd_per_1k:,.2f}) | {row.saved_share:.0%} "
            f"| {row.quality_kept:.2%} | {row.under_routing:.1%} | {ok} |"
        )
    return "\n".join(lines)


def answer(
    rows: Sequence[Savings],
    best: Savings | None,
    max_under_routing: float,
    min_quality_kept: float,
) -> str:
    """One paragraph that answers "what will I save, at which operating point"."""
    limits = f"under-routing at most {max_under_routing:.0%}, quality kept at least "
    limits += f"{min_quality_kept:.0%}"
    if best is None:
        cautious = rows[0]
        return (
            f"No operating point is within your limits ({limits}) on these {cautious.n:,} records. "
            f"The most cautious, `{cautious.operating_point}`, saves {cautious.saved_share:.0%} "
            f"while keeping {cautious.quality_kept:.2%} and under-routing "
            f"{cautious.under_routing:.1%}: relax a limit, or retrain on this traffic."
            + _few_records_note(cautious.n)
        )
    text = (
        f"**`{best.operating_point}`** is the cheapest operating point within your limits "
        f"({limits}). On these {best.n:,} records it saves **{best.saved_share:.0%}** of the "
        f"all-premium bill (${best.usd_per_1k:,.2f} instead of ${best.premium_usd_per_1k:,.2f} "
        f"per 1,000 requests, ${best.saved_usd_per_1k:,.2f} saved), keeps "
        f"{best.quality_kept:.2%} of always-premium's quality and sends {best.under_routing:.1%} "
        "of requests below the tier they need."
    )
    default = next((row for row in rows if row.default), None)
    if default is not None and default is not best:
        text += (
            f" The model's default, `{default.operating_point}`, would save "
            f"{default.saved_share:.0%} at {default.quality_kept:.2%} quality kept and "
            f"{default.under_routing:.1%} under-routed."
        )
    elif default is best:
        text += " It is the model's default."
    return text + _few_records_note(best.n)


def _few_records_note(n: int) -> str:
    if n >= FEW_RECORDS:
        return ""
    return (
        f" Only {n:,} records: shares of a few percent can move by several points on another "
        "sample of the same traffic; decide on a few thousand."
    )


def _point_name(row: Savings) -> str:
    return f"`{row.operating_point}`" + (" (default)" if row.default else "")
