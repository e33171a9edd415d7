"""Spend in the gateway: the cost of every request, its counterfactual, and a rolling traffic mix.

:class:`SpendMeter` is a decision-log enricher (``record.DecisionRecorder.enrichers``): once a
record's tier, model and upstream token ``usage`` are final, it prices the tokens with the
gateway's :class:`~router_ml.pricing.PriceCatalog` and writes ``cost`` into the line::

    "cost": {"input_tokens": 812, "output_tokens": 96, "usd": 0.00129,
             "premium_usd": 0.01938, "priced_as": "model" | "tier" | null}

``usd`` is the served model's list price (``priced_as: "model"``) or its tier's price
(``"tier"``); ``premium_usd`` is what the same tokens would have cost on the premium tier (the
saving a dashboard shows is ``premium_usd - usd``). In shadow mode the router's would-be choice
is priced too (``shadow.cost_usd``, same tokens on the tier it chose). The Prometheus counters
are incremented with exactly the numbers written into the line, so they equal the log summed.

Tokens are the upstream's final answer's usage; attempts that failed before answering consumed
none that the upstream reported. A request without usage (an error, a stream without a usage
chunk) gets ``cost: null``; answered ones are counted in ``router_ml_unpriced_requests_total``,
and so are models neither the catalog nor a tier prices.

:class:`RollingMix` keeps the tier chosen and the out-of-distribution flag of the last
``window`` routing decisions for the ``router_ml_rolling_*`` gauges (the live view of what
``router-ml drift`` checks offline).
"""

from __future__ import annotations

import threading
from collections import deque
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from router_ml.gateway.decision_log import REPLAY_ENDPOINT
from router_ml.pricing import PriceCatalog
from router_ml.tiers import TIERS, TOP_TIER

if TYPE_CHECKING:
    from router_ml.gateway.prom import GatewayMetrics
    from router_ml.gateway.record import RequestRecord

OOD_CUTOFF = 0.5
"""A decision whose ``ood`` score is at least this counts as out of distribution, unless the
router names its own flagging threshold (``Router.ood_threshold``)."""


class RollingMix:
    """Tier shares and OOD share of the last ``window`` routing decisions (thread-safe)."""

    def __init__(self, window: int = 1000, ood_cutoff: float = OOD_CUTOFF) -> None:
        if window < 1:
            raise ValueError(f"window must be positive, got {window}")
        self.window = window
        self.ood_cutoff = ood_cutoff
        self._tiers: deque[str] = deque(maxlen=window)
        self._ood: deque[bool | None] = deque(maxlen=window)
        self._lock = threading.Lock()

    def add(self, tier: str, ood: float | None) -> None:
        with self._lock:
            self._tiers.append(tier)
            self._ood.append(None if ood is None else ood >= self.ood_cutoff)

    def shares(self) -> dict[str, float]:
        with self._lock:
            n = len(self._tiers)
            return {t: (sum(1 for x in self._tiers if x == t) / n if n else 0.0) for t in TIERS}

    def ood_share(self) -> float | None:
        """Share flagged OOD among decisions that carried a score; None when none did."""
        with self._lock:
            scored = [flag for flag in self._ood if flag is not None]
        return sum(scored) / len(scored) if scored else None

    def __len__(self) -> int:
        return len(self._tiers)


class SpendMeter:
    """Prices each finished record and counts tokens and cost (an enricher, see module doc).

    Parameters
    ----------
    catalog : PriceCatalog
        Model and tier prices.
    tier_models : mapping of tier → model
        The gateway's tier models; the premium counterfactual uses the premium model's price.
    metrics : GatewayMetrics
        Where the counters and gauges live.
    rolling : RollingMix
        Updated with every routing decision.
    """

    def __init__(
        self,
        catalog: PriceCatalog,
        tier_models: Mapping[str, str],
        metrics: GatewayMetrics,
        rolling: RollingMix,
    ) -> None:
        self.catalog = catalog
        self.tier_models = dict(tier_models)
        self.metrics = metrics
        self.rolling = rolling

    def __call__(self, record: RequestRecord) -> None:
        data = record.data
        decided = data.get("shadow") or data.get("decision")
        if isinstance(decided, dict) and decided.get("tier") in TIERS:
            ood = decided.get("ood")
            self.rolling.add(decided["tier"], ood if isinstance(ood, int | float) else None)
            self.metrics.set_rolling(self.rolling)
        if not isinstance(data.get("model"), str):
            return  # never reached an upstream (rejected, decision only, listing)
        cost = self.price(data.get("tier"), data["model"], data.get("usage"))
        data["cost"] = cost
        model, tier = data["model"], str(data.get("tier"))
        if cost is None or cost["usd"] is None:
            if data.get("outcome") == "ok":
                self.metrics.unpriced.inc(model)
            return
        self._count(tier, model, cost, data.get("endpoint") == REPLAY_ENDPOINT)
        shadow = data.get("shadow")
        if isinstance(shadow, dict) and shadow.get("tier") in TIERS:
            would_be = self.tier_models[shadow["tier"]]
            price = self.catalog.price(would_be, shadow["tier"])
            assert price is not None  # every tier has a price
            shadow["cost_usd"] = price.cost(cost["input_tokens"], cost["output_tokens"])
            self.metrics.shadow_cost.inc(shadow["tier"], would_be, amount=shadow["cost_usd"])

    def price(self, tier: Any, model: Any, usage: Any) -> dict[str, Any] | None:
        """The ``cost`` field of a line from its served tier, model and usage (None: no usage)."""
        if not isinstance(usage, dict):
            return None
        input_tokens = _tokens(usage.get("prompt_tokens"))
        output_tokens = _tokens(usage.get("completion_tokens"))
        if input_tokens is None or output_tokens is None:
            return None
        tier = tier if tier in TIERS else None
        model = model if isinstance(model, str) else None
        listed = model is not None and model in self.catalog.model_prices
        usd = self.catalog.cost(model, tier, input_tokens, output_tokens)
        premium = self.catalog.premium_cost(
            input_tokens, output_tokens, self.tier_models.get(TOP_TIER)
        )
        return {
            "input_tokens": input_tokens,
            "output_tokens": output_tokens,
            "usd": usd,
            "premium_usd": premium,
            "priced_as": "model" if listed else "tier" if usd is not None else None,
        }

    def _count(self, tier: str, model: str, cost: dict[str, Any], replay: bool) -> None:
        metrics = self.metrics
        if replay:  # shadow replays are an evaluation expense, not traffic: kept apart
            metrics.replay_cost.inc(tier, model, amount=cost["usd"])
            return
        metrics.tokens.inc(tier, model, "input", amount=cost["input_tokens"])
        metrics.tokens.inc(tier, model, "output", amount=cost["output_tokens"])
        metrics.cost.inc(tier, model, amount=cost["usd"])
        metrics.premium_cost.inc(tier, model, amount=cost["premium_usd"])


def _tokens(value: Any) -> int | None:
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        return None
    return value
