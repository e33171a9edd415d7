"""Running the answer gates on one request's upstream answers (the escalation loop's hook).

:mod:`router_ml.gateway.gates` holds the pure checks; this module applies them inside the
gateway: one :class:`RequestGate` per routed request, called by ``call_with_escalation`` after
each answer has started and before anything reaches the client (``escalation.AnswerCheck``).

Streams: a request whose gates buffer streams (``AnswerGates.buffers_stream``) has its stream
read to the end here (bounded by ``gates.stream_buffer_bytes`` and the request's deadline)
before it is gated; the client then receives it whole, or the next tier's answer — never part of
one answer and then another. A stream that breaks or stalls while buffered is an upstream failure
of that attempt (``timeout``/``connection``), retryable like one before the first byte, since the
client has seen nothing. A stream longer than the buffer is relayed ungated from where the buffer
stopped (a passing verdict named ``buffer`` says so).
"""

from __future__ import annotations

import json
import time
from collections.abc import Mapping
from typing import Any

import anyio
import httpx

from router_ml.gateway.escalation import AnswerCheck, Attempt
from router_ml.gateway.gates import (
    AnswerGates,
    GateError,
    GateVerdict,
    assemble_stream,
    judge_request,
    judge_verdict,
    parse_answer,
)
from router_ml.gateway.prom import GatewayMetrics
from router_ml.gateway.upstream import UpstreamFailure, UpstreamPool, UpstreamReply


class RequestGate:
    """The answer gates of one request, with what they need: the request and the pool.

    Parameters
    ----------
    gates : AnswerGates
        The configured gates.
    request : mapping
        The client's request body (its ``response_format`` and ``tools`` define what is valid).
    stream : bool
        Whether the client asked for a stream (only buffered gates run on streams).
    pool : UpstreamPool
        For the judge gate's call.
    deadline : float
        ``time.monotonic()`` instant bounding the request; buffering and judging stay within it.
    extra : AnswerCheck or None
        Another check run after the configured gates pass (``Gateway.check_answer``).
    """

    def __init__(
        self,
        gates: AnswerGates,
        request: Mapping[str, Any],
        stream: bool,
        pool: UpstreamPool,
        metrics: GatewayMetrics,
        deadline: float,
        extra: AnswerCheck | None = None,
    ) -> None:
        self.gates, self.request, self.stream = gates, request, stream
        self.pool, self.metrics, self.deadline, self.extra = pool, metrics, deadline, extra
        self.buffers = stream and gates.buffers_stream(request)
        self.active = gates.applies(request, stream) or extra is not None

    async def __call__(self, attempt: Attempt, reply: UpstreamReply) -> GateVerdict | None:
        start = time.perf_counter()
        try:
            verdict = await self._verdict(attempt, reply)
        finally:
            attempt.gate_ms = (time.perf_counter() - start) * 1e3
        if verdict is not None:
            result = "passed" if verdict.passed else "failed"
            self.metrics.gate_checks.inc(attempt.tier, result)
            if not verdict.passed:
                self.metrics.gate_failures.inc(verdict.name, attempt.tier)
        return verdict

    async def _verdict(self, attempt: Attempt, reply: UpstreamReply) -> GateVerdict | None:
        is_stream = not reply.complete or reply.content_type.startswith("text/event-stream")
        verdict: GateVerdict | None = None
        if self.gates.applies(self.request, self.stream):
            if not reply.complete:
                if not self.buffers:
                    return await self._extra(attempt, reply)
                ended = await self._buffer(attempt, reply)
                if ended is None:
                    return None  # the stream failed while buffered: an upstream failure
                if not ended:
                    return GateVerdict(
                        "buffer",
                        True,
                        f"not gated: streamed answer longer than "
                        f"{self.gates.stream_buffer_bytes} bytes",
                    )
            answer = assemble_stream(reply.body) if is_stream else parse_answer(reply.body)
            if answer is None:
                verdict = GateVerdict(
                    "parse", False, "the upstream answer is not a chat completion"
                )
            else:
                verdict = self.gates.check(self.request, answer, stream=is_stream)
                if verdict.passed and self._judges(is_stream):
                    verdict = await self._judge(answer) or verdict
            if not verdict.passed:
                return verdict
        return await self._extra(attempt, reply) or verdict

    async def _extra(self, attempt: Attempt, reply: UpstreamReply) -> GateVerdict | None:
        return None if self.extra is None else await self.extra(attempt, reply)

    def _judges(self, is_stream: bool) -> bool:
        return self.gates.judge is not None and (
            not is_stream or self.gates.judge_stream == "buffer"
        )

    async def _buffer(self, attempt: Attempt, reply: UpstreamReply) -> bool | None:
        """Read a stream to its end (True), to the buffer limit (False), or fail (None)."""
        try:
            with anyio.fail_after(max(self.deadline - time.monotonic(), 0.0)):
                return await reply.read_rest(self.gates.stream_buffer_bytes)
        except TimeoutError:
            attempt.failure, attempt.detail = "timeout", "total timeout reached while buffering"
        except httpx.TimeoutException as exc:
            attempt.failure = "timeout"
            attempt.detail = f"stream stalled while buffered for the gates ({type(exc).__name__})"
        except httpx.HTTPError as exc:
            attempt.failure = "connection"
            attempt.detail = f"stream broke while buffered for the gates ({type(exc).__name__})"
        return None

    async def _judge(self, answer: Mapping[str, Any]) -> GateVerdict | None:
        """The judge's verdict; a judge that fails or answers nonsense passes the answer."""
        spec = self.gates.judge
        assert spec is not None
        body = json.dumps(judge_request(spec, self.request, answer)).encode()
        timeout = min(spec.timeout_s, self.deadline - time.monotonic())
        if timeout <= 0:
            return GateVerdict("judge", True, "not judged: no time left before the deadline")
        try:
            reply = await self.pool.open(spec.upstream, body, False, timeout)
        except UpstreamFailure as exc:
            return GateVerdict("judge", True, f"not judged: {exc.reason}")
        try:
            if reply.status >= 400:
                return GateVerdict("judge", True, f"not judged: judge answered {reply.status}")
            judged = parse_answer(reply.body)
            if judged is None:
                return GateVerdict("judge", True, "not judged: unreadable judge answer")
            return judge_verdict(spec, judged)
        except GateError as exc:
            return GateVerdict("judge", True, f"not judged: {exc}")
        finally:
            await reply.aclose()
