"""Request validation: every malformed input names its field; odd but valid input passes."""

from __future__ import annotations

import json

import pytest

from router_ml.errors import InvalidRequest
from router_ml.request import MAX_MESSAGES, parse_request


def user(content: object) -> dict:
    return {"messages": [{"role": "user", "content": content}]}


@pytest.mark.parametrize(
    ("body", "field", "fragment"),
    [
        ("{not json", "body", "malformed JSON at line 1"),
        (b"\xff\xfe", "body", "UTF-8"),
        ("[1, 2]", "body", "expected a JSON object"),
        ({}, "messages", "missing"),
        ({"messages": []}, "messages", "empty"),
        ({"messages": "hi"}, "messages", "expected a list"),
        ({"messages": [42]}, "messages[0]", "expected an object"),
        ({"messages": [{"role": "wizard", "content": "x"}]}, "messages[0].role", "unknown role"),
        ({"messages": [{"content": "x"}]}, "messages[0].role", "unknown role"),
        (user(None), "messages[0].content", "missing"),
        (user(12), "messages[0].content", "expected a string or a list"),
        (user([{"type": "video", "url": "x"}]), "messages[0].content[0].type", "unknown part type"),
        (user([{"type": "text", "text": 5}]), "messages[0].content[0].text", "expected a string"),
        (user(["plain"]), "messages[0].content[0]", "expected an object"),
        (
            {"messages": [{"role": "user", "content": "x", "tool_calls": []}]},
            "messages[0].tool_calls",
            "only assistant",
        ),
        (
            {
                "messages": [
                    {"role": "assistant", "content": None, "tool_calls": [{"function": {}}]}
                ]
            },
            "messages[0].tool_calls[0].function.name",
            "non-empty",
        ),
        (
            {
                "messages": [
                    {
                        "role": "assistant",
                        "tool_calls": [{"function": {"name": "f", "arguments": {"a": 1}}}],
                    }
                ]
            },
            "messages[0].tool_calls[0].function.arguments",
            "JSON string",
        ),
        ({**user("x"), "tools": {"a": 1}}, "tools", "expected a list"),
        (
            {**user("x"), "tools": [{"type": "function", "function": {"parameters": {}}}]},
            "tools[0].function.name",
            "non-empty",
        ),
        (
            {
                **user("x"),
                "tools": [{"type": "function", "function": {"name": "f", "parameters": 3}}],
            },
            "tools[0].function.parameters",
            "JSON schema",
        ),
        ({**user("x"), "tool_choice": "always"}, "tool_choice", "unknown value"),
        ({**user("x"), "max_tokens": "100"}, "max_tokens", "integer"),
        ({**user("x"), "max_tokens": True}, "max_tokens", "integer"),
        ({**user("x"), "max_completion_tokens": -1}, "max_completion_tokens", "from 0 to"),
        ({**user("x"), "response_format": {"type": "yaml"}}, "response_format.type", "unknown"),
        ({**user("x"), "stream": "yes"}, "stream", "true or false"),
        ({**user("x"), "metadata": ["a"]}, "metadata", "expected an object"),
        ({**user("x"), "metadata": {"team": {"a": 1}}}, "metadata.team", "string"),
        ({**user("x"), "model": 7}, "model", "expected a string"),
        (
            {"messages": [{"role": "user", "content": "x"}] * (MAX_MESSAGES + 1)},
            "messages",
            "limit",
        ),
    ],
)
def test_malformed_requests_name_the_field(body: object, field: str, fragment: str) -> None:
    with pytest.raises(InvalidRequest) as info:
        parse_request(body)  # type: ignore[arg-type]
    assert info.value.field == field
    assert fragment in info.value.problem
    assert str(info.value).startswith(field)


def test_deeply_nested_json_is_rejected_not_crashing() -> None:
    body = '{"messages": ' + "[" * 200_000 + "]" * 200_000 + "}"
    with pytest.raises(InvalidRequest) as info:
        parse_request(body)
    assert info.value.field == "body"


def test_full_request_is_read() -> None:
    request = parse_request(
        {
            "model": "auto",
            "messages": [
                {"role": "developer", "content": "Be brief."},
                {
                    "role": "user",
                    "content": [
                        {"type": "text", "text": "What is in"},
                        {"type": "image_url", "image_url": {"url": "data:image/png;base64,AAAA"}},
                        {"type": "text", "text": "this picture?"},
                    ],
                },
                {
                    "role": "assistant",
                    "content": None,
                    "tool_calls": [
                        {
                            "id": "c1",
                            "type": "function",
                            "function": {"name": "look", "arguments": "{}"},
                        }
                    ],
                },
                {"role": "tool", "tool_call_id": "c1", "content": "a cat"},
            ],
            "tools": [{"type": "function", "function": {"name": "look", "parameters": {}}}],
            "functions": [{"name": "legacy"}],
            "tool_choice": {"type": "function", "function": {"name": "look"}},
            "max_completion_tokens": 50,
            "max_tokens": 999,
            "response_format": {"type": "json_object"},
            "stream": True,
            "metadata": {"team": "search", "beta": True, "n": 3},
            "temperature": 0.2,
        }
    )
    assert [m.role for m in request.messages] == ["developer", "user", "assistant", "tool"]
    assert request.messages[1].text == "What is in\nthis picture?"
    assert request.messages[1].n_images == 1
    assert request.messages[2].n_tool_calls == 1
    assert request.messages[2].tool_call_text == "look({})"
    assert [t["name"] for t in request.tools] == ["look", "legacy"]
    assert request.tool_choice == "named"
    assert request.max_tokens == 50  # max_completion_tokens wins over the deprecated max_tokens
    assert request.response_format == "json_object"
    assert request.stream is True
    assert request.metadata == {"team": "search", "beta": "true", "n": "3"}
    assert request.model == "auto"


def test_json_bytes_and_text_give_the_same_request() -> None:
    body = {"messages": [{"role": "user", "content": "héllo \u2603"}]}
    as_text = json.dumps(body)
    assert parse_request(as_text) == parse_request(as_text.encode()) == parse_request(body)


def test_odd_unicode_and_nul_bytes_are_accepted() -> None:
    request = parse_request(
        '{"messages": [{"role": "user", "content": "a\\u0000b\\ud800c\\ufeff"}]}'
    )
    assert request.messages[0].text == "a\x00b\ud800c\ufeff"
