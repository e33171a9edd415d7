"""Fault injection: each upstream failure escalates or fails cleanly, and is logged exactly once."""

from __future__ import annotations

import json
import socket
from pathlib import Path
from typing import Any

import httpx
import pytest
from conftest import RunningGateway, config_dict, start_gateway
from fake_upstream import FakeUpstream

openai = pytest.importorskip("openai")


def chat(
    gateway: RunningGateway,
    tier: str,
    stream: bool = False,
    content: str = "hello there",
    **extra: Any,
) -> httpx.Response:
    """POST a chat request pinned to ``tier``; a stream is read to its end."""
    body = {
        "model": "auto",
        "messages": [{"role": "user", "content": content}],
        "metadata": {"force": tier},
        "stream": stream,
        **extra,
    }
    with httpx.Client(timeout=10.0) as http:
        response = http.post(gateway.base_url + "/v1/chat/completions", json=body)
    return response


def events(response: httpx.Response) -> list[Any]:
    """The SSE ``data:`` payloads of a relayed stream."""
    out = []
    for line in response.text.splitlines():
        if line.startswith("data: ") and line != "data: [DONE]":
            out.append(json.loads(line[6:]))
    return out


@pytest.mark.parametrize(
    ("behaviour", "reason", "stream"),
    [
        ("500", "http_5xx", False),
        ("503", "http_5xx", True),
        ("429", "http_429", False),
        ("stall", "timeout", False),
        ("stall", "timeout", True),
        ("drop", "connection", False),
        ("drop_after_headers", "connection", True),
    ],
)
def test_failure_before_first_byte_escalates_one_tier(
    gateway: RunningGateway, fake: FakeUpstream, behaviour: str, reason: str, stream: bool
) -> None:
    fake.plan("eco-model", behaviour)
    response = chat(gateway, "economy", stream=stream)
    assert response.status_code == 200
    assert response.headers["x-router-tier"] == "standard"
    assert response.headers["x-router-model"] == "std-model"
    assert response.headers["x-router-escalated"] == "true"
    assert fake.models_called() == ["eco-model", "std-model"]
    if stream:
        assert "std-model" in "".join(
            e["choices"][0]["delta"].get("content") or "" for e in events(response) if e["choices"]
        )
    else:
        assert response.json()["model"] == "std-model"
    (line,) = gateway.log_lines()
    assert line["outcome"] == "ok" and line["escalated"] is True
    assert line["escalation_reason"] == reason
    assert [a["failure"] for a in line["attempts"]] == [reason, None]
    assert line["decision"]["tier"] == "economy" and line["tier"] == "standard"
    metrics = httpx.get(gateway.base_url + "/metrics").text
    assert (
        f'router_ml_escalations_total{{from_tier="economy",to_tier="standard",reason="{reason}"}} 1'
        in metrics
    )


def test_client_error_is_never_retried(gateway: RunningGateway, fake: FakeUpstream) -> None:
    fake.plan("eco-model", "400")
    response = chat(gateway, "economy")
    assert response.status_code == 400
    assert response.json()["error"]["message"] == "fake upstream says 400"
    assert response.headers["x-router-escalated"] == "false"
    assert fake.models_called() == ["eco-model"]
    (line,) = gateway.log_lines()
    assert line["outcome"] == "upstream_error" and line["upstream_status"] == 400
    assert line["attempts"][0]["failure"] == "http_4xx"


def test_top_tier_failure_is_returned_with_its_status(
    gateway: RunningGateway, fake: FakeUpstream
) -> None:
    fake.plan("pro-model", "429")
    response = chat(gateway, "premium")
    assert response.status_code == 429 and response.headers["retry-after"] == "1"
    assert fake.models_called() == ["pro-model"]
    assert gateway.log_lines()[0]["outcome"] == "upstream_error"


def test_retry_budget_bounds_the_chain(gateway: RunningGateway, fake: FakeUpstream) -> None:
    fake.plan("eco-model", "500")
    fake.plan("std-model", "500")
    response = chat(gateway, "economy")
    assert response.status_code == 500  # max_retries 1: standard's failure is final
    assert fake.models_called() == ["eco-model", "std-model"]
    line = gateway.log_lines()[0]
    assert [a["tier"] for a in line["attempts"]] == ["economy", "standard"]


def test_configured_chain_and_budget(
    fake: FakeUpstream, tiny_model_dir: Path, tmp_path: Path
) -> None:
    config = config_dict(
        fake.base_url,
        tiny_model_dir,
        tmp_path / "log.jsonl",
        escalation={"chain": ["economy", "premium"], "max_retries": 2, "retry_on": ["http_5xx"]},
    )
    running, server = start_gateway(config, tmp_path)
    try:
        fake.plan("eco-model", "500")
        assert chat(running, "economy").headers["x-router-tier"] == "premium"
        fake.plan("eco-model", "429")  # not in retry_on
        assert chat(running, "economy").status_code == 429
    finally:
        server.stop()
    assert fake.models_called() == ["eco-model", "pro-model", "eco-model"]


def test_unreachable_upstreams_give_502(
    fake: FakeUpstream, tiny_model_dir: Path, tmp_path: Path
) -> None:
    with socket.socket() as probe:  # a loopback port with nothing listening
        probe.bind(("127.0.0.1", 0))
        dead = f"http://127.0.0.1:{probe.getsockname()[1]}/v1"
    running, server = start_gateway(
        config_dict(dead, tiny_model_dir, tmp_path / "log.jsonl"), tmp_path
    )
    try:
        with pytest.raises(openai.APIStatusError) as info:
            openai.OpenAI(
                base_url=running.base_url + "/v1", api_key="x", max_retries=0
            ).chat.completions.create(
                model="auto",
                messages=[{"role": "user", "content": "hi"}],
                metadata={"force": "economy"},
            )
    finally:
        server.stop()
    assert info.value.status_code == 502
    assert info.value.body["code"] == "upstream_unreachable"
    (line,) = running.log_lines()
    assert line["outcome"] == "upstream_connection"
    assert [a["failure"] for a in line["attempts"]] == ["connection", "connection"]


@pytest.mark.parametrize(
    ("behaviour", "fragment"),
    [
        ("drop_mid_stream", "after streaming started"),
        ("stall_mid_stream", "ReadTimeout"),
    ],
)
def test_failure_after_streaming_started_is_not_retried(
    gateway: RunningGateway, fake: FakeUpstream, behaviour: str, fragment: str
) -> None:
    fake.plan("eco-model", behaviour)
    sdk = openai.OpenAI(base_url=gateway.base_url + "/v1", api_key="x", max_retries=0, timeout=10.0)
    received = []
    with pytest.raises(openai.APIError) as info:
        for chunk in sdk.chat.completions.create(
            model="auto",
            stream=True,
            metadata={"force": "economy"},
            messages=[{"role": "user", "content": "hi there"}],
        ):
            received.append(chunk)
    assert len(received) == 1  # the first chunk arrived, then the error event
    assert "not retried" in str(info.value)
    assert fake.models_called() == ["eco-model"]
    (line,) = gateway.log_lines()
    assert line["outcome"] == "stream_interrupted" and fragment in line["error"]
    assert line["escalated"] is False


def test_client_disconnect_mid_stream_is_logged(
    gateway: RunningGateway, fake: FakeUpstream
) -> None:
    fake.plan("eco-model", "stall_mid_stream")
    body = {
        "model": "auto",
        "stream": True,
        "metadata": {"force": "economy"},
        "messages": [{"role": "user", "content": "hi"}],
    }
    with (
        httpx.Client(timeout=10.0) as http,
        http.stream("POST", gateway.base_url + "/v1/chat/completions", json=body) as response,
    ):
        first = next(response.iter_raw())
        assert first.startswith(b"data: ")
    for _ in range(200):  # the gateway notices the disconnect asynchronously
        lines = gateway.log_lines()
        if lines:
            break
        fake.release.wait(0.02)
    (line,) = gateway.log_lines()
    assert line["outcome"] == "client_disconnected"  # noticed before the 1 s idle timeout


def test_routing_error_falls_back_to_the_safe_tier(
    gateway: RunningGateway, fake: FakeUpstream, monkeypatch: pytest.MonkeyPatch
) -> None:
    def broken(*_args: Any) -> None:
        raise RuntimeError("model exploded")

    monkeypatch.setattr(gateway.gateway.router, "route", broken)
    response = chat(gateway, "economy")
    assert response.status_code == 200
    assert response.headers["x-router-tier"] == "premium"
    assert response.headers["x-router-source"] == "fallback"
    assert fake.models_called() == ["pro-model"]
    line = gateway.log_lines()[0]
    assert "model exploded" in line["decision"]["reason"]
    assert (
        'router_ml_errors_total{kind="routing"} 1' in httpx.get(gateway.base_url + "/metrics").text
    )


def test_every_request_has_exactly_one_log_line_under_faults(
    gateway: RunningGateway, fake: FakeUpstream
) -> None:
    plans = ["500", "429", "400", "drop", "stall", "ok", "drop_mid_stream", "drop_after_headers"]
    ids = []
    for index, behaviour in enumerate(plans * 2):
        fake.plan("eco-model", behaviour)
        response = chat(gateway, "economy", stream=index % 2 == 1)
        ids.append(response.headers["x-router-request-id"])
    bad = httpx.post(gateway.base_url + "/v1/chat/completions", content=b"{")
    ids.append(bad.headers["x-router-request-id"])
    logged = [line["id"] for line in gateway.log_lines()]
    assert sorted(logged) == sorted(ids) and len(set(ids)) == len(ids)
    assert all("outcome" in line and "status" in line for line in gateway.log_lines())


def test_a_proxying_bug_is_an_openai_style_500_with_its_log_line(
    gateway: RunningGateway, fake: FakeUpstream, monkeypatch: pytest.MonkeyPatch
) -> None:
    import router_ml.gateway.handlers as app_module

    async def broken(*_args: Any, **_kwargs: Any) -> None:
        raise KeyError("bug")

    monkeypatch.setattr(app_module, "call_with_escalation", broken)
    response = chat(gateway, "economy")
    assert response.status_code == 500
    assert response.json()["error"]["code"] == "internal_error"
    (line,) = gateway.log_lines()
    assert (
        line["outcome"] == "internal_error"
        and line["id"] == response.headers["x-router-request-id"]
    )
