"""router-ml inside LiteLLM: a routing plugin for ``litellm.Router`` and a proxy pre-call hook.

Two ways in, for the two ways teams run LiteLLM:

1. **Python ``litellm.Router``** — put every tier's deployment in one model group (``auto``) and
   tag each with ``model_info: {router_ml_tier: economy|standard|premium}``; then
   ``RouterMLStrategy(llm_router).install()``. Requests for an alias group get the deployment of
   the tier router-ml picks (a missing tier falls up to the next more capable one); other model
   groups get a random deployment, as LiteLLM's default ``simple-shuffle`` does.

2. **LiteLLM proxy** — keep one model group per tier (e.g. ``tier-economy``) and list
   ``router_ml.gateway.litellm_hook.proxy_hook`` under ``litellm_settings.callbacks``; the hook
   rewrites ``model: auto`` to the chosen tier's group before LiteLLM routes. LiteLLM's own
   ``fallbacks`` (``tier-economy → tier-standard → tier-premium``) then give escalation on failure.

Either way the decision is added to the request's ``metadata["router_ml"]`` so LiteLLM's logging
callbacks record it. This module needs ``litellm`` installed (it subclasses LiteLLM's hook base
classes); nothing else in router-ml imports it.
"""

from __future__ import annotations

import random
from collections.abc import Iterable, Mapping
from typing import Any

from litellm.integrations.custom_logger import CustomLogger
from litellm.types.router import CustomRoutingStrategyBase

from router_ml.router import Decision, Router
from router_ml.tiers import TIERS

TIER_KEY = "router_ml_tier"
"""The ``model_info`` key naming a deployment's tier."""
REQUEST_KEYS = (
    "messages",
    "tools",
    "functions",
    "tool_choice",
    "function_call",
    "max_tokens",
    "max_completion_tokens",
    "response_format",
    "stream",
)
"""Request fields the router reads; LiteLLM's own kwargs (api keys, callbacks) are left out."""


def chat_request(messages: Any, request_kwargs: Mapping[str, Any] | None) -> dict[str, Any]:
    """The OpenAI chat body router-ml sees, rebuilt from LiteLLM's call arguments.

    LiteLLM's ``metadata`` also carries its own bookkeeping (nested objects); only the scalar
    entries a client could have sent are kept for policy rules.
    """
    kwargs = dict(request_kwargs or {})
    body = {key: kwargs[key] for key in REQUEST_KEYS if kwargs.get(key) is not None}
    body["messages"] = messages if messages is not None else kwargs.get("messages")
    metadata = kwargs.get("metadata")
    if isinstance(metadata, Mapping):
        scalars = {
            str(k): v
            for k, v in metadata.items()
            if isinstance(v, str | int | float | bool) and not str(k).startswith("router_ml")
        }
        if scalars:
            body["metadata"] = scalars
    if isinstance(kwargs.get("model"), str):
        body["model"] = kwargs["model"]
    return body


def _annotate(request_kwargs: Any, decision: Decision) -> None:
    if isinstance(request_kwargs, dict):
        metadata = request_kwargs.get("metadata")
        if not isinstance(metadata, dict):
            metadata = request_kwargs["metadata"] = {}
        metadata["router_ml"] = decision.to_dict()


def deployments_of(llm_router: Any, model_group: str) -> list[dict[str, Any]]:
    """The deployments of a model group, through whichever listing this LiteLLM offers."""
    registry = getattr(llm_router, "registry", None)
    if callable(registry):
        return list(registry().deployments(model_group) or [])
    return list(llm_router.get_model_list(model_name=model_group) or [])


class RouterMLStrategy(CustomRoutingStrategyBase):
    """A ``litellm.Router`` plugin picking, for alias groups, the deployment of router-ml's tier.

    Parameters
    ----------
    llm_router : litellm.Router
        The router whose deployments are chosen from.
    router : Router or None
        The router-ml router; None loads the shipped model and default policy.
    aliases : iterable of str
        Model groups whose requests are routed by tier.
    rng : random.Random or None
        Picks among the deployments of non-alias groups (and among same-tier deployments).

    Both ``get_available_deployment`` methods return the chosen deployment, which is what
    LiteLLM's router uses (and its base class documents: "an element from model_list"); the base
    class annotates them ``-> None``, hence the ``override`` ignores.
    """

    def __init__(
        self,
        llm_router: Any,
        router: Router | None = None,
        aliases: Iterable[str] = ("auto",),
        rng: random.Random | None = None,
    ) -> None:
        self.llm_router = llm_router
        self.router = router if router is not None else Router.load()
        self.aliases = frozenset(aliases)
        self.rng = rng if rng is not None else random.Random()

    def install(self) -> RouterMLStrategy:
        """Register with the LiteLLM router (``register_plugin`` where it exists)."""
        register = getattr(self.llm_router, "register_plugin", None)
        if register is None:
            register = self.llm_router.set_custom_routing_strategy
        register(self)
        return self

    async def async_get_available_deployment(  # type: ignore[override]  # base: -> None
        self,
        model: str,
        messages: list[dict[str, Any]] | None = None,
        input: Any = None,
        specific_deployment: bool | None = False,
        request_kwargs: dict[str, Any] | None = None,
    ) -> dict[str, Any]:
        return self.get_available_deployment(
            model, messages, input, specific_deployment, request_kwargs
        )

    def get_available_deployment(  # type: ignore[override]  # base: -> None (class doc)
        self,
        model: str,
        messages: list[dict[str, Any]] | None = None,
        input: Any = None,
        specific_deployment: bool | None = False,
        request_kwargs: dict[str, Any] | None = None,
    ) -> dict[str, Any]:
        candidates = deployments_of(self.llm_router, model)
        if not candidates:
            raise ValueError(f"router-ml: no deployments in model group {model!r}")
        if model not in self.aliases or messages is None:
            return self.rng.choice(candidates)
        decision = self.router.route_or_safe(chat_request(messages, request_kwargs))
        _annotate(request_kwargs, decision)
        return self.rng.choice(self._tier_candidates(candidates, decision.tier, model))

    def _tier_candidates(
        self, candidates: list[dict[str, Any]], tier: str, model: str
    ) -> list[dict[str, Any]]:
        """Deployments of ``tier``, else of the next more capable tier that has any."""
        by_tier: dict[str, list[dict[str, Any]]] = {}
        for deployment in candidates:
            tagged = (deployment.get("model_info") or {}).get(TIER_KEY)
            if isinstance(tagged, str):
                by_tier.setdefault(tagged, []).append(deployment)
        for candidate_tier in TIERS[TIERS.index(tier) :]:
            if by_tier.get(candidate_tier):
                return by_tier[candidate_tier]
        for candidate_tier in reversed(TIERS[: TIERS.index(tier)]):
            if by_tier.get(candidate_tier):
                return by_tier[candidate_tier]
        raise ValueError(
            f"router-ml: no deployment of group {model!r} has model_info.{TIER_KEY} "
            f"set to one of {list(TIERS)}"
        )


class RouterMLProxyHook(CustomLogger):
    """LiteLLM proxy pre-call hook: ``model: <alias>`` becomes the chosen tier's model group.

    Parameters
    ----------
    router : Router or None
        The router-ml router; None loads the shipped model and default policy.
    tier_groups : mapping of tier to model group, or None
        The proxy's model group per tier; None uses the policy's tier model names.
    aliases : iterable of str
        Requested model names that are routed.
    """

    def __init__(
        self,
        router: Router | None = None,
        tier_groups: Mapping[str, str] | None = None,
        aliases: Iterable[str] = ("auto",),
    ) -> None:
        super().__init__()
        self.router = router if router is not None else Router.load()
        self.tier_groups = dict(tier_groups) if tier_groups is not None else dict(self.router.tiers)
        missing = [t for t in TIERS if t not in self.tier_groups]
        if missing:
            raise ValueError(f"tier_groups: missing tiers {missing}")
        self.aliases = frozenset(aliases)

    async def async_pre_call_hook(
        self, user_api_key_dict: Any, cache: Any, data: dict[str, Any], call_type: Any
    ) -> dict[str, Any]:
        if data.get("model") not in self.aliases or data.get("messages") is None:
            return data
        decision = self.router.route_or_safe(chat_request(data["messages"], data))
        data["model"] = self.tier_groups[decision.tier]
        _annotate(data, decision)
        return data


def __getattr__(name: str) -> Any:
    """``proxy_hook``: the instance a LiteLLM proxy config names, built on first use."""
    if name == "proxy_hook":
        hook = RouterMLProxyHook()
        globals()["proxy_hook"] = hook
        return hook
    raise AttributeError(name)
