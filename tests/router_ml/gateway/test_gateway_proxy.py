"""The proxy with real parts: the official openai SDK → gateway (uvicorn) → fake upstream."""

from __future__ import annotations

import json
from pathlib import Path

import httpx
import pytest
from conftest import TIER_MODELS, RunningGateway, config_dict, start_gateway
from fake_upstream import FakeUpstream

openai = pytest.importorskip("openai")

TOOLS = [
    {
        "type": "function",
        "function": {
            "name": "search_flights",
            "description": "Find flights between two airports.",
            "parameters": {
                "type": "object",
                "properties": {"query": {"type": "string"}},
                "required": ["query"],
            },
        },
    }
]


def client(gateway: RunningGateway, api_key: str = "unused") -> openai.OpenAI:
    return openai.OpenAI(
        base_url=gateway.base_url + "/v1", api_key=api_key, max_retries=0, timeout=10.0
    )


def forced(tier: str) -> dict[str, str]:
    return {"force": tier}


def test_routed_non_streaming_answer_comes_from_the_chosen_tier(
    gateway: RunningGateway, fake: FakeUpstream
) -> None:
    raw = client(gateway).chat.completions.with_raw_response.create(
        model="auto",
        messages=[{"role": "user", "content": "Say hello to the team"}],
        metadata=forced("standard"),
    )
    completion = raw.parse()
    assert raw.headers["x-router-tier"] == "standard"
    assert raw.headers["x-router-model"] == TIER_MODELS["standard"]
    assert raw.headers["x-router-source"] == "rule:force-standard"
    assert raw.headers["x-router-escalated"] == "false"
    assert raw.headers["x-request-id"] == "fake-req"  # upstream headers are relayed
    assert completion.choices[0].message.content == "[std-model] Say hello to the team"
    assert completion.usage is not None and completion.usage.completion_tokens == 7
    assert fake.models_called() == ["std-model"]
    sent = fake.requests[0]["body"]
    assert sent["messages"] == [{"role": "user", "content": "Say hello to the team"}]
    assert sent["metadata"] == {"force": "standard"}


def test_model_decides_when_no_rule_matches(gateway: RunningGateway, fake: FakeUpstream) -> None:
    raw = client(gateway).chat.completions.with_raw_response.create(
        model="router-ml", messages=[{"role": "user", "content": "What is 2 + 2?"}]
    )
    assert raw.headers["x-router-source"] == "auto"
    tier = raw.headers["x-router-tier"]
    assert fake.models_called() == [TIER_MODELS[tier]]
    line = gateway.log_lines()[-1]
    assert line["decision"]["source"] == "auto"
    assert set(line["decision"]["probabilities"]) == set(TIER_MODELS)
    assert len(line["features"]) > 10 and line["feature_schema"]


def test_streaming_is_relayed_chunk_by_chunk(gateway: RunningGateway, fake: FakeUpstream) -> None:
    stream = client(gateway).chat.completions.create(
        model="auto",
        messages=[{"role": "user", "content": "Stream me a few words please"}],
        metadata=forced("economy"),
        stream=True,
        stream_options={"include_usage": True},
    )
    chunks = list(stream)
    text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    assert text == "[eco-model] Stream me a few words "
    assert chunks[-1].usage is not None and chunks[-1].usage.completion_tokens == 7
    line = gateway.log_lines()[-1]
    assert line["outcome"] == "ok" and line["stream"] is True and line["tier"] == "economy"
    assert line["usage"]["completion_tokens"] == 7


@pytest.mark.parametrize("stream", [False, True])
def test_tool_calls_round_trip(gateway: RunningGateway, fake: FakeUpstream, stream: bool) -> None:
    sdk = client(gateway)
    messages = [{"role": "user", "content": "Book me a flight from SFO to JFK tomorrow"}]
    if stream:
        calls: dict[int, dict[str, str]] = {}
        for chunk in sdk.chat.completions.create(
            model="auto", messages=messages, tools=TOOLS, stream=True, metadata=forced("premium")
        ):
            for call in (chunk.choices[0].delta.tool_calls or []) if chunk.choices else []:
                entry = calls.setdefault(call.index, {"name": "", "arguments": ""})
                entry["name"] += call.function.name or ""
                entry["arguments"] += call.function.arguments or ""
        assert calls == {0: {"name": "search_flights", "arguments": '{"query": "fake"}'}}
    else:
        completion = sdk.chat.completions.create(
            model="auto", messages=messages, tools=TOOLS, metadata=forced("premium")
        )
        call = completion.choices[0].message.tool_calls[0]
        assert call.function.name == "search_flights"
        assert json.loads(call.function.arguments) == {"query": "fake"}
    assert fake.requests[-1]["body"]["tools"] == TOOLS
    assert fake.models_called() == ["pro-model"]


def test_explicit_model_passes_through_untouched(
    gateway: RunningGateway, fake: FakeUpstream
) -> None:
    body = (
        b'{"model": "some-real-model",  "messages": [{"role": "user", "content": "hi"}], '
        b'"x_custom": 1}'
    )
    response = httpx.post(
        gateway.base_url + "/v1/chat/completions",
        content=body,
        headers={"content-type": "application/json"},
    )
    assert response.status_code == 200
    assert response.headers["x-router-source"] == "passthrough"
    assert response.headers["x-router-model"] == "some-real-model"
    assert fake.requests[-1]["body"] == json.loads(body)
    line = gateway.log_lines()[-1]
    assert line["requested_model"] == "some-real-model" and "decision" not in line


def test_tier_model_name_passes_through_without_routing(
    gateway: RunningGateway, fake: FakeUpstream
) -> None:
    raw = client(gateway).chat.completions.with_raw_response.create(
        model="eco-model", messages=[{"role": "user", "content": "hi"}], metadata=forced("premium")
    )
    assert raw.headers["x-router-tier"] == "economy"
    assert raw.headers["x-router-source"] == "passthrough"
    assert fake.models_called() == ["eco-model"]


def test_route_endpoint_answers_the_decision(gateway: RunningGateway, fake: FakeUpstream) -> None:
    response = httpx.post(
        gateway.base_url + "/v1/route",
        json={
            "messages": [{"role": "user", "content": "Prove that sqrt(2) is irrational."}],
            "metadata": {"force": "premium"},
        },
    )
    assert response.status_code == 200
    decision = response.json()
    assert decision["tier"] == "premium" and decision["model"] == "pro-model"
    assert decision["source"] == "rule:force-premium"
    assert decision["request_id"] == response.headers["x-router-request-id"]
    assert fake.requests == []
    assert gateway.log_lines()[-1]["endpoint"] == "route"


@pytest.mark.parametrize(
    ("body", "param", "fragment"),
    [
        (b'{"model": "auto", "messages": [', "body", "malformed JSON"),
        (b"[1, 2]", "body", "expected a JSON object"),
        (b'{"model": "auto"}', "messages", "missing"),
        (
            b'{"model": "auto", "messages": [{"role": "robot", "content": "x"}]}',
            "messages[0].role",
            "unknown role",
        ),
        (b'{"messages": [{"role": "user", "content": "x"}]}', "model", "expected a model name"),
    ],
)
def test_bad_requests_get_an_openai_style_400(
    gateway: RunningGateway, fake: FakeUpstream, body: bytes, param: str, fragment: str
) -> None:
    response = httpx.post(
        gateway.base_url + "/v1/chat/completions",
        content=body,
        headers={"content-type": "application/json"},
    )
    assert response.status_code == 400
    error = response.json()["error"]
    assert error["type"] == "invalid_request_error"
    assert error["param"] == param and fragment in error["message"]
    assert fake.requests == []
    line = gateway.log_lines()[-1]
    assert line["status"] == 400 and line["outcome"] == "invalid_request"


def test_sdk_raises_bad_request_naming_the_field(gateway: RunningGateway) -> None:
    with pytest.raises(openai.BadRequestError) as info:
        client(gateway).chat.completions.create(
            model="auto", messages=[{"role": "user", "content": [{"type": "video", "url": "x"}]}]
        )
    assert "messages[0].content[0].type" in str(info.value)


def test_unknown_model_without_passthrough_is_404(
    fake: FakeUpstream, tiny_model_dir: Path, tmp_path: Path
) -> None:
    config = config_dict(fake.base_url, tiny_model_dir, tmp_path / "log.jsonl")
    del config["passthrough"]
    running, server = start_gateway(config, tmp_path)
    try:
        with pytest.raises(openai.NotFoundError):
            client(running).chat.completions.create(
                model="mystery", messages=[{"role": "user", "content": "hi"}]
            )
    finally:
        server.stop()
    assert fake.requests == []


def test_bearer_auth_and_body_limit(
    fake: FakeUpstream, tiny_model_dir: Path, tmp_path: Path
) -> None:
    config = config_dict(
        fake.base_url,
        tiny_model_dir,
        tmp_path / "log.jsonl",
        auth={"client_tokens_env": "GW_TOKENS"},
        limits={"max_body_bytes": 2048},
    )
    running, server = start_gateway(config, tmp_path, environ={"GW_TOKENS": "alpha, beta"})
    try:
        messages = [{"role": "user", "content": "hi"}]
        with pytest.raises(openai.AuthenticationError):
            client(running, api_key="wrong").chat.completions.create(
                model="auto", messages=messages
            )
        ok = client(running, api_key="beta").chat.completions.create(
            model="auto", messages=messages
        )
        assert ok.choices[0].message.content.endswith("hi")
        big = [{"role": "user", "content": "x" * 4096}]
        with pytest.raises(openai.APIStatusError) as info:
            client(running, api_key="alpha").chat.completions.create(model="auto", messages=big)
        assert info.value.status_code == 413
    finally:
        server.stop()
    outcomes = [line["outcome"] for line in running.log_lines()]
    assert outcomes == ["unauthorized", "ok", "too_large"]
    assert len(fake.requests) == 1


def test_health_and_metrics(gateway: RunningGateway) -> None:
    client(gateway).chat.completions.create(
        model="auto", metadata=forced("economy"), messages=[{"role": "user", "content": "hi"}]
    )
    health = httpx.get(gateway.base_url + "/healthz")
    assert health.status_code == 200 and health.json()["tiers"] == TIER_MODELS
    metrics = httpx.get(gateway.base_url + "/metrics")
    assert metrics.headers["content-type"].startswith("text/plain; version=0.0.4")
    text = metrics.text
    assert 'router_ml_decisions_total{tier="economy",source="rule:force-economy"} 1' in text
    assert 'router_ml_requests_total{endpoint="chat.completions",status="200"} 1' in text
    assert "router_ml_route_latency_seconds_count 1" in text
    assert 'router_ml_upstream_latency_seconds_count{tier="economy",outcome="ok"} 1' in text


def test_models_lists_aliases_and_tier_models(gateway: RunningGateway) -> None:
    names = [model.id for model in client(gateway).models.list()]
    assert names == ["auto", "router-ml", "eco-model", "std-model", "pro-model"]
