"""The uvicorn settings of the gateway: slow and idle clients are cut off, connections capped.

uvicorn bounds an idle keep-alive connection (``timeout_keep_alive``) and concurrency
(``limit_concurrency``, answered 503) but not how long a client may take to send its request
headers: a slowloris client dribbling one header byte a second holds a connection (and a file
descriptor) forever. :func:`header_deadline_protocol` adds that deadline to uvicorn's httptools
protocol: it starts when a connection opens or a new request's first byte arrives, and closes
the connection when the headers are not complete in time. The body has its own deadline in
``intake.Intake.read_body`` (answered 408). All values come from the config's ``limits``.
"""

from __future__ import annotations

import asyncio
import os
from typing import Any

import uvicorn
from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol

from router_ml.gateway.config import Limits

HEADER_TIMEOUT_ENV_VAR = "ROUTER_ML_HEADER_TIMEOUT_S"
"""How ``serve --workers N`` hands the header deadline to worker processes."""


class HeaderDeadlineProtocol(HttpToolsProtocol):
    """uvicorn's httptools protocol, closing connections whose headers take over ``timeout_s``."""

    timeout_s: float = Limits.client_header_timeout_s
    _header_timer: asyncio.TimerHandle | None = None

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(transport)
        self._start_header_timer()

    def on_message_begin(self) -> None:
        super().on_message_begin()
        self._start_header_timer()

    def on_headers_complete(self) -> None:
        self._cancel_header_timer()
        super().on_headers_complete()

    def connection_lost(self, exc: Exception | None) -> None:
        self._cancel_header_timer()
        super().connection_lost(exc)

    def _start_header_timer(self) -> None:
        if self._header_timer is None:
            self._header_timer = self.loop.call_later(self.timeout_s, self._headers_too_slow)

    def _cancel_header_timer(self) -> None:
        if self._header_timer is not None:
            self._header_timer.cancel()
            self._header_timer = None

    def _headers_too_slow(self) -> None:
        self._header_timer = None
        if not self.transport.is_closing():
            self.transport.close()


class HeaderDeadlineFromEnv(HeaderDeadlineProtocol):
    """The protocol for worker processes: the deadline comes from ``HEADER_TIMEOUT_ENV_VAR``."""

    timeout_s = float(os.environ.get(HEADER_TIMEOUT_ENV_VAR, Limits.client_header_timeout_s))


def header_deadline_protocol(timeout_s: float) -> type[HeaderDeadlineProtocol]:
    """The protocol class with a header deadline of ``timeout_s``."""
    return type("HeaderDeadline", (HeaderDeadlineProtocol,), {"timeout_s": timeout_s})


def server_options(limits: Limits) -> dict[str, Any]:
    """uvicorn options (keyword arguments of ``uvicorn.Config``/``run``) for the client limits."""
    return {
        "timeout_keep_alive": limits.client_idle_timeout_s,
        "limit_concurrency": limits.max_client_connections,
        "server_header": True,
        "date_header": True,
    }


def server_config(app: Any, limits: Limits, **options: Any) -> uvicorn.Config:
    """A ``uvicorn.Config`` for ``app`` with the client-side limits of ``limits``.

    ``options`` are passed on (host, port, log_level, workers, ...).
    """
    return uvicorn.Config(
        app,
        http=header_deadline_protocol(limits.client_header_timeout_s),
        **server_options(limits),
        **options,
    )
