"""Calls to OpenAI-compatible upstreams: one pooled httpx client per upstream, streaming-safe.

``open`` returns once the answer has *started*: the full body of a non-streaming or error answer,
or the headers plus the first chunk of a stream. Until then nothing has reached the client, so a
timeout or a dropped connection is still retryable on another tier; afterwards the proxy only
relays chunks (``UpstreamReply.rest``) and can no longer change its mind. Failures before that
point surface as ``UpstreamFailure`` with a reason the escalation policy understands.
"""

from __future__ import annotations

import json
import time
from collections.abc import AsyncIterator, Mapping
from dataclasses import dataclass, field
from typing import Any

import anyio
import httpx

from router_ml.gateway.config import Limits, Upstream

HOP_BY_HOP = frozenset(
    {
        b"connection",
        b"keep-alive",
        b"proxy-authenticate",
        b"proxy-authorization",
        b"te",
        b"trailer",
        b"trailers",
        b"transfer-encoding",
        b"upgrade",
        b"content-length",
        b"content-encoding",
        b"set-cookie",
        b"date",
        b"server",
    }
)
"""Upstream response headers the proxy does not relay: the ASGI server frames the body and sends
its own ``date`` and ``server`` (relaying them too would duplicate them), and cookies are the
upstream's business with the operator, not with clients. ``x-router-*`` headers are dropped too:
only this gateway speaks for the router."""
ROUTER_HEADER_PREFIX = b"x-router-"
CHAT_PATH = "/chat/completions"


class UpstreamFailure(Exception):
    """The upstream did not start an answer: ``reason`` is ``timeout`` or ``connection``."""

    def __init__(self, reason: str, detail: str) -> None:
        self.reason = reason
        self.detail = detail
        super().__init__(f"{reason}: {detail}")


@dataclass
class UpstreamReply:
    """An answer that has started: status, relayable headers and the bytes read so far."""

    status: int
    headers: list[tuple[bytes, bytes]]
    """Relayable response headers as raw ASGI pairs (lower-case names)."""
    body: bytes
    """The whole body when ``complete``; else the first chunk of a stream."""
    complete: bool
    latency_s: float
    """Time from sending the request to ``body`` being read."""
    _response: httpx.Response = field(repr=False)
    _chunks: AsyncIterator[bytes] | None = field(default=None, repr=False)

    @property
    def content_type(self) -> str:
        return self._response.headers.get("content-type", "")

    async def rest(self) -> AsyncIterator[bytes]:
        """The remaining chunks of a stream as they arrive (nothing when ``complete``)."""
        if self._chunks is None:
            return
        async for chunk in self._chunks:
            if chunk:
                yield chunk

    async def read_rest(self, limit: int) -> bool:
        """Read the rest of a stream into ``body``, holding at most ``limit`` bytes in all.

        True when the stream ended (``complete`` is then set); False when the limit stopped the
        reading, in which case the chunks not read yet still come from ``rest()``. Transport
        errors and stalls propagate as they do from ``rest()``.
        """
        if self._chunks is None:
            self.complete = True
            return True
        parts, size = [self.body], len(self.body)
        async for chunk in self._chunks:
            if chunk:
                parts.append(chunk)
                size += len(chunk)
                if size > limit:
                    self.body = b"".join(parts)
                    return False
        self.body, self.complete, self._chunks = b"".join(parts), True, None
        return True

    async def aclose(self) -> None:
        await _close(self._response)


class UpstreamPool:
    """One connection-pooled async client per configured upstream.

    Parameters
    ----------
    upstreams : mapping of name to Upstream
        Where requests may go, with their API keys already resolved.
    limits : Limits
        Connect and idle (between-chunk) timeouts, and the connection pool size.
    transport : httpx.AsyncBaseTransport or None
        For tests only; None uses real sockets.
    """

    def __init__(
        self,
        upstreams: Mapping[str, Upstream],
        limits: Limits,
        transport: httpx.AsyncBaseTransport | None = None,
    ) -> None:
        self.limits = limits
        timeout = httpx.Timeout(
            connect=limits.connect_timeout_s,
            read=limits.idle_timeout_s,
            write=limits.idle_timeout_s,
            pool=limits.connect_timeout_s,
        )
        pool_limits = httpx.Limits(
            max_connections=limits.max_connections, max_keepalive_connections=limits.max_connections
        )
        self._clients: dict[str, httpx.AsyncClient] = {}
        self._base_urls = {name: upstream.base_url for name, upstream in upstreams.items()}
        # Parsed once: httpx would otherwise parse and join the URL on every request.
        self._urls: dict[tuple[str, str], httpx.URL] = {}
        for name, upstream in upstreams.items():
            headers = {
                "content-type": "application/json",
                "accept-encoding": "identity",
                **upstream.headers,
            }
            if upstream.api_key:
                headers["authorization"] = f"Bearer {upstream.api_key}"
            self._clients[name] = httpx.AsyncClient(
                headers=headers,
                timeout=timeout,
                limits=pool_limits,
                transport=transport,
                follow_redirects=False,
                trust_env=False,
            )

    async def open(
        self,
        upstream: str,
        body: bytes,
        stream: bool,
        timeout_s: float,
        extra_headers: Mapping[str, str] | None = None,
        path: str = CHAT_PATH,
    ) -> UpstreamReply:
        """POST ``body`` to the upstream's ``path`` and wait for the answer to start.

        Raises ``UpstreamFailure`` when it does not start within ``timeout_s``, the connection
        fails (``timeout``, ``connection``) or a whole answer exceeds
        ``limits.max_upstream_response_bytes`` (``too_large``); an HTTP error status is a reply.
        """
        client = self._clients[upstream]
        url = self._urls.get((upstream, path))
        if url is None:
            url = self._urls[(upstream, path)] = httpx.URL(self._base_urls[upstream] + path)
        request = client.build_request("POST", url, content=body, headers=extra_headers)
        start = time.perf_counter()
        response: httpx.Response | None = None
        try:
            with anyio.fail_after(timeout_s):
                response = await client.send(request, stream=True)
                if not stream or response.status_code >= 400 or not _is_event_stream(response):
                    data = await _read_bounded(response, self.limits.max_upstream_response_bytes)
                    return UpstreamReply(
                        response.status_code,
                        _relayable(response),
                        data,
                        True,
                        time.perf_counter() - start,
                        response,
                    )
                chunks = response.aiter_raw()
                first = b""
                async for chunk in chunks:
                    if chunk:
                        first = chunk
                        break
                return UpstreamReply(
                    response.status_code,
                    _relayable(response),
                    first,
                    not first,
                    time.perf_counter() - start,
                    response,
                    chunks if first else None,
                )
        except (TimeoutError, httpx.TimeoutException) as exc:
            await _close(response)
            raise UpstreamFailure(
                "timeout", f"no answer within {timeout_s:g}s ({type(exc).__name__})"
            ) from exc
        except httpx.TransportError as exc:
            await _close(response)
            raise UpstreamFailure("connection", f"{type(exc).__name__}: {exc}") from exc
        except BaseException:  # includes UpstreamFailure("too_large")
            await _close(response)
            raise

    async def aclose(self) -> None:
        for client in self._clients.values():
            await client.aclose()


async def _read_bounded(response: httpx.Response, limit: int) -> bytes:
    """The whole body, refusing one over ``limit`` bytes before it is held in memory."""
    declared = response.headers.get("content-length", "")
    if declared.isdigit() and int(declared) > limit:
        raise UpstreamFailure("too_large", f"answer of {declared} bytes exceeds {limit}")
    chunks, size = [], 0
    async for chunk in response.aiter_bytes():
        size += len(chunk)
        if size > limit:
            raise UpstreamFailure("too_large", f"answer exceeds {limit} bytes")
        chunks.append(chunk)
    return b"".join(chunks)


def _is_event_stream(response: httpx.Response) -> bool:
    return response.headers.get("content-type", "").startswith("text/event-stream")


def _relayable(response: httpx.Response) -> list[tuple[bytes, bytes]]:
    pairs = ((name.lower(), value) for name, value in response.headers.raw)
    return [
        (name, value)
        for name, value in pairs
        if name not in HOP_BY_HOP and not name.startswith(ROUTER_HEADER_PREFIX)
    ]


async def _close(response: httpx.Response | None) -> None:
    """Release the connection, even while the calling task is being cancelled."""
    if response is not None:
        with anyio.CancelScope(shield=True):
            await response.aclose()


def usage_from_body(body: bytes) -> dict[str, Any] | None:
    """The ``usage`` object of a non-streaming chat completion, if the body has one."""
    if b'"usage"' not in body:
        return None
    try:
        usage = json.loads(body).get("usage")
    except (ValueError, AttributeError):
        return None
    return usage if isinstance(usage, dict) else None


class SseUsageScanner:
    """Finds the ``usage`` object in a relayed SSE stream without holding the stream.

    Only the current partial line is buffered (capped), and only lines mentioning ``"usage"``
    are parsed, so relaying stays cheap; the last non-null usage wins (with
    ``stream_options.include_usage`` it arrives in the final chunk).
    """

    MAX_PARTIAL = 1 << 20

    def __init__(self) -> None:
        self.usage: dict[str, Any] | None = None
        self._partial = b""

    def feed(self, chunk: bytes) -> None:
        data = self._partial + chunk if self._partial else chunk
        lines = data.split(b"\n")
        self._partial = lines.pop()
        if len(self._partial) > self.MAX_PARTIAL:
            self._partial = b""
        for line in lines:
            if b'"usage"' in line and line.startswith(b"data:"):
                usage = usage_from_body(line[5:])
                if usage is not None:
                    self.usage = usage
