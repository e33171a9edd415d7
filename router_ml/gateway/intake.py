"""Request intake: the checks every request passes before any routing or upstream work.

Authentication (bearer tokens), the body-size limit while reading, and JSON decoding into an
object. Each failure is a :class:`Rejected` with its OpenAI error, so handlers read as the
happy path.
"""

from __future__ import annotations

import hmac
from collections.abc import Collection
from typing import Any

import anyio
from starlette.requests import ClientDisconnect, Request

from router_ml.errors import InvalidRequest
from router_ml.gateway.answers import Rejected, error_body, invalid
from router_ml.request import load_json_body


class Intake:
    """Authorises, reads and decodes request bodies.

    Parameters
    ----------
    client_tokens : collection of str
        Accepted bearer tokens; empty disables authentication.
    max_body_bytes : int
        The largest body read; a larger one is a 413 before it is buffered.
    body_timeout_s : float
        The longest a client may take to send its body (slowloris): then a 408.
    """

    def __init__(
        self, client_tokens: Collection[str], max_body_bytes: int, body_timeout_s: float
    ) -> None:
        self._tokens = [t.encode() for t in client_tokens]
        self.max_body_bytes = max_body_bytes
        self.body_timeout_s = body_timeout_s

    def authorize(self, request: Request) -> None:
        if not self._tokens:
            return
        header = request.headers.get("authorization", "")
        scheme, _, token = header.partition(" ")
        given = token.strip().encode("utf-8", errors="replace")
        known = any(hmac.compare_digest(given, t) for t in self._tokens)
        if scheme.lower() != "bearer" or not known:
            raise Rejected(
                401,
                "unauthorized",
                error_body(
                    "missing or invalid bearer token in the Authorization header",
                    code="invalid_api_key",
                ),
            )

    async def read_body(self, request: Request) -> bytes:
        limit = self.max_body_bytes
        too_large = Rejected(
            413,
            "too_large",
            error_body(
                f"request body exceeds {limit} bytes", param="body", code="request_too_large"
            ),
        )
        declared = request.headers.get("content-length", "")
        if declared.isdigit() and int(declared) > limit:
            raise too_large
        chunks, size = [], 0
        try:
            with anyio.fail_after(self.body_timeout_s):
                async for chunk in request.stream():
                    size += len(chunk)
                    if size > limit:
                        raise too_large
                    chunks.append(chunk)
        except TimeoutError as exc:
            raise Rejected(
                408,
                "body_timeout",
                error_body(
                    f"request body not received within {self.body_timeout_s:g}s",
                    param="body",
                    code="request_timeout",
                ),
                {"connection": "close"},
            ) from exc
        except ClientDisconnect as exc:
            raise Rejected(
                499,
                "client_disconnected",
                error_body(
                    "client disconnected while sending the body", code="client_disconnected"
                ),
            ) from exc
        return b"".join(chunks)

    @staticmethod
    def json_object(raw: bytes) -> dict[str, Any]:
        try:
            payload = load_json_body(raw)
        except InvalidRequest as exc:
            raise invalid(exc) from exc
        except (ValueError, RecursionError) as exc:  # e.g. an integer of 5,000 digits
            raise invalid(InvalidRequest("body", f"unreadable JSON ({exc})"[:200])) from exc
        if not isinstance(payload, dict):
            raise invalid(
                InvalidRequest("body", f"expected a JSON object, got {type(payload).__name__}")
            )
        return payload
