"""Relaying a started upstream stream to the client, finishing the request's record at the end.

Built as a raw ASGI response so the record is finished exactly once whatever happens: the stream
ends, the upstream breaks or stalls (the client gets an SSE error event, since retrying is no
longer possible), the total deadline passes, or the client goes away.
"""

from __future__ import annotations

import json
import time

import anyio
import httpx
from starlette.types import Receive, Scope, Send

from router_ml.gateway.answers import error_body
from router_ml.gateway.escalation import Outcome
from router_ml.gateway.prom import GatewayMetrics
from router_ml.gateway.record import RequestRecord
from router_ml.gateway.upstream import SseUsageScanner


class StreamRelay:
    """An ASGI response relaying ``outcome.reply`` chunk by chunk until ``deadline``."""

    def __init__(
        self,
        record: RequestRecord,
        outcome: Outcome,
        headers: list[tuple[bytes, bytes]],
        deadline: float,
        metrics: GatewayMetrics,
        max_bytes: int,
    ) -> None:
        self.record, self.outcome, self.metrics = record, outcome, metrics
        self.max_bytes = max_bytes
        self.headers, self.deadline = headers, deadline

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        reply = self.outcome.reply
        assert reply is not None
        usage = SseUsageScanner()
        usage.feed(reply.body)
        # "aborted" stays only if this task is cancelled (server shutdown) before the end.
        status, result, detail = reply.status, "aborted", None
        disconnected = False

        async def watch_disconnect(scope_to_cancel: anyio.CancelScope) -> None:
            nonlocal disconnected
            while (await receive())["type"] != "http.disconnect":
                pass
            disconnected = True
            scope_to_cancel.cancel()

        try:
            await send({"type": "http.response.start", "status": status, "headers": self.headers})
            self._log_if_done(reply.body, status, usage)
            await send({"type": "http.response.body", "body": reply.body, "more_body": True})
            async with anyio.create_task_group() as group:
                group.start_soon(watch_disconnect, group.cancel_scope)
                result = "ok"
                try:
                    relayed = len(reply.body)
                    with anyio.fail_after(max(self.deadline - time.monotonic(), 0.0)):
                        async for chunk in reply.rest():
                            relayed += len(chunk)
                            if relayed > self.max_bytes:
                                result = "stream_interrupted"
                                detail = f"upstream stream exceeds {self.max_bytes} bytes"
                                break
                            usage.feed(chunk)
                            self._log_if_done(chunk, status, usage)
                            await send(
                                {"type": "http.response.body", "body": chunk, "more_body": True}
                            )
                except TimeoutError:
                    result, detail = "stream_interrupted", "total timeout reached while streaming"
                except httpx.HTTPError as exc:
                    result = "stream_interrupted"
                    detail = f"upstream failed after streaming started: {type(exc).__name__}: {exc}"
                except OSError:  # servers other than uvicorn report a vanished client this way
                    disconnected = True
                group.cancel_scope.cancel()
            if disconnected:
                result, detail = "client_disconnected", "client went away while streaming"
            else:
                # Log before the last bytes: a client that saw the end finds its line written.
                self._log(status, result, detail, usage)
                if result == "stream_interrupted":
                    event = error_body(
                        f"{detail}; not retried",
                        kind="upstream_error",
                        code="upstream_stream_interrupted",
                    )
                    await send(
                        {
                            "type": "http.response.body",
                            "body": b"data: " + json.dumps(event).encode() + b"\n\n",
                            "more_body": True,
                        }
                    )
                await send({"type": "http.response.body", "body": b"", "more_body": False})
        except OSError as exc:  # the ASGI server reports a vanished client this way
            result, detail = "client_disconnected", f"{type(exc).__name__}: {exc}"
        finally:
            await reply.aclose()
            self._log(status, result, detail, usage)

    def _log_if_done(self, chunk: bytes, status: int, usage: SseUsageScanner) -> None:
        """Log success when the upstream's ``[DONE]`` passes: the answer is complete, and SDKs
        stop reading (and may hang up) right after it, before the stream's closing frame."""
        if b"data: [DONE]" in chunk:
            self._log(status, "ok", None, usage)

    def _log(self, status: int, result: str, detail: str | None, usage: SseUsageScanner) -> None:
        if self.record.written:
            return
        if result != "ok":
            self.metrics.errors.inc(result)
        self.record.data["usage"] = usage.usage
        if detail:
            self.record.data["error"] = detail
        self.record.finish(status, result)
