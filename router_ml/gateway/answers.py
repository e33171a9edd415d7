"""The OpenAI error shape every gateway answer uses, and the exception that carries it.

Clients keep their OpenAI SDK, which turns ``{"error": {message, type, param, code}}`` plus the
HTTP status into a typed exception; so every refusal, from a bad body to an upstream that never
answered, is raised as :class:`Rejected` and answered in that shape by the request guard.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from router_ml.errors import InvalidRequest

MAX_MESSAGE_CHARS = 1000
"""Longest error message sent: messages may quote client input, which is never echoed whole."""


def bounded(text: str, limit: int = MAX_MESSAGE_CHARS) -> str:
    """``text`` cut to ``limit`` characters, saying how long it was."""
    return text if len(text) <= limit else f"{text[:limit]}... ({len(text)} chars in all)"


def error_body(
    message: str,
    kind: str = "invalid_request_error",
    param: str | None = None,
    code: str | None = None,
) -> dict[str, Any]:
    """An OpenAI-style error object, which every OpenAI SDK turns into a typed exception.

    The message and ``param`` are bounded (:func:`bounded`), whatever client text they quote.
    """
    shown_param = None if param is None else bounded(param, 200)
    return {
        "error": {"message": bounded(message), "type": kind, "param": shown_param, "code": code}
    }


class Rejected(Exception):
    """A request answered with an error: HTTP status, log outcome and OpenAI error body."""

    def __init__(
        self,
        status: int,
        outcome: str,
        body: dict[str, Any],
        headers: Mapping[str, str] | None = None,
    ) -> None:
        super().__init__(body["error"]["message"])
        self.status, self.outcome, self.body = status, outcome, body
        self.headers = dict(headers or {})
        """Headers of the answer besides the request id (e.g. where an upstream call went)."""


def invalid(exc: InvalidRequest) -> Rejected:
    """The 400 for a malformed request, naming the field."""
    code = "invalid_json" if exc.field == "body" else "invalid_value"
    return Rejected(400, "invalid_request", error_body(str(exc), param=exc.field, code=code))


def internal_error() -> Rejected:
    """The 500 for a bug of ours: generic on purpose, the details go to the server log."""
    return Rejected(
        500,
        "internal_error",
        error_body("internal gateway error", kind="server_error", code="internal_error"),
    )


class AsciiJSONResponse(JSONResponse):
    """JSON with non-ASCII escaped: a lone surrogate from client text cannot break encoding."""

    def render(self, content: Any) -> bytes:
        return json.dumps(content, ensure_ascii=True, separators=(",", ":")).encode("ascii")


def error_response(exc: Rejected, request_id: str) -> Response:
    headers = {"x-router-request-id": request_id, **exc.headers}
    return AsciiJSONResponse(exc.body, status_code=exc.status, headers=headers)


async def http_error(_request: Request, exc: Exception) -> Response:
    """Unknown paths and wrong methods answer in OpenAI's error shape too."""
    assert isinstance(exc, HTTPException)
    code = {404: "unknown_url", 405: "method_not_allowed"}.get(exc.status_code)
    return AsciiJSONResponse(
        error_body(str(exc.detail), code=code), status_code=exc.status_code, headers=exc.headers
    )
