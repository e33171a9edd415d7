"""Validate an OpenAI chat-completions request body into a compact, typed view.

Gateways hand us whatever their clients sent. Everything the router reads is checked here, once,
and every problem is raised as ``InvalidRequest`` naming the field (``messages[3].content[1].type``)
so an operator can answer the client with a precise 400. Fields the router does not read
(temperature, seed, ...) are left alone: the router decides, it does not proxy.

Nothing here recurses on client-controlled depth, so a deeply nested body cannot blow the stack,
and every count the client controls is capped (``MAX_*``), so no body costs more than a few
milliseconds to check: a gateway serves other clients on the same cores. Values quoted in errors
are cut (``errors.shown``). The API promise is that a body either validates or raises
``InvalidRequest``; the property tests in ``tests/router_ml/test_hostile_requests.py`` hold the
whole router to it.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass, field
from typing import Any

from router_ml.errors import InvalidRequest, shown

ROLES = ("system", "developer", "user", "assistant", "tool", "function")
"""Roles the OpenAI chat API accepts; ``developer`` is the newer name for ``system``."""

TEXT_PART_TYPES = frozenset({"text", "input_text", "refusal"})
IMAGE_PART_TYPES = frozenset({"image_url", "input_image"})
OTHER_PART_TYPES = frozenset({"input_audio", "file"})
TOOL_CHOICES = ("none", "auto", "required")
RESPONSE_FORMATS = ("text", "json_object", "json_schema")
MAX_MESSAGES = 10_000
"""More messages than any real context window holds; beyond it the body is rejected."""
MAX_CONTENT_PARTS = 10_000
"""Content parts of all messages together (images, text, files)."""
MAX_TOOL_CALLS = 10_000
"""Tool calls of all assistant messages together."""
MAX_TOOLS = 1_000
"""Tool definitions (the OpenAI API accepts 128)."""
MAX_SCHEMA_LIST = 10_000
"""Longest list (e.g. an ``enum``) inside a tool definition. Schemas are read by one walk only,
the feature extractor's (bounded at 20,000 nodes), which checks this as it goes: a second walk
here would double the cost of every tool-using request."""
MAX_METADATA_KEYS = 64
"""``metadata`` entries (the OpenAI API accepts 16)."""
MAX_METADATA_CHARS = 4_096
"""Longest ``metadata`` key or value (the OpenAI API accepts 64 and 512)."""
MAX_TEXT_CHARS = 64 << 20
"""Characters of message text per request (a JSON body under a gateway's limit has far fewer; a
Python caller can share one string across many messages)."""
MAX_OUTPUT_TOKENS = 2**31 - 1
"""Largest ``max_tokens`` / ``max_completion_tokens`` (the API's integer range)."""


@dataclass(frozen=True, slots=True)
class Message:
    """One chat message reduced to what routing needs."""

    role: str
    text: str
    n_images: int = 0
    n_other_parts: int = 0
    n_tool_calls: int = 0
    tool_call_text: str = ""


@dataclass(frozen=True, slots=True)
class ChatRequest:
    """A validated chat request: the messages plus the request-level routing hints."""

    messages: tuple[Message, ...]
    tools: tuple[dict[str, Any], ...] = ()
    tool_choice: str | None = None
    max_tokens: int | None = None
    response_format: str | None = None
    stream: bool = False
    metadata: dict[str, str] = field(default_factory=dict)
    model: str | None = None


def _refuse_constant(name: str) -> Any:
    raise InvalidRequest("body", f"{name} is not valid JSON (numbers must be finite)")


def load_json_body(body: str | bytes | bytearray) -> Any:
    """Decode a JSON request body; malformed or absurdly nested JSON is an ``InvalidRequest``.

    Strict JSON: ``NaN`` and ``Infinity`` are refused, and so are integers beyond Python's
    4,300-digit conversion limit.
    """
    if isinstance(body, bytes | bytearray):
        try:
            body = body.decode("utf-8")
        except UnicodeDecodeError as exc:
            raise InvalidRequest("body", f"not valid UTF-8 at byte {exc.start}") from exc
    try:
        return json.loads(body, parse_constant=_refuse_constant)
    except json.JSONDecodeError as exc:
        raise InvalidRequest(
            "body", f"malformed JSON at line {exc.lineno} column {exc.colno}: {exc.msg}"
        ) from exc
    except RecursionError as exc:
        raise InvalidRequest("body", "JSON nested too deeply") from exc
    except InvalidRequest:
        raise
    except ValueError as exc:  # an integer literal over the 4,300-digit limit
        raise InvalidRequest("body", f"unreadable number: {shown(str(exc))}") from exc


def parse_request(request: ChatRequest | dict[str, Any] | str | bytes | bytearray) -> ChatRequest:
    """Validate a request body (dict, JSON text or bytes) into a ``ChatRequest``."""
    if isinstance(request, ChatRequest):
        return request
    if isinstance(request, str | bytes | bytearray):
        request = load_json_body(request)
    if not isinstance(request, dict):
        raise InvalidRequest("body", f"expected a JSON object, got {_type_name(request)}")

    messages = _parse_messages(request.get("messages"))
    tools = _parse_tools(request)
    return ChatRequest(
        messages=messages,
        tools=tools,
        tool_choice=_parse_tool_choice(request.get("tool_choice", request.get("function_call"))),
        max_tokens=_parse_max_tokens(request),
        response_format=_parse_response_format(request.get("response_format")),
        stream=_parse_bool(request.get("stream"), "stream"),
        metadata=_parse_metadata(request.get("metadata")),
        model=_parse_optional_str(request.get("model"), "model"),
    )


def _type_name(value: Any) -> str:
    return "null" if value is None else type(value).__name__


def _parse_messages(raw: Any) -> tuple[Message, ...]:
    if raw is None:
        raise InvalidRequest("messages", "missing; a chat request needs at least one message")
    if not isinstance(raw, list):
        raise InvalidRequest("messages", f"expected a list, got {_type_name(raw)}")
    if not raw:
        raise InvalidRequest("messages", "empty; a chat request needs at least one message")
    if len(raw) > MAX_MESSAGES:
        raise InvalidRequest("messages", f"{len(raw)} messages exceed the limit of {MAX_MESSAGES}")
    budget = _Budget()
    messages = tuple(_parse_message(item, f"messages[{i}]", budget) for i, item in enumerate(raw))
    if sum(len(m.text) + len(m.tool_call_text) for m in messages) > MAX_TEXT_CHARS:
        raise InvalidRequest("messages", f"more than {MAX_TEXT_CHARS} characters of text")
    return messages


class _Budget:
    """What is left of the per-request caps on content parts and tool calls."""

    __slots__ = ("parts", "tool_calls")

    def __init__(self) -> None:
        self.parts = MAX_CONTENT_PARTS
        self.tool_calls = MAX_TOOL_CALLS


def _parse_message(raw: Any, where: str, budget: _Budget) -> Message:
    if not isinstance(raw, dict):
        raise InvalidRequest(where, f"expected an object, got {_type_name(raw)}")
    role = raw.get("role")
    if type(role) is not str or role not in ROLES:
        what = shown(role) if isinstance(role, str) else _type_name(role)
        raise InvalidRequest(f"{where}.role", f"unknown role {what}; expected one of {ROLES}")

    tool_calls = raw.get("tool_calls")
    function_call = raw.get("function_call")
    n_tool_calls, tool_call_text = 0, ""
    if tool_calls is not None or function_call is not None:
        if role != "assistant":
            raise InvalidRequest(
                f"{where}.tool_calls", f"only assistant messages make tool calls, not {role}"
            )
        n_tool_calls, tool_call_text = _parse_tool_calls(tool_calls, function_call, where, budget)

    content = raw.get("content")
    text, n_images, n_other = _parse_content(content, f"{where}.content", n_tool_calls > 0, budget)
    return Message(role, text, n_images, n_other, n_tool_calls, tool_call_text)


def _parse_content(
    content: Any, where: str, allow_none: bool, budget: _Budget
) -> tuple[str, int, int]:
    if isinstance(content, str):
        return content, 0, 0
    if content is None:
        if allow_none:
            return "", 0, 0
        raise InvalidRequest(
            where, "missing; only an assistant message with tool calls may omit it"
        )
    if not isinstance(content, list):
        raise InvalidRequest(
            where, f"expected a string or a list of parts, got {_type_name(content)}"
        )
    budget.parts -= len(content)
    if budget.parts < 0:
        raise InvalidRequest(where, f"more than {MAX_CONTENT_PARTS} content parts in the request")
    texts: list[str] = []
    n_images = n_other = n_chars = 0
    for i, part in enumerate(content):
        part_where = f"{where}[{i}]"
        if not isinstance(part, dict):
            raise InvalidRequest(part_where, f"expected an object, got {_type_name(part)}")
        kind = part.get("type")
        if type(kind) is not str:
            raise InvalidRequest(f"{part_where}.type", f"expected a string, got {_type_name(kind)}")
        if kind in TEXT_PART_TYPES:
            key = "refusal" if kind == "refusal" else "text"
            value = part.get(key)
            if not isinstance(value, str):
                raise InvalidRequest(
                    f"{part_where}.{key}", f"expected a string, got {_type_name(value)}"
                )
            texts.append(value)
            n_chars += len(value)
            if n_chars > MAX_TEXT_CHARS:  # checked before joining: parts may share one string
                raise InvalidRequest(where, f"more than {MAX_TEXT_CHARS} characters of text")
        elif kind in IMAGE_PART_TYPES:
            n_images += 1
        elif kind in OTHER_PART_TYPES:
            n_other += 1
        else:
            known = sorted(TEXT_PART_TYPES | IMAGE_PART_TYPES | OTHER_PART_TYPES)
            raise InvalidRequest(
                f"{part_where}.type", f"unknown part type {shown(kind)}; expected one of {known}"
            )
    return "\n".join(texts), n_images, n_other


def _parse_tool_calls(
    tool_calls: Any, function_call: Any, where: str, budget: _Budget
) -> tuple[int, str]:
    calls: list[tuple[str, Any]] = []
    if tool_calls is not None:
        if not isinstance(tool_calls, list):
            raise InvalidRequest(
                f"{where}.tool_calls", f"expected a list, got {_type_name(tool_calls)}"
            )
        budget.tool_calls -= len(tool_calls)
        if budget.tool_calls < 0:
            raise InvalidRequest(
                f"{where}.tool_calls", f"more than {MAX_TOOL_CALLS} tool calls in the request"
            )
        for i, call in enumerate(tool_calls):
            call_where = f"{where}.tool_calls[{i}]"
            if not isinstance(call, dict):
                raise InvalidRequest(call_where, f"expected an object, got {_type_name(call)}")
            calls.append((f"{call_where}.function", call.get("function")))
    if function_call is not None:
        calls.append((f"{where}.function_call", function_call))
    texts = []
    for call_where, function in calls:
        if not isinstance(function, dict):
            raise InvalidRequest(call_where, f"expected an object, got {_type_name(function)}")
        name = function.get("name")
        if not isinstance(name, str) or not name:
            raise InvalidRequest(f"{call_where}.name", "expected a non-empty string")
        arguments = function.get("arguments", "")
        if not isinstance(arguments, str):
            raise InvalidRequest(
                f"{call_where}.arguments", f"expected a JSON string, got {_type_name(arguments)}"
            )
        texts.append(f"{name}({arguments})")
    return len(calls), "\n".join(texts)


def _parse_tools(request: dict[str, Any]) -> tuple[dict[str, Any], ...]:
    """Return the function definitions of ``tools`` (and legacy ``functions``)."""
    functions: list[dict[str, Any]] = []
    tools = request.get("tools")
    legacy = request.get("functions")
    for key, value in (("tools", tools), ("functions", legacy)):
        if value is not None and not isinstance(value, list):
            raise InvalidRequest(key, f"expected a list, got {_type_name(value)}")
    n_tools = len(tools or ()) + len(legacy or ())
    if n_tools > MAX_TOOLS:
        raise InvalidRequest("tools", f"{n_tools} tool definitions exceed the limit of {MAX_TOOLS}")
    for i, tool in enumerate(tools or ()):
        if not isinstance(tool, dict):
            raise InvalidRequest(f"tools[{i}]", f"expected an object, got {_type_name(tool)}")
        kind = tool.get("type", "function")
        if type(kind) is not str or not kind or len(kind) > 256:
            raise InvalidRequest(f"tools[{i}].type", f"expected a tool type, got {shown(kind)}")
        if kind != "function":
            # Built-in tools (web_search, code_interpreter, ...) carry no schema to measure.
            functions.append({"name": kind, "parameters": {}})
            continue
        functions.append(_check_function(tool.get("function"), f"tools[{i}].function"))
    functions.extend(_check_function(fn, f"functions[{i}]") for i, fn in enumerate(legacy or ()))
    return tuple(functions)


def _check_function(function: Any, where: str) -> dict[str, Any]:
    if not isinstance(function, dict):
        raise InvalidRequest(where, f"expected an object, got {_type_name(function)}")
    name = function.get("name")
    if not isinstance(name, str) or not name:
        raise InvalidRequest(f"{where}.name", "expected a non-empty string")
    if len(name) > 256:
        raise InvalidRequest(f"{where}.name", f"{len(name)} characters exceed the limit of 256")
    parameters = function.get("parameters", {})
    if parameters is not None and not isinstance(parameters, dict):
        raise InvalidRequest(
            f"{where}.parameters", f"expected a JSON schema object, got {_type_name(parameters)}"
        )
    description = function.get("description", "")
    if description is not None and not isinstance(description, str):
        raise InvalidRequest(
            f"{where}.description", f"expected a string, got {_type_name(description)}"
        )
    return function


def _parse_tool_choice(raw: Any) -> str | None:
    if raw is None:
        return None
    if isinstance(raw, str):
        if raw not in TOOL_CHOICES:
            raise InvalidRequest(
                "tool_choice",
                f"unknown value {shown(raw)}; expected one of {TOOL_CHOICES} or an object",
            )
        return raw
    if isinstance(raw, dict):
        return "named"
    raise InvalidRequest("tool_choice", f"expected a string or an object, got {_type_name(raw)}")


def _parse_max_tokens(request: dict[str, Any]) -> int | None:
    """``max_completion_tokens`` (the newer name) or ``max_tokens``; both are checked if given."""
    chosen = None
    for key in ("max_completion_tokens", "max_tokens"):
        value = request.get(key)
        if value is None:
            continue
        if isinstance(value, bool) or not isinstance(value, int):
            raise InvalidRequest(key, f"expected an integer, got {_type_name(value)}")
        if not 0 <= value <= MAX_OUTPUT_TOKENS:
            raise InvalidRequest(
                key, f"expected an integer from 0 to {MAX_OUTPUT_TOKENS}, got {shown(value)}"
            )
        chosen = value if chosen is None else chosen
    return chosen


def _parse_response_format(raw: Any) -> str | None:
    if raw is None:
        return None
    if not isinstance(raw, dict):
        raise InvalidRequest("response_format", f"expected an object, got {_type_name(raw)}")
    kind = raw.get("type")
    if type(kind) is not str or kind not in RESPONSE_FORMATS:
        raise InvalidRequest(
            "response_format.type",
            f"unknown value {shown(kind)}; expected one of {RESPONSE_FORMATS}",
        )
    return kind


def _parse_bool(raw: Any, where: str) -> bool:
    if raw is None:
        return False
    if not isinstance(raw, bool):
        raise InvalidRequest(where, f"expected true or false, got {_type_name(raw)}")
    return raw


def _parse_metadata(raw: Any) -> dict[str, str]:
    if raw is None:
        return {}
    if not isinstance(raw, dict):
        raise InvalidRequest("metadata", f"expected an object, got {_type_name(raw)}")
    if len(raw) > MAX_METADATA_KEYS:
        raise InvalidRequest("metadata", f"{len(raw)} keys exceed the limit of {MAX_METADATA_KEYS}")
    metadata = {}
    for key, value in raw.items():
        if type(key) is not str or len(key) > MAX_METADATA_CHARS:
            raise InvalidRequest(
                "metadata", f"keys must be strings of at most {MAX_METADATA_CHARS} characters"
            )
        metadata[key] = _metadata_value(value, key)
    return metadata


def _metadata_value(value: Any, key: str) -> str:
    where = f"metadata.{key if len(key) <= 64 else key[:64] + '...'}"
    if value is None:
        return ""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, str):
        if len(value) > MAX_METADATA_CHARS:
            raise InvalidRequest(
                where, f"{len(value)} characters exceed the limit of {MAX_METADATA_CHARS}"
            )
        return value
    if isinstance(value, int) and abs(value) < 10**18:
        return str(value)
    if isinstance(value, float) and math.isfinite(value):
        return str(value)
    raise InvalidRequest(where, f"expected a string, boolean or finite number, got {shown(value)}")


def _parse_optional_str(raw: Any, where: str) -> str | None:
    if raw is None or isinstance(raw, str):
        return raw
    raise InvalidRequest(where, f"expected a string, got {_type_name(raw)}")
