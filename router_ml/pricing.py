"""Prices and costs: the one reader of the ``models.json`` price catalog and the one cost formula.

The gateway (cost of every request and the "if sent to premium" counterfactual), ``route --batch``
(estimated cost versus all-premium), ``router-ml analyze`` and the offline evaluation all price
tokens the same way, so a saving shown on a dashboard is the saving in the report. Standard
library and numpy only: the runtime imports this module.

Catalog format (``models.json``)::

    {"_tiers": {"economy":  {"input_usd_per_mtok": 1.0,  "output_usd_per_mtok": 5.0}, ...},
     "gpt-4o-mini": {"tier": "economy", "input_usd_per_mtok": 0.15, "output_usd_per_mtok": 0.6},
     ...}

``_tiers`` prices every tier (the figure used when a tier's model is not in the catalog); each
model entry gives its list prices in USD per million tokens and its tier (``null`` for models
without a sound price). Other keys of an entry (``family``, ``price_basis``) are ignored.
"""

from __future__ import annotations

import json
import math
import os
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from router_ml.features import FEATURE_NAMES
from router_ml.request import ChatRequest
from router_ml.tiers import TIERS, TOP_TIER
from router_ml.tokenizer import TokenCounter

PER_MILLION = 1e6


@dataclass(frozen=True, slots=True)
class Price:
    """List price of one model in USD per million input and output tokens."""

    input_usd_per_mtok: float
    output_usd_per_mtok: float

    def cost(self, input_tokens: float, output_tokens: float) -> float:
        """USD of one call with these token counts."""
        return (
            input_tokens * self.input_usd_per_mtok + output_tokens * self.output_usd_per_mtok
        ) / PER_MILLION

    def as_tuple(self) -> tuple[float, float]:
        return (self.input_usd_per_mtok, self.output_usd_per_mtok)


DEFAULT_CATALOG = Path(__file__).with_name("default_prices.json")
"""Tier prices only (2024 list-price bands); pass a ``models.json`` for real model prices."""


class CatalogError(ValueError):
    """A price catalog that cannot be read or does not follow the ``models.json`` format."""


@dataclass(frozen=True)
class PriceCatalog:
    """Model → tier and price; tier → default price.

    Parameters
    ----------
    tier_prices : mapping of tier → Price
        The price of each tier in :data:`~router_ml.tiers.TIERS`; used for cost figures and for
        any model the catalog does not list.
    model_prices : mapping of model → Price
        List prices of individual models.
    model_tiers : mapping of model → tier or None
        The tier of each listed model (None: listed, but without a sound price tier).
    source : str
        Where the catalog came from, for error messages.
    """

    tier_prices: Mapping[str, Price]
    model_prices: Mapping[str, Price]
    model_tiers: Mapping[str, str | None]
    source: str = "catalog"

    def __post_init__(self) -> None:
        missing = [t for t in TIERS if t not in self.tier_prices]
        if missing:
            raise CatalogError(f"{self.source}: no price for tiers {missing}")

    @classmethod
    def load(cls, path: str | os.PathLike[str]) -> PriceCatalog:
        """Read a ``models.json`` file; raises :class:`CatalogError` naming the problem."""
        try:
            spec = json.loads(Path(path).read_text(encoding="utf-8"))
        except OSError as exc:
            raise CatalogError(f"{path}: cannot read: {exc}") from exc
        except json.JSONDecodeError as exc:
            raise CatalogError(f"{path}: invalid JSON: {exc}") from exc
        return cls.from_dict(spec, source=str(path))

    @classmethod
    def load_default(cls, path: str | os.PathLike[str] | None = None) -> PriceCatalog:
        """``path``, or the shipped tier prices when None."""
        return cls.load(DEFAULT_CATALOG if path is None else path)

    @classmethod
    def from_dict(cls, spec: Any, source: str = "catalog") -> PriceCatalog:
        """Validate a parsed ``models.json`` mapping."""
        if not isinstance(spec, Mapping):
            raise CatalogError(f"{source}: expected a JSON object of models")
        tiers = spec.get("_tiers")
        if not isinstance(tiers, Mapping) or set(tiers) != set(TIERS):
            raise CatalogError(f"{source}: _tiers must give the prices of exactly {list(TIERS)}")
        tier_prices = {t: _price(tiers[t], f"{source}: _tiers.{t}") for t in TIERS}
        model_prices: dict[str, Price] = {}
        model_tiers: dict[str, str | None] = {}
        for model, entry in spec.items():
            if str(model).startswith("_"):
                continue
            if not isinstance(entry, Mapping):
                raise CatalogError(f"{source}: {model}: expected an object")
            tier = entry.get("tier")
            if tier is not None and tier not in TIERS:
                raise CatalogError(f"{source}: {model}: unknown tier {tier!r}")
            model_tiers[model] = tier
            if entry.get("input_usd_per_mtok") is not None:
                model_prices[model] = _price(entry, f"{source}: {model}")
        return cls(tier_prices, model_prices, model_tiers, source)

    @classmethod
    def from_tier_prices(cls, prices: Mapping[str, tuple[float, float]]) -> PriceCatalog:
        """A catalog of tier prices only (every model is priced at its tier's price)."""
        return cls({t: Price(*map(float, prices[t])) for t in TIERS}, {}, {}, "tier prices")

    def tier_of(self, model: str) -> str | None:
        """The model's tier in the catalog, None when unlisted or unpriced."""
        return self.model_tiers.get(model)

    def price(self, model: str | None, tier: str | None = None) -> Price | None:
        """The model's list price; unlisted models cost their ``tier``'s price (None: unknown)."""
        if model is not None and model in self.model_prices:
            return self.model_prices[model]
        if tier is not None and tier in self.tier_prices:
            return self.tier_prices[tier]
        return None

    def cost(
        self, model: str | None, tier: str | None, input_tokens: float, output_tokens: float
    ) -> float | None:
        """USD of one call, or None when neither the model nor the tier has a price."""
        price = self.price(model, tier)
        return None if price is None else price.cost(input_tokens, output_tokens)

    def premium_cost(
        self, input_tokens: float, output_tokens: float, premium_model: str | None = None
    ) -> float:
        """The counterfactual: the same tokens on the premium tier (its model's price if listed)."""
        price = self.price(premium_model, TOP_TIER)
        assert price is not None  # every tier has a price
        return price.cost(input_tokens, output_tokens)

    def tier_price_matrix(self, tier_models: Mapping[str, str] | None = None) -> np.ndarray:
        """``(n_tiers, 2)`` input and output price per tier, in TIERS order.

        With ``tier_models`` (tier → the model serving it), a tier whose model is listed costs
        that model's price; otherwise the tier's ``_tiers`` price.
        """
        models = tier_models or {}
        rows = [self.price(models.get(t), t) for t in TIERS]
        return np.array([p.as_tuple() for p in rows if p is not None], dtype=np.float64)


def request_costs(
    input_tokens: np.ndarray, output_tokens: np.ndarray, prices: np.ndarray
) -> np.ndarray:
    """Cost ``(n, n_tiers)`` in USD of serving each request with each tier.

    ``prices[k] = (input_usd_per_mtok, output_usd_per_mtok)`` of tier ``k`` (see
    :meth:`PriceCatalog.tier_price_matrix`).
    """
    input_tokens = np.asarray(input_tokens, dtype=np.float64)
    output_tokens = np.asarray(output_tokens, dtype=np.float64)
    prices = np.asarray(prices, dtype=np.float64)
    if prices.ndim != 2 or prices.shape[1] != 2:
        raise ValueError("prices must be (n_tiers, 2): input and output USD per million tokens")
    if input_tokens.shape != output_tokens.shape or input_tokens.ndim != 1:
        raise ValueError("input_tokens and output_tokens must be equal-length 1-d arrays")
    if (input_tokens < 0).any() or (output_tokens < 0).any():
        raise ValueError("token counts must be non-negative")
    return (
        np.outer(input_tokens, prices[:, 0]) + np.outer(output_tokens, prices[:, 1])
    ) / PER_MILLION


def _price(entry: Any, where: str) -> Price:
    if not isinstance(entry, Mapping):
        raise CatalogError(f"{where}: expected an object with input/output prices")
    try:
        values = (float(entry["input_usd_per_mtok"]), float(entry["output_usd_per_mtok"]))
    except (KeyError, TypeError, ValueError):
        raise CatalogError(
            f"{where}: needs numeric input_usd_per_mtok and output_usd_per_mtok"
        ) from None
    if not all(math.isfinite(v) and v >= 0 for v in values):
        raise CatalogError(f"{where}: prices must be finite and non-negative")
    return Price(*values)


ASSUMED_OUTPUT_TOKENS = 256
"""Output tokens priced for a request without ``max_tokens`` when no model says otherwise; a
model's own figure is ``EvaluationContract.output_tokens_default`` in its metadata (the training
config's, 256 for the shipped model). After the call the upstream's usage replaces the estimate."""
_TOKENS_TOTAL = FEATURE_NAMES.index("tokens_total")
_MAX_TOKENS = FEATURE_NAMES.index("max_tokens")
_HAS_MAX_TOKENS = FEATURE_NAMES.index("has_max_tokens")


def billed_input_tokens(request: ChatRequest, counter: TokenCounter) -> int:
    """o200k tokens the provider bills as input: message texts, tool calls and tool schemas.

    The one input-token count of every cost figure (evaluation, model card, ``route --batch``,
    ``analyze``). Per-message framing tokens (a handful per message) are ignored: they are the
    same for every tier and negligible next to the content.
    """
    total = 0
    for message in request.messages:
        total += counter.count(message.text)
        if message.tool_call_text:
            total += counter.count(message.tool_call_text)
    if request.tools:
        total += counter.count(json.dumps(list(request.tools), separators=(",", ":")))
    return total


def expected_output_tokens(request: ChatRequest, default: int = ASSUMED_OUTPUT_TOKENS) -> int:
    """``max_tokens`` (or ``max_completion_tokens``) when given, else ``default``."""
    return request.max_tokens if request.max_tokens is not None else default


def estimated_tokens(
    features: np.ndarray, default_output_tokens: int = ASSUMED_OUTPUT_TOKENS
) -> tuple[np.ndarray, np.ndarray]:
    """Input and output tokens from feature rows ``(n, N_FEATURES)``, for logs without prompts.

    Output follows :func:`expected_output_tokens`. Input is the conversation's o200k count
    (``tokens_total``), which leaves out tool schemas: use :func:`billed_input_tokens` whenever
    the request itself is at hand.
    """
    features = np.atleast_2d(np.asarray(features, dtype=np.float64))
    has_limit = features[:, _HAS_MAX_TOKENS] > 0
    output = np.where(has_limit, features[:, _MAX_TOKENS], float(default_output_tokens))
    return features[:, _TOKENS_TOTAL], output


@dataclass
class SpendSummary:
    """Requests and estimated cost per tier, next to the all-premium counterfactual."""

    counts: dict[str, int]
    cost_usd: float
    premium_cost_usd: float

    @classmethod
    def of(
        cls,
        tiers: list[str] | np.ndarray,
        input_tokens: np.ndarray,
        output_tokens: np.ndarray,
        catalog: PriceCatalog,
        tier_models: Mapping[str, str] | None = None,
    ) -> SpendSummary:
        """Cost of serving request ``i`` on ``tiers[i]`` (tier prices, or the tier model's)."""
        prices = catalog.tier_price_matrix(tier_models)
        costs = request_costs(input_tokens, output_tokens, prices)
        index = np.array([TIERS.index(t) for t in tiers], dtype=np.int64)
        chosen = costs[np.arange(len(index)), index] if len(index) else np.zeros(0)
        return cls(
            {t: int((index == k).sum()) for k, t in enumerate(TIERS)},
            float(chosen.sum()),
            float(costs[:, -1].sum()),
        )

    @property
    def total(self) -> int:
        return sum(self.counts.values())

    def lines(self) -> list[str]:
        """Tier shares and the cost line, for the end of a table."""
        total = max(self.total, 1)
        shares = ", ".join(f"{t} {self.counts[t] / total:.1%} ({self.counts[t]})" for t in TIERS)
        ratio = self.cost_usd / self.premium_cost_usd if self.premium_cost_usd else float("nan")
        return [
            f"tier shares: {shares}",
            f"estimated cost: ${self.cost_usd:,.4f} vs ${self.premium_cost_usd:,.4f} all-premium "
            f"({ratio:.1%} of premium, saving {1 - ratio:.1%})",
        ]
