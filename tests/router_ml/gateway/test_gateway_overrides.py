"""Per-request overrides (headers or metadata: validated, logged, stripped before forwarding)
and the recovery keys (a repeated request, a tool error) through the gateway."""

from __future__ import annotations

import httpx
import pytest
from conftest import RunningGateway, config_dict, start_gateway
from fake_upstream import FakeUpstream

from router_ml.errors import InvalidRequest
from router_ml.gateway.overrides import Override, read_override, strip_router_fields

BODY = {"messages": [{"role": "user", "content": "hi"}]}


def test_headers_and_metadata_pin_a_tier_or_an_operating_point() -> None:
    assert not read_override({}, BODY)
    assert read_override({"x-router-tier": "Premium"}, BODY) == Override("premium", None, "header")
    meta = {**BODY, "metadata": {"router_operating_point": "under_routing_0.02"}}
    assert read_override({}, meta) == Override(None, "under_routing_0.02", "metadata")
    assert read_override({"x-router-operating-point": "0.05"}, BODY).operating_point == 0.05
    both = read_override(
        {"x-router-tier": "economy"}, {**BODY, "metadata": {"router_tier": "premium"}}
    )
    assert both.tier == "economy" and both.source == "metadata+header"  # the header wins
    assert not read_override({"x-router-tier": "auto"}, BODY)


def test_a_disabled_source_is_ignored() -> None:
    meta = {**BODY, "metadata": {"router_tier": "premium"}}
    assert not read_override({"x-router-tier": "premium"}, meta, False, False)
    assert read_override({"x-router-tier": "economy"}, meta, True, False).tier == "economy"


@pytest.mark.parametrize(
    ("headers", "metadata", "field"),
    [
        ({"x-router-tier": "gold"}, {}, "x-router-tier"),
        ({}, {"router_tier": 3}, "metadata.router_tier"),
        ({"x-router-operating-point": "1.5"}, {}, "x-router-operating-point"),
        ({"x-router-operating-point": "nan"}, {}, "x-router-operating-point"),
        ({"x-router-operating-point": "x" * 100}, {}, "x-router-operating-point"),
        ({}, {"router_operating_point": True}, "metadata.router_operating_point"),
    ],
)
def test_invalid_values_are_the_clients_error(headers: dict, metadata: dict, field: str) -> None:
    with pytest.raises(InvalidRequest) as info:
        read_override(headers, {**BODY, "metadata": metadata})
    assert info.value.field == field


def test_router_fields_are_not_forwarded() -> None:
    body = {**BODY, "metadata": {"router_tier": "premium", "team": "a"}}
    assert strip_router_fields(body)["metadata"] == {"team": "a"}
    assert "metadata" not in strip_router_fields({**BODY, "metadata": {"router_tier": "premium"}})
    assert strip_router_fields(BODY) == BODY


# -- through the gateway: the openai SDK → gateway → fake upstream ---------------------------

ASK = {"model": "auto", "messages": [{"role": "user", "content": "What is 2 + 2?"}]}


def post(gateway: RunningGateway, body: dict, headers: dict | None = None) -> httpx.Response:
    return httpx.post(
        gateway.base_url + "/v1/chat/completions", json=body, headers=headers or {}, timeout=10.0
    )


def test_a_header_pins_the_tier_and_the_log_says_who_pinned_it(
    gateway: RunningGateway, fake: FakeUpstream
) -> None:
    response = post(gateway, ASK, {"x-router-tier": "premium"})
    assert response.status_code == 200
    assert response.headers["x-router-tier"] == "premium"
    assert response.headers["x-router-source"] == "override"
    assert fake.models_called() == ["pro-model"]
    (line,) = gateway.log_lines()
    assert line["override"] == {"tier": "premium", "operating_point": None, "source": "header"}
    assert line["decision"]["source"] == "override"


def test_metadata_pins_are_honoured_and_not_forwarded(
    gateway: RunningGateway, fake: FakeUpstream
) -> None:
    body = {**ASK, "metadata": {"router_tier": "standard", "team": "search"}}
    response = post(gateway, body)
    assert response.headers["x-router-tier"] == "standard"
    assert fake.requests[-1]["body"]["metadata"] == {"team": "search"}


def test_an_operating_point_override_changes_only_that_request(
    gateway: RunningGateway, fake: FakeUpstream
) -> None:
    router = gateway.gateway.router
    strict = min(router.model.operating_points.values(), key=lambda p: p.thresholds[0])
    response = post(gateway, ASK, {"x-router-operating-point": strict.name})
    assert response.status_code == 200
    (line,) = gateway.log_lines()
    assert line["override"]["operating_point"] == strict.name
    assert f"{strict.thresholds[0]:.2f}" in line["decision"]["reason"]


@pytest.mark.parametrize(
    ("headers", "metadata", "param"),
    [
        ({"x-router-tier": "gold"}, None, "x-router-tier"),
        ({"x-router-operating-point": "no-such-point"}, None, "x-router-operating-point"),
        ({}, {"router_tier": "cheapest"}, "metadata.router_tier"),
    ],
)
def test_invalid_overrides_answer_400_naming_the_field(
    gateway: RunningGateway, fake: FakeUpstream, headers: dict, metadata: dict | None, param: str
) -> None:
    body = {**ASK, **({"metadata": metadata} if metadata else {})}
    response = post(gateway, body, headers)
    assert response.status_code == 400
    assert response.json()["error"]["param"] == param
    assert fake.models_called() == []


def test_overrides_can_be_disabled(fake: FakeUpstream, tiny_model_dir, tmp_path) -> None:
    config = config_dict(fake.base_url, tiny_model_dir, tmp_path / "d.jsonl")
    config["overrides"] = {"enabled": False}
    running, server = start_gateway(config, tmp_path)
    try:
        response = post(running, ASK, {"x-router-tier": "gold"})  # ignored, not rejected
        assert response.status_code == 200 and response.headers["x-router-source"] == "auto"
    finally:
        server.stop()


def test_recovery_rules_send_retries_and_tool_errors_to_premium(
    fake: FakeUpstream, tiny_model_dir, tmp_path
) -> None:
    config = config_dict(fake.base_url, tiny_model_dir, tmp_path / "d.jsonl")
    config["router"]["policy"] = {
        "rules": [
            {"name": "after-tool-error", "match": {"after_error": True}, "tier": "premium"},
            {"name": "user-retry", "match": {"retry": True}, "tier": "premium"},
            {"name": "rest", "match": {"retry": False}, "tier": "economy"},
        ]
    }
    running, server = start_gateway(config, tmp_path)
    try:
        first = post(running, ASK, {"authorization": "Bearer a"})
        assert first.headers["x-router-tier"] == "economy"
        again = post(running, ASK, {"authorization": "Bearer a"})
        assert again.headers["x-router-source"] == "rule:user-retry"
        other_client = post(running, ASK, {"authorization": "Bearer b"})
        assert other_client.headers["x-router-tier"] == "economy"
        assert [line.get("repeated", False) for line in running.log_lines()] == [
            False,
            True,
            False,
        ]
        tool_error = {
            "model": "auto",
            "messages": [
                {"role": "user", "content": "Book the flight"},
                {
                    "role": "assistant",
                    "content": None,
                    "tool_calls": [
                        {
                            "id": "c1",
                            "type": "function",
                            "function": {"name": "book", "arguments": "{}"},
                        }
                    ],
                },
                {
                    "role": "tool",
                    "tool_call_id": "c1",
                    "content": "Error: seat no longer available",
                },
            ],
        }
        assert post(running, tool_error).headers["x-router-source"] == "rule:after-tool-error"
        rejected = {
            "model": "auto",
            "messages": [
                {"role": "user", "content": "Sort [3, 1, 2]"},
                {"role": "assistant", "content": "[3, 2, 1]"},
                {"role": "user", "content": "That's wrong, redo it"},
            ],
        }
        assert post(running, rejected).headers["x-router-source"] == "rule:user-retry"
    finally:
        server.stop()
