"""Answer gates with real parts: the openai SDK → gateway (uvicorn) → fake upstream's bad answers.

A bad answer from the cheap tier must never reach the client while a better tier is left: the
gateway gates it, retries on the next tier and says so in headers, metrics and the log line.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import yaml
from conftest import TIER_MODELS, RunningGateway, config_dict, start_gateway
from fake_upstream import FakeUpstream

openai = pytest.importorskip("openai")

REPO = Path(__file__).resolve().parents[3]
SCHEMA = {
    "type": "object",
    "properties": {"label": {"type": "string", "enum": ["billing", "bug", "other"]}},
    "required": ["label"],
    "additionalProperties": False,
}
JSON_FORMAT = {"type": "json_schema", "json_schema": {"name": "ticket", "schema": SCHEMA}}
TOOLS = [
    {
        "type": "function",
        "function": {
            "name": "get_weather",
            "parameters": {
                "type": "object",
                "properties": {"city": {"type": "string"}, "days": {"type": "integer"}},
                "required": ["city"],
            },
        },
    }
]
ASK = [{"role": "user", "content": "Classify: I was charged twice for March"}]
ECONOMY = {"x-router-tier": "economy"}
GATES = {
    "json": True,
    "tools": True,
    "truncation": True,
    "empty": True,
    "refusal": {"patterns": [r"^I'm sorry\b"]},
}


def client(gateway: RunningGateway) -> openai.OpenAI:
    return openai.OpenAI(
        base_url=gateway.base_url + "/v1", api_key="unused", max_retries=0, timeout=10.0
    )


def gated(fake: FakeUpstream, tiny_model_dir: Path, tmp_path: Path, **changes: Any) -> Any:
    config = config_dict(fake.base_url, tiny_model_dir, tmp_path / "decisions.jsonl")
    config.update({"gates": GATES, "escalation": {"max_retries": 2}, **changes})
    return start_gateway(config, tmp_path)


@pytest.fixture()
def gateway(fake: FakeUpstream, tiny_model_dir: Path, tmp_path: Path) -> Iterator[RunningGateway]:
    running, server = gated(fake, tiny_model_dir, tmp_path)
    try:
        yield running
    finally:
        server.stop()


@pytest.fixture()
def example(fake: FakeUpstream, tiny_model_dir: Path, tmp_path: Path) -> Iterator[RunningGateway]:
    """``examples/gateway.yaml`` as shipped, pointed at the fake upstream (its URL override)."""
    raw = yaml.safe_load((REPO / "examples" / "gateway.yaml").read_text())
    raw["decision_log"]["path"] = str(tmp_path / "decisions.jsonl")
    raw["router"]["model_dir"] = str(tiny_model_dir)
    raw["server"]["port"] = 0
    del raw["auth"]  # the example turns client auth on; these tests are about gates
    running, server = start_gateway(
        raw,
        REPO / "examples",
        {"OPENAI_API_KEY": "sk-test", "ROUTER_ML_UPSTREAM_URL": fake.base_url},
    )
    try:
        yield running
    finally:
        server.stop()


def metric(gateway: RunningGateway, line_start: str) -> float:
    text = httpx.get(gateway.base_url + "/metrics").text
    values = [
        float(line.rsplit(" ", 1)[1]) for line in text.splitlines() if line.startswith(line_start)
    ]
    return sum(values)


def test_example_config_broken_json_from_economy_gets_a_valid_answer_from_a_higher_tier(
    example: RunningGateway, fake: FakeUpstream
) -> None:
    fake.plan("gpt-4o-mini", "broken_json")
    raw = client(example).chat.completions.with_raw_response.create(
        model="auto", messages=ASK, response_format=JSON_FORMAT, extra_headers=ECONOMY
    )
    answer = json.loads(raw.parse().choices[0].message.content)
    assert answer == {"label": "billing"}
    assert raw.headers["x-router-tier"] == "standard" and raw.headers["x-router-model"] == "gpt-4o"
    assert raw.headers["x-router-escalated"] == "true"
    assert raw.headers["x-router-gate"] == "passed"
    assert raw.headers["x-router-source"] == "override"
    assert fake.models_called() == ["gpt-4o-mini", "gpt-4o"]
    (line,) = example.log_lines()
    first, second = line["attempts"]
    assert first["failure"] == "gate" and first["gate"]["name"] == "json"
    assert first["gate"]["passed"] is False and "not valid JSON" in first["gate"]["detail"]
    assert second["failure"] is None and second["gate"]["passed"] is True
    assert line["escalated"] is True and line["escalation_reason"] == "gate"
    assert line["outcome"] == "ok" and line["tier"] == "standard"
    assert line["override"] == {"tier": "economy", "operating_point": None, "source": "header"}
    assert metric(example, 'router_ml_gate_failures_total{gate="json",tier="economy"}') == 1


def test_example_config_tool_arguments_missing_a_required_parameter_escalate(
    example: RunningGateway, fake: FakeUpstream
) -> None:
    fake.plan("gpt-4o-mini", "tool_args_missing")
    raw = client(example).chat.completions.with_raw_response.create(
        model="auto",
        messages=[{"role": "user", "content": "Weather in Oslo for two days?"}],
        tools=TOOLS,
        extra_headers=ECONOMY,
    )
    (call,) = raw.parse().choices[0].message.tool_calls
    assert call.function.name == "get_weather"
    assert "city" in json.loads(call.function.arguments)
    assert raw.headers["x-router-tier"] == "standard"
    (line,) = example.log_lines()
    assert line["attempts"][0]["gate"]["name"] == "tools"
    assert "'city' is a required property" in line["attempts"][0]["gate"]["detail"]


@pytest.mark.parametrize(
    ("behaviour", "gate", "kwargs"),
    [
        ("schema_violation", "json", {"response_format": JSON_FORMAT}),
        ("unknown_tool", "tools", {"tools": TOOLS}),
        ("tool_args_broken", "tools", {"tools": TOOLS}),
        ("truncated", "truncation", {}),
        ("empty", "empty", {}),
        ("refusal", "refusal", {}),
        ("refusal_text", "refusal", {}),
    ],
)
def test_each_bad_answer_fails_its_gate_and_the_next_tier_answers(
    gateway: RunningGateway, fake: FakeUpstream, behaviour: str, gate: str, kwargs: dict
) -> None:
    fake.plan("eco-model", behaviour)
    raw = client(gateway).chat.completions.with_raw_response.create(
        model="auto", messages=ASK, extra_headers=ECONOMY, **kwargs
    )
    raw.parse()
    assert raw.headers["x-router-tier"] == "standard", behaviour
    (line,) = gateway.log_lines()
    assert line["attempts"][0]["gate"]["name"] == gate
    assert line["attempts"][0]["gate"]["passed"] is False
    assert line["attempts"][0]["gate_ms"] >= 0


def test_when_every_tier_fails_the_last_answer_is_served_and_marked(
    gateway: RunningGateway, fake: FakeUpstream
) -> None:
    for model in TIER_MODELS.values():
        fake.plan(model, "broken_json")
    response = httpx.post(
        gateway.base_url + "/v1/chat/completions",
        json={"model": "auto", "messages": ASK, "response_format": {"type": "json_object"}},
        headers=ECONOMY,
        timeout=10.0,
    )
    assert response.status_code == 200
    assert response.headers["x-router-tier"] == "premium"
    assert response.headers["x-router-gate"] == "failed:json"
    (line,) = gateway.log_lines()
    assert [a["tier"] for a in line["attempts"]] == ["economy", "standard", "premium"]
    assert all(a["failure"] == "gate" for a in line["attempts"])
    assert line["outcome"] == "gate_failed" and line["status"] == 200


def test_a_passing_answer_is_not_retried_and_says_passed(
    gateway: RunningGateway, fake: FakeUpstream
) -> None:
    raw = client(gateway).chat.completions.with_raw_response.create(
        model="auto", messages=ASK, extra_headers=ECONOMY
    )
    assert raw.headers["x-router-gate"] == "passed"
    assert raw.headers["x-router-escalated"] == "false"
    assert fake.models_called() == ["eco-model"]
    (line,) = gateway.log_lines()
    assert line["attempts"][0]["gate"] == {
        "name": "json,tools,truncation,empty,refusal",
        "passed": True,
        "detail": "",
    }


def stream_text(stream: Any) -> tuple[str, set[str]]:
    chunks = list(stream)
    text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    return text, {c.model for c in chunks}


def test_a_gated_stream_is_buffered_and_the_client_sees_only_the_good_answer(
    gateway: RunningGateway, fake: FakeUpstream
) -> None:
    fake.plan("eco-model", "broken_json")
    stream = client(gateway).chat.completions.create(
        model="auto",
        messages=ASK,
        response_format=JSON_FORMAT,
        stream=True,
        stream_options={"include_usage": True},
        extra_headers=ECONOMY,
    )
    text, models = stream_text(stream)
    assert json.loads(text) == {"label": "billing"}
    assert models == {"std-model"}  # not one byte of the economy answer
    (line,) = gateway.log_lines()
    assert line["attempts"][0]["gate"]["name"] == "json"
    assert line["outcome"] == "ok" and line["stream"] is True
    assert line["usage"]["completion_tokens"] == 7


def test_a_buffered_stream_that_breaks_is_retried_like_a_failed_call(
    gateway: RunningGateway, fake: FakeUpstream
) -> None:
    fake.plan("eco-model", "drop_mid_stream")
    stream = client(gateway).chat.completions.create(
        model="auto", messages=ASK, tools=TOOLS, stream=True, extra_headers=ECONOMY
    )
    chunks = list(stream)
    assert {c.model for c in chunks} == {"std-model"}
    (line,) = gateway.log_lines()
    assert line["attempts"][0]["failure"] == "connection"
    assert line["attempts"][0]["gate"] is None


def test_plain_streams_are_not_held_back_by_default(
    gateway: RunningGateway, fake: FakeUpstream
) -> None:
    fake.plan("eco-model", "truncated")  # truncation does not buffer streams by default
    with client(gateway).chat.completions.with_streaming_response.create(
        model="auto", messages=ASK, stream=True, extra_headers=ECONOMY
    ) as response:
        assert response.headers["x-router-gate"] == "off"
        assert response.headers["x-router-tier"] == "economy"
        list(response.iter_lines())


def test_a_stream_longer_than_the_buffer_is_relayed_ungated(
    fake: FakeUpstream, tiny_model_dir: Path, tmp_path: Path
) -> None:
    running, server = gated(
        fake, tiny_model_dir, tmp_path, gates={**GATES, "stream_buffer_bytes": 64}
    )
    try:
        fake.plan("eco-model", "broken_json")
        stream = client(running).chat.completions.create(
            model="auto",
            messages=ASK,
            response_format=JSON_FORMAT,
            stream=True,
            extra_headers=ECONOMY,
        )
        text, models = stream_text(stream)
        assert models == {"eco-model"} and text == '{"label": "billing"'
        (line,) = running.log_lines()
        assert line["attempts"][0]["gate"]["name"] == "buffer"
        assert line["attempts"][0]["gate"]["passed"] is True
    finally:
        server.stop()


def test_a_cascade_rule_tries_the_cheap_tier_and_steps_to_its_next(
    fake: FakeUpstream, tiny_model_dir: Path, tmp_path: Path
) -> None:
    policy = {
        "rules": [{"name": "json-cascade", "match": {"json_mode": True}, "tier": "cascade"}],
        "default": {"tier": "auto"},
    }
    running, server = gated(
        fake,
        tiny_model_dir,
        tmp_path,
        router={"model_dir": str(tiny_model_dir), "policy": policy},
        escalation={"max_retries": 0},
    )
    try:
        fake.plan("eco-model", "broken_json")
        raw = client(running).chat.completions.with_raw_response.create(
            model="auto", messages=ASK, response_format={"type": "json_object"}
        )
        json.loads(raw.parse().choices[0].message.content)
        assert raw.headers["x-router-source"] == "rule:json-cascade"
        assert raw.headers["x-router-tier"] == "premium"  # the cascade skips standard
        assert fake.models_called() == ["eco-model", "pro-model"]
        (line,) = running.log_lines()
        assert line["decision"]["cascade"] == ["economy", "premium"]
        fake.reset()
        client(running).chat.completions.create(
            model="auto", messages=ASK, response_format={"type": "json_object"}
        )
        assert fake.models_called() == ["eco-model"]  # a good cheap answer costs one call
    finally:
        server.stop()


def test_the_judge_gate_escalates_a_low_score(
    fake: FakeUpstream, tiny_model_dir: Path, tmp_path: Path
) -> None:
    running, server = gated(
        fake,
        tiny_model_dir,
        tmp_path,
        gates={"empty": True, "judge": {"model": "judge-model", "threshold": 6}},
    )
    try:
        fake.plan("judge-model", "judge_low", "judge_high")
        raw = client(running).chat.completions.with_raw_response.create(
            model="auto", messages=ASK, extra_headers=ECONOMY
        )
        assert raw.headers["x-router-tier"] == "standard"
        assert fake.models_called() == ["eco-model", "judge-model", "std-model", "judge-model"]
        judged = fake.requests[1]["body"]["messages"][0]["content"]
        assert "I was charged twice" in judged and "[eco-model]" in judged
        (line,) = running.log_lines()
        assert [a["gate"]["name"] for a in line["attempts"]] == ["judge", "judge"]
        assert [a["gate"]["passed"] for a in line["attempts"]] == [False, True]
        assert "score 2" in line["attempts"][0]["gate"]["detail"]
    finally:
        server.stop()
