"""A real OpenAI-compatible chat-completions server on 127.0.0.1 for gateway tests.

Real sockets and real HTTP/1.1 framing (content-length or chunked SSE), so the proxy meets what a
production upstream does to it: streams, 500s, 429s, stalls and dropped connections, and answers
that arrive fine but are bad (``BAD_ANSWERS``: broken JSON, schema violations, invalid tool
arguments, truncation, refusals, empty content), streamed or not. Each model name has a queue of
planned behaviours (``plan("eco", "500")``); an empty queue answers normally. A normal answer is
valid for the request: JSON mode gets JSON that fits the given schema, a tool call gets
arguments that fit the tool's ``parameters``.
Stalls wait on an event that ``stop`` sets, with a cap, so no thread outlives the test session.
"""

from __future__ import annotations

import json
import re
import socket
import threading
import time
from collections import defaultdict, deque
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

BEHAVIOURS = (
    "ok",
    "400",
    "401",
    "429",
    "500",
    "503",
    "stall",
    "drop",
    "drop_after_headers",
    "drop_mid_stream",
    "stall_mid_stream",
)
BAD_ANSWERS = (
    "broken_json",
    "schema_violation",
    "tool_args_missing",
    "tool_args_broken",
    "unknown_tool",
    "truncated",
    "refusal",
    "refusal_text",
    "empty",
)
"""Behaviours that answer 200 with an answer a gate should reject."""
JUDGE_SCORES = {"judge_low": "2", "judge_high": "9"}
"""Behaviours of a judge model: the score it answers."""
BEHAVIOURS = (*BEHAVIOURS, *BAD_ANSWERS, *JUDGE_SCORES)
REFUSAL_TEXT = "I'm sorry, but I can't help with that."
MAX_STALL_S = 10.0


class FakeUpstream:
    """A threaded fake upstream; use as a context manager or call ``start``/``stop``."""

    def __init__(self, stall_s: float = MAX_STALL_S) -> None:
        self.stall_s = min(stall_s, MAX_STALL_S)
        self.requests: list[dict[str, Any]] = []
        self.release = threading.Event()
        self._plans: dict[str, deque[str]] = defaultdict(deque)
        self._lock = threading.Lock()
        self._server = _Server(("127.0.0.1", 0), _Handler)
        self._server.daemon_threads = True
        self._server.fake = self  # type: ignore[attr-defined]
        self._thread = threading.Thread(
            target=self._server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True
        )

    @property
    def base_url(self) -> str:
        host, port = self._server.server_address[:2]
        return f"http://{host}:{port}/v1"

    def plan(self, model: str, *behaviours: str) -> None:
        """Queue behaviours for the next requests to ``model`` (then it answers normally)."""
        unknown = [b for b in behaviours if b not in BEHAVIOURS]
        if unknown:
            raise ValueError(f"unknown behaviours {unknown}; known: {BEHAVIOURS}")
        with self._lock:
            self._plans[model].extend(behaviours)

    def next_behaviour(self, model: str) -> str:
        with self._lock:
            queue = self._plans.get(model)
            return queue.popleft() if queue else "ok"

    def record(self, body: dict[str, Any], headers: dict[str, str], raw: bytes) -> None:
        with self._lock:
            self.requests.append({"body": body, "headers": headers, "raw": raw})

    def models_called(self) -> list[str]:
        with self._lock:
            return [r["body"].get("model") for r in self.requests]

    def reset(self) -> None:
        with self._lock:
            self.requests.clear()
            self._plans.clear()

    def start(self) -> FakeUpstream:
        self._thread.start()
        return self

    def stop(self) -> None:
        self.release.set()
        self._server.shutdown()
        self._server.server_close()
        self._thread.join(timeout=5)

    def __enter__(self) -> FakeUpstream:
        return self.start()

    def __exit__(self, *_: object) -> None:
        self.stop()


def completion_text(body: dict[str, Any], behaviour: str = "ok") -> str:
    """The deterministic answer: echoes the model and the last message's first words, or, in
    JSON mode, a JSON object that fits the request's schema (bad behaviours break it)."""
    last = body.get("messages", [{}])[-1].get("content")
    words = last.split()[:5] if isinstance(last, str) else []
    text = f"[{body.get('model')}] " + " ".join(words)
    response_format = body.get("response_format") or {}
    kind = response_format.get("type")
    if behaviour in JUDGE_SCORES:
        return JUDGE_SCORES[behaviour]
    if behaviour == "refusal_text":
        return REFUSAL_TEXT
    if behaviour == "empty":
        return ""
    if kind in ("json_object", "json_schema"):
        schema = (response_format.get("json_schema") or {}).get("schema")
        value = sample_of(schema) if schema else {"answer": text}
        if behaviour == "schema_violation":
            value = {"unexpected": [1, 2, 3]}
        encoded = json.dumps(value)
        if behaviour == "broken_json":
            return encoded[:-1]  # e.g. {"label": "billing"
        text = encoded
    if behaviour == "truncated":
        return text[: max(len(text) // 2, 1)]
    return text


def sample_of(schema: Any) -> Any:
    """A value valid for a simple JSON schema: required properties, first enum value."""
    if not isinstance(schema, dict):
        return "fake"
    if "const" in schema:
        return schema["const"]
    if schema.get("enum"):
        return schema["enum"][0]
    kind = schema.get("type", "object")
    kind = kind[0] if isinstance(kind, list) else kind
    if kind == "object":
        properties = schema.get("properties") or {}
        wanted = schema.get("required") or list(properties)
        return {name: sample_of(properties.get(name, {})) for name in wanted}
    if kind == "array":
        return [sample_of(schema.get("items", {}))] * int(schema.get("minItems", 0))
    return {"integer": 1, "number": 1.5, "boolean": True, "null": None}.get(kind, "fake")


def tool_call(body: dict[str, Any], behaviour: str = "ok") -> dict[str, Any] | None:
    """A call of the first defined tool with fitting arguments, unless tools are absent or
    disabled (bad behaviours name another tool, drop required arguments or cut the JSON)."""
    tools = body.get("tools") or []
    if not tools or body.get("tool_choice") == "none":
        return None
    function = tools[0]["function"]
    parameters = function.get("parameters") or {"properties": {"query": {"type": "string"}}}
    arguments = sample_of({"type": "object", **parameters})
    name = function["name"]
    if behaviour == "tool_args_missing":
        for required in parameters.get("required") or list(arguments)[:1]:
            arguments.pop(required, None)
    encoded = json.dumps(arguments)
    if behaviour == "tool_args_broken":
        encoded = encoded[:-1]
    if behaviour == "unknown_tool":
        name = "undefined_" + name
    return {
        "id": "call_fake_1",
        "type": "function",
        "function": {"name": name, "arguments": encoded},
    }


def usage_of(body: dict[str, Any]) -> dict[str, int]:
    prompt = sum(len(str(m.get("content") or "").split()) for m in body.get("messages", []))
    return {"prompt_tokens": prompt, "completion_tokens": 7, "total_tokens": prompt + 7}


class _Server(ThreadingHTTPServer):
    request_queue_size = 256  # the default backlog of 5 refuses a burst of 32 clients


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def log_message(self, *_: Any) -> None:  # keep test output clean
        pass

    @property
    def fake(self) -> FakeUpstream:
        return self.server.fake  # type: ignore[attr-defined]

    def do_POST(self) -> None:
        length = int(self.headers.get("content-length", "0"))
        raw = self.rfile.read(length)
        try:
            body = json.loads(raw)
        except ValueError:
            self._json(400, {"error": {"message": "invalid JSON", "type": "invalid_request_error"}})
            return
        self.fake.record(body, {k.lower(): v for k, v in self.headers.items()}, raw)
        if self.path != "/v1/chat/completions":
            self._json(404, {"error": {"message": f"no route {self.path}", "type": "not_found"}})
            return
        behaviour = self.fake.next_behaviour(str(body.get("model")))
        try:
            self._behave(behaviour, body)
        except (BrokenPipeError, ConnectionResetError):
            self.close_connection = True

    def _behave(self, behaviour: str, body: dict[str, Any]) -> None:
        if behaviour == "401":  # what OpenAI answers a bad key: it quotes the key, masked
            self._json(
                401,
                {
                    "error": {
                        "message": "Incorrect API key provided: sk-live-abc1****wxyz.",
                        "type": "invalid_request_error",
                        "code": "invalid_api_key",
                    }
                },
                {"x-router-tier": "spoofed"},
            )
            return
        if behaviour in ("400", "429", "500", "503"):
            status = int(behaviour)
            headers = {"retry-after": "1"} if status == 429 else {}
            self._json(
                status,
                {
                    "error": {
                        "message": f"fake upstream says {status}",
                        "type": "server_error" if status >= 500 else "rate_limit",
                        "code": behaviour,
                    }
                },
                headers,
            )
            return
        if behaviour == "stall":
            self.fake.release.wait(self.fake.stall_s)
        if behaviour == "drop":
            self._drop()
            return
        if body.get("stream"):
            self._stream(body, behaviour)
        else:
            self._json(200, _completion(body, behaviour))

    def _drop(self) -> None:
        self.close_connection = True
        self.connection.shutdown(socket.SHUT_RDWR)

    def _json(
        self, status: int, payload: dict[str, Any], headers: dict[str, str] | None = None
    ) -> None:
        data = json.dumps(payload).encode()
        self.send_response(status)
        self.send_header("content-type", "application/json")
        self.send_header("content-length", str(len(data)))
        self.send_header("x-request-id", "fake-req")
        for key, value in (headers or {}).items():
            self.send_header(key, value)
        self.end_headers()
        self.wfile.write(data)

    def _stream(self, body: dict[str, Any], behaviour: str) -> None:
        self.send_response(200)
        self.send_header("content-type", "text/event-stream")
        self.send_header("transfer-encoding", "chunked")
        self.end_headers()
        self.wfile.flush()
        if behaviour == "drop_after_headers":
            self._drop()
            return
        events = _stream_events(body, behaviour)
        for index, event in enumerate(events):
            self._chunk(b"data: " + json.dumps(event).encode() + b"\n\n")
            if index == 0 and behaviour == "drop_mid_stream":
                self._drop()
                return
            if index == 0 and behaviour == "stall_mid_stream":
                self.fake.release.wait(self.fake.stall_s)
                self.close_connection = True
                return
        self._chunk(b"data: [DONE]\n\n")
        self.wfile.write(b"0\r\n\r\n")
        self.wfile.flush()

    def _chunk(self, data: bytes) -> None:
        self.wfile.write(f"{len(data):x}\r\n".encode() + data + b"\r\n")
        self.wfile.flush()


def _finish_reason(behaviour: str, call: dict[str, Any] | None) -> str:
    if behaviour == "truncated":
        return "length"
    return "tool_calls" if call else "stop"


def _completion(body: dict[str, Any], behaviour: str = "ok") -> dict[str, Any]:
    call = None if behaviour == "refusal" else tool_call(body, behaviour)
    message: dict[str, Any] = {
        "role": "assistant",
        "content": None if call or behaviour == "refusal" else completion_text(body, behaviour),
    }
    if behaviour == "refusal":
        message["refusal"] = REFUSAL_TEXT
    if call:
        message["tool_calls"] = [call]
    return {
        "id": "chatcmpl-fake",
        "object": "chat.completion",
        "created": int(time.time()),
        "model": body.get("model"),
        "choices": [
            {"index": 0, "message": message, "finish_reason": _finish_reason(behaviour, call)}
        ],
        "usage": usage_of(body),
    }


def _stream_events(body: dict[str, Any], behaviour: str = "ok") -> list[dict[str, Any]]:
    base = {
        "id": "chatcmpl-fake",
        "object": "chat.completion.chunk",
        "created": int(time.time()),
        "model": body.get("model"),
    }
    call = None if behaviour == "refusal" else tool_call(body, behaviour)
    events = [
        {
            **base,
            "choices": [
                {"index": 0, "delta": {"role": "assistant", "content": ""}, "finish_reason": None}
            ],
        }
    ]
    if call:
        arguments = call["function"]["arguments"]
        half = len(arguments) // 2
        events.append(
            {
                **base,
                "choices": [
                    {
                        "index": 0,
                        "delta": {
                            "tool_calls": [
                                {
                                    "index": 0,
                                    "id": call["id"],
                                    "type": "function",
                                    "function": {
                                        "name": call["function"]["name"],
                                        "arguments": arguments[:half],
                                    },
                                }
                            ]
                        },
                        "finish_reason": None,
                    }
                ],
            }
        )
        events.append(
            {
                **base,
                "choices": [
                    {
                        "index": 0,
                        "delta": {
                            "tool_calls": [
                                {"index": 0, "function": {"arguments": arguments[half:]}}
                            ]
                        },
                        "finish_reason": None,
                    }
                ],
            }
        )
    elif behaviour == "refusal":
        events.append(
            {
                **base,
                "choices": [
                    {"index": 0, "delta": {"refusal": REFUSAL_TEXT}, "finish_reason": None}
                ],
            }
        )
    else:
        text = completion_text(body, behaviour)
        if (body.get("response_format") or {}).get("type") in ("json_object", "json_schema"):
            pieces = re.findall(r"\S+\s*", text)  # exactly the text: JSON must survive
        else:
            pieces = [word + " " for word in text.split()]
        events += [
            {**base, "choices": [{"index": 0, "delta": {"content": piece}, "finish_reason": None}]}
            for piece in pieces
        ]
    finish = _finish_reason(behaviour, call)
    events.append({**base, "choices": [{"index": 0, "delta": {}, "finish_reason": finish}]})
    if (body.get("stream_options") or {}).get("include_usage"):
        events.append({**base, "choices": [], "usage": usage_of(body)})
    return events
