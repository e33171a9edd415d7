"""A real OpenAI-compatible chat-completions server on 127.0.0.1 for gateway tests.

Real sockets and real HTTP/1.1 framing (content-length or chunked SSE), so the proxy meets what a
production upstream does to it: streams, 500s, 429s, stalls and dropped connections. Each model
name has a queue of planned behaviours (``plan("eco", "500")``); an empty queue answers normally.
Stalls wait on an event that ``stop`` sets, with a cap, so no thread outlives the test session.
"""

from __future__ import annotations

import json
import socket
import threading
import time
from collections import defaultdict, deque
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

BEHAVIOURS = (
    "ok",
    "400",
    "429",
    "500",
    "503",
    "stall",
    "drop",
    "drop_after_headers",
    "drop_mid_stream",
    "stall_mid_stream",
)
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

    def record(self, body: dict[str, Any], headers: dict[str, str]) -> None:
        with self._lock:
            self.requests.append({"body": body, "headers": headers})

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


def completion_text(body: dict[str, Any]) -> str:
    """The deterministic answer: echoes the model and the last message's first words."""
    last = body.get("messages", [{}])[-1].get("content")
    words = last.split()[:5] if isinstance(last, str) else []
    return f"[{body.get('model')}] " + " ".join(words)


def tool_call(body: dict[str, Any]) -> dict[str, Any] | None:
    """A call of the first defined tool, unless tools are absent or disabled."""
    tools = body.get("tools") or []
    if not tools or body.get("tool_choice") == "none":
        return None
    name = tools[0]["function"]["name"]
    return {
        "id": "call_fake_1",
        "type": "function",
        "function": {"name": name, "arguments": json.dumps({"query": "fake"})},
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
        self.fake.record(body, {k.lower(): v for k, v in self.headers.items()})
        if self.path != "/v1/chat/completions":
            self._json(404, {"error": {"message": f"no route {self.path}", "type": "not_found"}})
            return
        behaviour = self.fake.next_behaviour(str(body.get("model")))
        try:
            self._behave(behaviour, body)
        except (BrokenPipeError, ConnectionResetError):
            self.close_connection = True

    def _behave(self, behaviour: str, body: dict[str, Any]) -> None:
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
            self._json(200, _completion(body))

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
        events = _stream_events(body)
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


def _completion(body: dict[str, Any]) -> dict[str, Any]:
    call = tool_call(body)
    message: dict[str, Any] = {
        "role": "assistant",
        "content": None if call else completion_text(body),
    }
    if call:
        message["tool_calls"] = [call]
    return {
        "id": "chatcmpl-fake",
        "object": "chat.completion",
        "created": int(time.time()),
        "model": body.get("model"),
        "choices": [
            {"index": 0, "message": message, "finish_reason": "tool_calls" if call else "stop"}
        ],
        "usage": usage_of(body),
    }


def _stream_events(body: dict[str, Any]) -> list[dict[str, Any]]:
    base = {
        "id": "chatcmpl-fake",
        "object": "chat.completion.chunk",
        "created": int(time.time()),
        "model": body.get("model"),
    }
    call = tool_call(body)
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
        finish = "tool_calls"
    else:
        events += [
            {
                **base,
                "choices": [{"index": 0, "delta": {"content": word + " "}, "finish_reason": None}],
            }
            for word in completion_text(body).split()
        ]
        finish = "stop"
    events.append({**base, "choices": [{"index": 0, "delta": {}, "finish_reason": finish}]})
    if (body.get("stream_options") or {}).get("include_usage"):
        events.append({**base, "choices": [], "usage": usage_of(body)})
    return events
