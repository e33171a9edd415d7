"""Validate an OpenAI chat-completions request body into a compact, typed view.

Gateways hand us whatever their clients sent. Everything the router reads is checked here, once,
and every problem is raised as ``InvalidRequest`` naming the field (``messages[3].content[1].type``)
so an operator can answer the client with a precise 400. Fields the router does not read
(temperature, seed, ...) are left alone: the router decides, it does not proxy.

Nothing here recurses on client-controlled depth, so a deeply nested body cannot blow the stack.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any

from router_ml.errors import InvalidRequest

ROLES = ("system", "developer", "user", "assistant", "tool", "function")
"""Roles the OpenAI chat API accepts; ``developer`` is the newer name for ``system``."""

TEXT_PART_TYPES = frozenset({"text", "input_text", "refusal"})
IMAGE_PART_TYPES = frozenset({"image_url", "input_image"})
OTHER_PART_TYPES = frozenset({"input_audio", "file"})
TOOL_CHOICES = ("none", "auto", "required")
RESPONSE_FORMATS = ("text", "json_object", "json_schema")
MAX_MESSAGES = 100_000
"""More messages than any real context window holds; beyond it the body is rejected."""


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


def load_json_body(body: str | bytes | bytearray) -> Any:
    """Decode a JSON request body; malformed or absurdly nested JSON is an ``InvalidRequest``."""
    if isinstance(body, bytes | bytearray):
        try:
            body = body.decode("utf-8")
        except UnicodeDecodeError as exc:
            raise InvalidRequest("body", f"not valid UTF-8 at byte {exc.start}") from exc
    try:
        return json.loads(body)
    except json.JSONDecodeError as exc:
        raise InvalidRequest(
            "body", f"malformed JSON at line {exc.lineno} column {exc.colno}: {exc.msg}"
        ) from exc
    except RecursionError as exc:
        raise InvalidRequest("body", "JSON nested too deeply") from exc


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
    return tuple(_parse_message(item, f"messages[{i}]") for i, item in enumerate(raw))


def _parse_message(raw: Any, where: str) -> Message:
    if not isinstance(raw, dict):
        raise InvalidRequest(where, f"expected an object, got {_type_name(raw)}")
    role = raw.get("role")
    if role not in ROLES:
        shown = role if isinstance(role, str) else _type_name(role)
        raise InvalidRequest(f"{where}.role", f"unknown role {shown!r}; expected one of {ROLES}")

    tool_calls = raw.get("tool_calls")
    function_call = raw.get("function_call")
    n_tool_calls, tool_call_text = 0, ""
    if tool_calls is not None or function_call is not None:
        if role != "assistant":
            raise InvalidRequest(
                f"{where}.tool_calls", f"only assistant messages make tool calls, not {role}"
            )
        n_tool_calls, tool_call_text = _parse_tool_calls(tool_calls, function_call, where)

    content = raw.get("content")
    text, n_images, n_other = _parse_content(
        content, f"{where}.content", allow_none=n_tool_calls > 0
    )
    return Message(role, text, n_images, n_other, n_tool_calls, tool_call_text)


def _parse_content(content: Any, where: str, allow_none: bool) -> tuple[str, int, int]:
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
    texts: list[str] = []
    n_images = n_other = 0
    for i, part in enumerate(content):
        part_where = f"{where}[{i}]"
        if not isinstance(part, dict):
            raise InvalidRequest(part_where, f"expected an object, got {_type_name(part)}")
        kind = part.get("type")
        if kind in TEXT_PART_TYPES:
            key = "refusal" if kind == "refusal" else "text"
            value = part.get(key)
            if not isinstance(value, str):
                raise InvalidRequest(
                    f"{part_where}.{key}", f"expected a string, got {_type_name(value)}"
                )
            texts.append(value)
        elif kind in IMAGE_PART_TYPES:
            n_images += 1
        elif kind in OTHER_PART_TYPES:
            n_other += 1
        else:
            shown = kind if isinstance(kind, str) else _type_name(kind)
            known = sorted(TEXT_PART_TYPES | IMAGE_PART_TYPES | OTHER_PART_TYPES)
            raise InvalidRequest(
                f"{part_where}.type", f"unknown part type {shown!r}; expected one of {known}"
            )
    return "\n".join(texts), n_images, n_other


def _parse_tool_calls(tool_calls: Any, function_call: Any, where: str) -> tuple[int, str]:
    calls: list[tuple[str, Any]] = []
    if tool_calls is not None:
        if not isinstance(tool_calls, list):
            raise InvalidRequest(
                f"{where}.tool_calls", f"expected a list, got {_type_name(tool_calls)}"
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
    if tools is not None:
        if not isinstance(tools, list):
            raise InvalidRequest("tools", f"expected a list, got {_type_name(tools)}")
        for i, tool in enumerate(tools):
            if not isinstance(tool, dict):
                raise InvalidRequest(f"tools[{i}]", f"expected an object, got {_type_name(tool)}")
            kind = tool.get("type", "function")
            if kind != "function":
                # Built-in tools (web_search, code_interpreter, ...) carry no schema to measure.
                functions.append({"name": str(kind), "parameters": {}})
                continue
            functions.append(_check_function(tool.get("function"), f"tools[{i}].function"))
    legacy = request.get("functions")
    if legacy is not None:
        if not isinstance(legacy, list):
            raise InvalidRequest("functions", f"expected a list, got {_type_name(legacy)}")
        functions.extend(_check_function(fn, f"functions[{i}]") for i, fn in enumerate(legacy))
    return tuple(functions)


def _check_function(function: Any, where: str) -> dict[str, Any]:
    if not isinstance(function, dict):
        raise InvalidRequest(where, f"expected an object, got {_type_name(function)}")
    name = function.get("name")
    if not isinstance(name, str) or not name:
        raise InvalidRequest(f"{where}.name", "expected a non-empty string")
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
                "tool_choice", f"unknown value {raw!r}; expected one of {TOOL_CHOICES} or an object"
            )
        return raw
    if isinstance(raw, dict):
        return "named"
    raise InvalidRequest("tool_choice", f"expected a string or an object, got {_type_name(raw)}")


def _parse_max_tokens(request: dict[str, Any]) -> int | None:
    for key in ("max_completion_tokens", "max_tokens"):
        value = request.get(key)
        if value is None:
            continue
        if isinstance(value, bool) or not isinstance(value, int):
            raise InvalidRequest(key, f"expected an integer, got {_type_name(value)}")
        if value < 0:
            raise InvalidRequest(key, f"must not be negative, got {value}")
        return value
    return None


def _parse_response_format(raw: Any) -> str | None:
    if raw is None:
        return None
    if not isinstance(raw, dict):
        raise InvalidRequest("response_format", f"expected an object, got {_type_name(raw)}")
    kind = raw.get("type")
    if kind not in RESPONSE_FORMATS:
        raise InvalidRequest(
            "response_format.type", f"unknown value {kind!r}; expected one of {RESPONSE_FORMATS}"
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
    metadata = {}
    for key, value in raw.items():
        if isinstance(value, dict | list):
            raise InvalidRequest(f"metadata.{key}", "expected a string, number or boolean")
        metadata[str(key)] = (
            "" if value is None else str(value).lower() if isinstance(value, bool) else str(value)
        )
    return metadata


def _parse_optional_str(raw: Any, where: str) -> str | None:
    if raw is None or isinstance(raw, str):
        return raw
    raise InvalidRequest(where, f"expected a string, got {_type_name(raw)}")
