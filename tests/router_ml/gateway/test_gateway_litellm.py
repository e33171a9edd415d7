"""router-ml inside LiteLLM's real ``Router``, with upstreams on loopback (the fake upstream)."""

from __future__ import annotations

import asyncio
import os
import random
from pathlib import Path
from typing import Any

import pytest
from conftest import FORCE_RULES, TIER_MODELS
from fake_upstream import FakeUpstream

os.environ.setdefault("LITELLM_LOCAL_MODEL_COST_MAP", "True")  # never fetch the price map
litellm = pytest.importorskip("litellm")

from router_ml.gateway.litellm_hook import RouterMLProxyHook, RouterMLStrategy  # noqa: E402
from router_ml.router import Router  # noqa: E402

# LiteLLM's own pydantic models warn on import; that is LiteLLM's business, not this test's.
pytestmark = pytest.mark.filterwarnings("ignore::UserWarning", "ignore::DeprecationWarning")


@pytest.fixture(scope="module")
def router(tiny_model_dir: Path) -> Router:
    return Router.load(
        tiny_model_dir, {"tiers": TIER_MODELS, "rules": FORCE_RULES, "default": {"tier": "auto"}}
    )


def deployment(group: str, model: str, api_base: str, **model_info: Any) -> dict[str, Any]:
    return {
        "model_name": group,
        "litellm_params": {"model": f"openai/{model}", "api_base": api_base, "api_key": "x"},
        "model_info": model_info,
    }


def tiered_router(fake: FakeUpstream) -> Any:
    deployments = [
        deployment("auto", model, fake.base_url, router_ml_tier=tier)
        for tier, model in TIER_MODELS.items()
    ]
    deployments.append(deployment("plain", "plain-model", fake.base_url))
    return litellm.Router(model_list=deployments, num_retries=0)


def test_strategy_sends_each_request_to_its_tier(router: Router, fake: FakeUpstream) -> None:
    llm = tiered_router(fake)
    RouterMLStrategy(llm, router, aliases=["auto"], rng=random.Random(0)).install()

    async def run() -> list[str]:
        answers = []
        for tier in ("premium", "economy", "standard"):
            response = await llm.acompletion(
                model="auto",
                metadata={"force": tier},
                messages=[{"role": "user", "content": f"to {tier}"}],
            )
            answers.append(response.choices[0].message.content)
        stream = await llm.acompletion(
            model="auto",
            metadata={"force": "economy"},
            stream=True,
            messages=[{"role": "user", "content": "stream it"}],
        )
        answers.append("".join([c.choices[0].delta.content or "" async for c in stream]))
        plain = await llm.acompletion(model="plain", messages=[{"role": "user", "content": "x"}])
        answers.append(plain.choices[0].message.content)
        return answers

    answers = asyncio.run(run())
    assert answers[:3] == [
        "[pro-model] to premium",
        "[eco-model] to economy",
        "[std-model] to standard",
    ]
    assert answers[3].startswith("[eco-model] stream it")
    assert answers[4] == "[plain-model] x"
    assert fake.models_called() == [
        "pro-model",
        "eco-model",
        "std-model",
        "eco-model",
        "plain-model",
    ]


def test_strategy_falls_up_to_the_next_tier_that_exists(router: Router, fake: FakeUpstream) -> None:
    llm = litellm.Router(
        model_list=[
            deployment("auto", "std-model", fake.base_url, router_ml_tier="standard"),
            deployment("auto", "pro-model", fake.base_url, router_ml_tier="premium"),
        ],
        num_retries=0,
    )
    RouterMLStrategy(llm, router).install()
    response = asyncio.run(
        llm.acompletion(
            model="auto",
            metadata={"force": "economy"},
            messages=[{"role": "user", "content": "cheap"}],
        )
    )
    assert response.choices[0].message.content == "[std-model] cheap"


def test_proxy_hook_rewrites_the_alias_and_litellm_fallbacks_escalate(
    router: Router, fake: FakeUpstream
) -> None:
    groups = {tier: f"tier-{tier}" for tier in TIER_MODELS}
    llm = litellm.Router(
        model_list=[
            deployment(groups[tier], model, fake.base_url) for tier, model in TIER_MODELS.items()
        ],
        fallbacks=[{"tier-economy": ["tier-standard"]}, {"tier-standard": ["tier-premium"]}],
        num_retries=0,
    )
    hook = RouterMLProxyHook(router, tier_groups=groups, aliases=["auto"])
    fake.plan("eco-model", "500")

    async def run() -> tuple[dict[str, Any], str]:
        data = {
            "model": "auto",
            "metadata": {"force": "economy"},
            "messages": [{"role": "user", "content": "escalate me"}],
        }
        data = await hook.async_pre_call_hook(None, None, data, "completion")
        response = await llm.acompletion(**data)
        return data, response.choices[0].message.content

    data, content = asyncio.run(run())
    assert data["model"] == "tier-economy"
    assert data["metadata"]["router_ml"]["source"] == "rule:force-economy"
    assert content == "[std-model] escalate me"
    assert fake.models_called() == ["eco-model", "std-model"]


def test_proxy_hook_leaves_explicit_models_alone(router: Router) -> None:
    hook = RouterMLProxyHook(router, aliases=["auto"])
    data = {"model": "gpt-4o", "messages": [{"role": "user", "content": "hi"}]}
    assert asyncio.run(hook.async_pre_call_hook(None, None, dict(data), "completion")) == data
