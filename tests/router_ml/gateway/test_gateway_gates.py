"""Answer gates on real answer shapes: what passes, what fails and why."""

from __future__ import annotations

import json
from typing import Any

import pytest

from router_ml.gateway.gates import (
    STRUCTURAL_GATES,
    GateVerdict,
    JudgeSpec,
    assemble_stream,
    build_gates,
    check_empty,
    check_json,
    check_tools,
    check_truncation,
    judge_request,
    judge_verdict,
)

SCHEMA = {
    "type": "object",
    "properties": {"label": {"type": "string", "enum": ["billing", "bug"]}},
    "required": ["label"],
    "additionalProperties": False,
}
WEATHER = {
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


def answer(
    content: str | None = "ok",
    finish: str = "stop",
    tool_calls: list[dict[str, Any]] | None = None,
    **message: Any,
) -> dict[str, Any]:
    body: dict[str, Any] = {"role": "assistant", "content": content, **message}
    if tool_calls is not None:
        body["tool_calls"] = tool_calls
    return {"choices": [{"index": 0, "message": body, "finish_reason": finish}]}


def call(name: str, arguments: str) -> dict[str, Any]:
    return {"id": "c1", "type": "function", "function": {"name": name, "arguments": arguments}}


def json_request(schema: dict[str, Any] | None = None) -> dict[str, Any]:
    if schema is None:
        return {"messages": [], "response_format": {"type": "json_object"}}
    return {
        "messages": [],
        "response_format": {"type": "json_schema", "json_schema": {"name": "x", "schema": schema}},
    }


def test_json_mode_answers_must_parse_and_be_objects() -> None:
    request = json_request()
    assert check_json(request, answer('{"label": "billing"}')) is None
    assert "not valid JSON" in check_json(request, answer('{"label": "billing"'))
    assert "list, not an object" in check_json(request, answer("[1, 2]"))
    assert "no text content" in check_json(request, answer(None))
    # Not JSON mode: any text passes.
    assert check_json({"messages": []}, answer("{broken")) is None


def test_json_schema_answers_must_validate() -> None:
    request = json_request(SCHEMA)
    assert check_json(request, answer('{"label": "bug"}')) is None
    problem = check_json(request, answer('{"label": "refund"}'))
    assert problem is not None and "at label" in problem and "refund" in problem
    assert "'label' is a required property" in check_json(request, answer("{}"))


def test_an_unusable_client_schema_passes_the_answer_with_a_reason() -> None:
    gates = build_gates(STRUCTURAL_GATES)
    request = json_request({"type": "no-such-type"})
    result = gates.check(request, answer('{"a": 1}'))
    assert result == GateVerdict("json", True, result.detail)
    assert "schema" in result.detail


def test_tool_calls_must_name_a_defined_tool_with_valid_arguments() -> None:
    request = {"messages": [], "tools": [WEATHER]}
    good = answer(None, "tool_calls", [call("get_weather", '{"city": "Oslo", "days": 2}')])
    assert check_tools(request, good) is None
    assert "did not define" in check_tools(
        request, answer(None, "tool_calls", [call("get_time", "{}")])
    )
    assert "not valid JSON" in check_tools(
        request, answer(None, "tool_calls", [call("get_weather", '{"city": "Oslo"')])
    )
    missing = check_tools(request, answer(None, "tool_calls", [call("get_weather", '{"days": 2}')]))
    assert missing is not None and "'city' is a required property" in missing
    wrong_type = check_tools(
        request, answer(None, "tool_calls", [call("get_weather", '{"city": "Oslo", "days": "2"}')])
    )
    assert wrong_type is not None and "at days" in wrong_type
    assert "not an object" in check_tools(
        request, answer(None, "tool_calls", [call("get_weather", '"Oslo"')])
    )


def test_legacy_function_calls_are_checked_too() -> None:
    request = {"messages": [], "functions": [WEATHER["function"]]}
    good = answer(None, function_call={"name": "get_weather", "arguments": '{"city": "Rome"}'})
    bad = answer(None, function_call={"name": "get_weather", "arguments": "{}"})
    assert check_tools(request, good) is None
    assert "required" in check_tools(request, bad)


def test_truncated_and_empty_answers_fail() -> None:
    assert check_truncation({}, answer("The answer is", "length")) is not None
    assert check_truncation({}, answer("The answer is 4.")) is None
    assert check_empty({}, answer("   ")) is not None
    assert check_empty({}, answer(None)) is not None
    assert check_empty({}, {"choices": []}) is not None
    assert check_empty({}, answer(None, "tool_calls", [call("f", "{}")])) is None
    assert check_empty({}, answer(None, refusal="I can't help with that.")) is None


def test_refusals_fail_by_field_and_by_configured_pattern() -> None:
    gates = build_gates(["refusal"], refusal_patterns=[r"^(i'm sorry|i cannot)\b"])
    assert not gates.check({}, answer(None, refusal="I can't help with that.")).passed
    result = gates.check({}, answer("I'm sorry, but I can't do that."))
    assert not result.passed and result.name == "refusal"
    assert gates.check({}, answer("Sure: here it is.")).passed


def test_gates_run_in_order_and_the_first_failure_decides() -> None:
    gates = build_gates(STRUCTURAL_GATES)
    broken = answer('{"label": "billing"', "length")
    result = gates.check(json_request(), broken)
    assert result.to_dict() == {
        "name": "json",
        "passed": False,
        "detail": result.detail,
    }
    passed = gates.check(json_request(), answer('{"label": "billing"}'))
    assert passed == GateVerdict("json,tools,truncation,empty", True, "")


def test_user_gate_is_a_dotted_callable(tmp_path: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    (tmp_path / "my_gates.py").write_text(
        "def no_lorem(request, answer):\n"
        "    text = answer['choices'][0]['message']['content'] or ''\n"
        "    return 'placeholder text' if 'lorem' in text else None\n"
        "def broken(request, answer):\n"
        "    raise KeyError('oops')\n"
    )
    monkeypatch.syspath_prepend(str(tmp_path))
    gates = build_gates(["user"], user_target="my_gates:no_lorem")
    assert gates.check({}, answer("lorem ipsum")) == GateVerdict("user", False, "placeholder text")
    assert gates.check({}, answer("real text")).passed
    crashing = build_gates(["user"], user_target="my_gates.broken").check({}, answer("x"))
    assert crashing.passed and "KeyError" in crashing.detail
    with pytest.raises(ValueError, match="cannot import"):
        build_gates(["user"], user_target="my_gates:missing")


def test_unknown_gates_and_stream_modes_are_refused() -> None:
    with pytest.raises(ValueError, match="unknown gates"):
        build_gates(["json", "jsn"])
    with pytest.raises(ValueError, match="stream"):
        build_gates(["json"], stream_modes={"json": "sometimes"})


def test_streams_are_buffered_only_where_a_gate_concerns_the_request() -> None:
    gates = build_gates(STRUCTURAL_GATES)
    assert gates.buffers_stream(json_request())
    assert gates.buffers_stream({"messages": [], "tools": [WEATHER]})
    assert not gates.buffers_stream({"messages": []})
    everything = build_gates(STRUCTURAL_GATES, stream_modes={"truncation": "buffer"})
    assert everything.buffers_stream({"messages": []})


def sse(*events: dict[str, Any]) -> bytes:
    return b"".join(b"data: " + json.dumps(e).encode() + b"\n\n" for e in events) + (
        b"data: [DONE]\n\n"
    )


def test_a_stream_is_reassembled_into_the_answer_it_spells() -> None:
    body = sse(
        {"choices": [{"index": 0, "delta": {"role": "assistant", "content": ""}}]},
        {"choices": [{"index": 0, "delta": {"content": '{"label": '}}]},
        {"choices": [{"index": 0, "delta": {"content": '"bug"}'}}]},
        {"choices": [{"index": 0, "delta": {}, "finish_reason": "stop"}]},
    )
    assembled = assemble_stream(body)
    assert assembled is not None
    assert assembled["choices"][0]["message"]["content"] == '{"label": "bug"}'
    gates = build_gates(STRUCTURAL_GATES)
    assert gates.check_body(json_request(SCHEMA), body, stream=True).passed

    tool_body = sse(
        {
            "choices": [
                {
                    "index": 0,
                    "delta": {
                        "tool_calls": [
                            {"index": 0, "function": {"name": "get_weather", "arguments": '{"da'}}
                        ]
                    },
                }
            ]
        },
        {
            "choices": [
                {
                    "index": 0,
                    "delta": {"tool_calls": [{"index": 0, "function": {"arguments": 'ys": 1}'}}]},
                }
            ]
        },
        {"choices": [{"index": 0, "delta": {}, "finish_reason": "tool_calls"}]},
    )
    result = gates.check_body({"messages": [], "tools": [WEATHER]}, tool_body, stream=True)
    assert not result.passed and result.name == "tools" and "city" in result.detail
    assert not gates.check_body({}, b"data: {not json\n\n", stream=True).passed


def test_a_body_that_is_not_a_completion_fails_the_parse_gate() -> None:
    result = build_gates(STRUCTURAL_GATES).check_body({}, b"<html>oops</html>")
    assert result == GateVerdict("parse", False, result.detail)


def test_judge_request_and_verdict() -> None:
    spec = JudgeSpec(model="judge-model", upstream="u", threshold=6)
    request = {"messages": [{"role": "user", "content": "What is 2+2?"}]}
    asked = judge_request(spec, request, answer("4"))
    assert asked["model"] == "judge-model"
    assert "What is 2+2?" in asked["messages"][0]["content"]
    assert asked["messages"][0]["content"].rstrip().endswith("4")
    assert judge_verdict(spec, answer("8")).passed
    assert not judge_verdict(spec, answer("Score: 3")).passed


def _fake_bodies(request: dict[str, Any], behaviour: str) -> tuple[bytes, bytes]:
    """The fake upstream's answer to ``request``, as a JSON body and as an SSE stream."""
    from fake_upstream import _completion, _stream_events

    plain = json.dumps(_completion(request, behaviour)).encode()
    return plain, sse(*_stream_events(request, behaviour))


JSON_REQUEST = {
    "model": "m",
    "messages": [{"role": "user", "content": "Classify: my card was charged twice"}],
    "response_format": {"type": "json_schema", "json_schema": {"name": "c", "schema": SCHEMA}},
}
TOOL_REQUEST = {
    "model": "m",
    "messages": [{"role": "user", "content": "Weather in Oslo?"}],
    "tools": [WEATHER],
}


@pytest.mark.parametrize(
    ("request_body", "behaviour", "gate"),
    [
        (JSON_REQUEST, "ok", None),
        (JSON_REQUEST, "broken_json", "json"),
        (JSON_REQUEST, "schema_violation", "json"),
        (JSON_REQUEST, "truncated", "json"),
        (TOOL_REQUEST, "ok", None),
        (TOOL_REQUEST, "tool_args_missing", "tools"),
        (TOOL_REQUEST, "tool_args_broken", "tools"),
        (TOOL_REQUEST, "unknown_tool", "tools"),
        (TOOL_REQUEST, "truncated", "truncation"),
        ({"messages": [{"role": "user", "content": "hi"}]}, "ok", None),
        ({"messages": [{"role": "user", "content": "hi"}]}, "empty", "empty"),
        ({"messages": [{"role": "user", "content": "hi"}]}, "refusal", "refusal"),
        ({"messages": [{"role": "user", "content": "hi"}]}, "refusal_text", "refusal"),
    ],
)
def test_the_fake_upstreams_bad_answers_fail_the_gate_meant_for_them(
    request_body: dict[str, Any], behaviour: str, gate: str | None
) -> None:
    gates = build_gates(
        [*STRUCTURAL_GATES, "refusal"],
        refusal_patterns=[r"^i'm sorry\b"],
        stream_modes={name: "buffer" for name in (*STRUCTURAL_GATES, "refusal")},
    )
    plain, streamed = _fake_bodies(request_body, behaviour)
    for body, stream in ((plain, False), (streamed, True)):
        result = gates.check_body(request_body, body, stream=stream)
        assert result.passed is (gate is None), (stream, result)
        if gate is not None:
            assert result.name == gate, (stream, result)


def test_gates_read_only_their_request_fields() -> None:
    """A gateway keeps only ``request_fields`` of a body for its gates: the verdicts match."""
    gates = build_gates(STRUCTURAL_GATES)
    fields = gates.request_fields
    assert fields == {"response_format", "tools", "functions"}
    requests = [
        {**json_request(SCHEMA), "messages": [{"role": "user", "content": "label it"}]},
        {"messages": [{"role": "user", "content": "weather?"}], "tools": [WEATHER], "n": 1},
        {"messages": [{"role": "user", "content": "hi"}], "max_tokens": 5},
    ]
    answers = [
        answer('{"label": "bug"}'),
        answer('{"label": "refund"}'),
        answer('{"label": "bug"', "length"),
        answer(None, "tool_calls", [call("get_weather", '{"city": "Oslo"}')]),
        answer(None, "tool_calls", [call("get_time", "{}")]),
        answer(""),
        answer("I'm sorry, I cannot help with that."),
    ]
    for request in requests:
        kept = {k: v for k, v in request.items() if k in fields}
        for reply in answers:
            assert gates.check(kept, reply) == gates.check(request, reply)
            assert gates.buffers_stream(kept) == gates.buffers_stream(request)
    judged = build_gates(["empty"], judge=JudgeSpec(model="judge", upstream="u"))
    assert judged.request_fields == {"messages"}


def test_a_user_gate_may_read_any_field(tmp_path: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    (tmp_path / "any_gate.py").write_text("def check(request, answer):\n    return None\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    assert build_gates(["json", "user"], user_target="any_gate:check").request_fields is None
