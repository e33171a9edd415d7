"""The tier vocabulary: ordered from cheapest to most capable, and how to step up it.

Every module that names tiers imports them from here, so the order and the "next tier up" rule
are written once (the router's escalation bias, the gateway's retry chain and the LiteLLM hook
all step up the same way).
"""

from __future__ import annotations

from collections.abc import Sequence

TIERS: tuple[str, ...] = ("economy", "standard", "premium")
"""Tiers from cheapest to most capable."""
TOP_TIER = TIERS[-1]


def tier_rank(tier: str) -> int:
    """The position of ``tier`` in :data:`TIERS`; raises ``ValueError`` for an unknown name."""
    try:
        return TIERS.index(tier)
    except ValueError:
        raise ValueError(f"unknown tier {tier!r}; expected one of {', '.join(TIERS)}") from None


def next_tier(tier: str, chain: Sequence[str] = TIERS) -> str | None:
    """The first tier of ``chain`` more capable than ``tier``, or None when there is none."""
    rank = tier_rank(tier)
    return next((t for t in chain if tier_rank(t) > rank), None)


def at_least(tier: str, floor: str) -> str:
    """The more capable of ``tier`` and ``floor``."""
    return tier if tier_rank(tier) >= tier_rank(floor) else floor
