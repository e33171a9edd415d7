"""Per-request overrides: a client pins the tier or the operating point of one request.

For A/B tests ("send this cohort to standard") and tenants ("this customer runs at the strict
operating point"), a request can carry ``x-router-tier`` / ``x-router-operating-point`` headers
or ``metadata.router_tier`` / ``metadata.router_operating_point`` (the header wins when both are
given). Values are validated here (a tier name, ``auto``, or an operating point name or target
rate; the router checks that the point exists) and an invalid one is the client's 400, never a
silent fallback. The gateway config can turn either source off (``overrides``).
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from router_ml.errors import InvalidRequest
from router_ml.policy import AUTO
from router_ml.tiers import TIERS

TIER_HEADER = "x-router-tier"
POINT_HEADER = "x-router-operating-point"
TIER_FIELD = "router_tier"
POINT_FIELD = "router_operating_point"
ROUTER_FIELDS = (TIER_FIELD, POINT_FIELD)
"""``metadata`` keys that belong to the router and are removed before the upstream sees them."""
MAX_VALUE_CHARS = 64


@dataclass(frozen=True, slots=True)
class Override:
    """What one request pins: a tier (None: routed as usual) and/or an operating point."""

    tier: str | None = None
    operating_point: str | float | None = None
    source: str = ""
    """``header`` or ``metadata``: where the pin came from (logged with the decision)."""

    def __bool__(self) -> bool:
        return self.tier is not None or self.operating_point is not None

    def to_dict(self) -> dict[str, Any]:
        return {"tier": self.tier, "operating_point": self.operating_point, "source": self.source}


NO_OVERRIDE = Override()


def read_override(
    headers: Mapping[str, str],
    payload: Mapping[str, Any],
    allow_header: bool = True,
    allow_metadata: bool = True,
) -> Override:
    """The override a request asks for; raises ``InvalidRequest`` naming a bad value."""
    metadata = payload.get("metadata")
    metadata = metadata if isinstance(metadata, Mapping) else {}
    tier, point, sources = None, None, []
    for allowed, source, tier_value, point_value in (
        (allow_metadata, "metadata", metadata.get(TIER_FIELD), metadata.get(POINT_FIELD)),
        (allow_header, "header", headers.get(TIER_HEADER), headers.get(POINT_HEADER)),
    ):
        if not allowed:
            continue
        where_tier = TIER_HEADER if source == "header" else f"metadata.{TIER_FIELD}"
        where_point = POINT_HEADER if source == "header" else f"metadata.{POINT_FIELD}"
        if tier_value is not None:
            tier = _tier(tier_value, where_tier)
            sources.append(source)
        if point_value is not None:
            point = _operating_point(point_value, where_point)
            sources.append(source)
    if tier == AUTO:
        tier = None  # "auto" asks for normal routing, which is what happens without a pin
    return Override(tier, point, "+".join(dict.fromkeys(sources)))


def strip_router_fields(payload: Mapping[str, Any]) -> dict[str, Any]:
    """The body to forward: ``metadata`` without the router's own keys (dropped when empty)."""
    metadata = payload.get("metadata")
    if not isinstance(metadata, Mapping) or not any(k in metadata for k in ROUTER_FIELDS):
        return dict(payload)
    kept = {k: v for k, v in metadata.items() if k not in ROUTER_FIELDS}
    forwarded = {k: v for k, v in payload.items() if k != "metadata"}
    if kept:
        forwarded["metadata"] = kept
    return forwarded


def _tier(value: Any, where: str) -> str:
    if not isinstance(value, str) or value.strip().lower() not in (*TIERS, AUTO):
        raise InvalidRequest(where, f"expected one of {[*TIERS, AUTO]}, got {_shown(value)}")
    return value.strip().lower()


def _operating_point(value: Any, where: str) -> str | float:
    if isinstance(value, bool) or not isinstance(value, str | int | float):
        raise InvalidRequest(
            where, f"expected an operating point name or rate, got {_shown(value)}"
        )
    if isinstance(value, str):
        text = value.strip()
        if not text or len(text) > MAX_VALUE_CHARS:
            raise InvalidRequest(where, "expected an operating point name or rate")
        try:
            value = float(text)
        except ValueError:
            return text
    rate = float(value)
    if not math.isfinite(rate) or not 0.0 <= rate <= 1.0:
        raise InvalidRequest(where, f"a target under-routing rate must be in [0, 1], got {rate}")
    return rate


def _shown(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= MAX_VALUE_CHARS else text[: MAX_VALUE_CHARS - 1] + "…"
