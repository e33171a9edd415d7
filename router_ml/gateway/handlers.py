"""The gateway's endpoint handlers: each turns one request into one response.

A handler is ``async (request, record) -> Response``: it reads the request, adds what it learns
to the request's :class:`~router_ml.gateway.record.RequestRecord`, settles the outcome it answers
with and raises :class:`~router_ml.gateway.answers.Rejected` for any refusal. It never writes the
log line and never catches its own bugs: the request guard (``app.GuardedEndpoint``) does both,
for every endpoint alike.

A request's body is decoded, checked and routed by ``Gateway.prepare`` (``prepare``, run by
``workers`` inline, in a thread or in a worker process by its size); the handlers send what it
prepared. Routing mode: ``prepare.Preparer.serving_target``. Answered requests may be sampled
for a background replay one tier down (``shadow``).
"""

from __future__ import annotations

import json
import time
from collections.abc import Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from router_ml.gateway.answers import Rejected, error_body
from router_ml.gateway.config import Escalation, TierTarget
from router_ml.gateway.escalation import (
    GATE_FAILURE,
    Attempt,
    EscalationPlan,
    Outcome,
    UpstreamCall,
    call_with_escalation,
    error_message,
)
from router_ml.gateway.gating import RequestGate
from router_ml.gateway.prepare import CHAT, ROUTE, Preparation
from router_ml.gateway.prom import CONTENT_TYPE
from router_ml.gateway.record import RequestRecord
from router_ml.gateway.redact import redact
from router_ml.gateway.relay import StreamRelay
from router_ml.gateway.shadow import answer_message
from router_ml.gateway.upstream import SseUsageScanner, usage_from_body

if TYPE_CHECKING:
    from router_ml.gateway.app import Gateway

FAILURE_STATUS = {"timeout": 504, "connection": 502, "too_large": 502}
FAILURE_CODE = {
    "timeout": "upstream_timeout",
    "connection": "upstream_unreachable",
    "too_large": "upstream_response_too_large",
}


Answer = Response | StreamRelay
"""What a handler answers with: a Starlette response, or the raw ASGI relay of a started stream."""

OVERRIDE_SOURCE = "override"
"""``Decision.source`` of a request whose tier the client pinned (header or metadata)."""


def decision_headers(
    record: RequestRecord, tier: str, model: str, source: str, escalated: bool
) -> dict[str, str]:
    return {
        "x-router-request-id": record.id,
        "x-router-tier": tier,
        "x-router-model": model,
        "x-router-source": source,
        "x-router-escalated": "true" if escalated else "false",
    }


def gate_header(outcome: Outcome) -> str:
    """``x-router-gate``: the verdict on the answer served (``passed``, ``failed:<gate>``), or
    ``off`` when no gate judged it."""
    gate = outcome.attempts[-1].gate if outcome.attempts else None
    if gate is None:
        return "off"
    return "passed" if gate.passed else f"failed:{gate.name}"


class ChatCompletions:
    """``POST /v1/chat/completions``: route (or pass through) and relay the upstream's answer."""

    def __init__(self, gateway: Gateway) -> None:
        self.gateway = gateway

    async def __call__(self, request: Request, record: RequestRecord) -> Answer:
        gateway, config = self.gateway, self.gateway.config
        gateway.intake.authorize(request)
        raw = await gateway.intake.read_body(request)
        chat = await gateway.prepare(request, raw, record, CHAT)
        prepared = prepared_call(chat, raw, record)
        payload = chat.payload  # kept when gates, replays or logged prompts use it
        deadline = time.monotonic() + config.limits.total_timeout_s
        check = None
        if chat.routed and payload is not None:
            gate = RequestGate(
                config.gates,
                payload,
                chat.stream,
                gateway.pool,
                gateway.metrics,
                deadline,
                gateway.check_answer,
            )
            check = gate if gate.active else None

        plan = EscalationPlan(
            prepared.first,
            config.tiers,
            prepared.escalation,
            deadline,
            config.limits.first_byte_timeout_s,
        )
        outcome = await call_with_escalation(
            gateway.pool, plan, prepared.call, self._count_attempt, check
        )
        record.note_upstream(outcome)
        headers = decision_headers(
            record, outcome.target.tier, outcome.target.model, prepared.source, outcome.escalated
        )
        if chat.routed and (config.gates.names or gateway.check_answer):
            headers["x-router-gate"] = gate_header(outcome)
        reply = outcome.reply
        if reply is not None and outcome.failure in FAILURE_STATUS:
            await reply.aclose()  # a buffered stream broke before the client saw any of it
            reply = None
        if reply is None:
            raise upstream_failed(gateway, outcome, headers)
        if reply.complete and reply.status in CREDENTIAL_STATUSES:
            await reply.aclose()
            raise credentials_refused(gateway, outcome, reply.status, headers)
        raw_headers = header_pairs(headers) + reply.headers
        replayed = (
            reply.status < 400
            and outcome.failure is None
            and payload is not None
            and gateway.shadow.maybe_replay(record, payload, outcome.target)
        )
        if not reply.complete:
            return StreamRelay(
                record,
                outcome,
                raw_headers,
                deadline,
                gateway.metrics,
                config.limits.max_upstream_response_bytes,
            )
        await reply.aclose()
        record.data["usage"] = _usage(reply.body, reply.content_type)
        if replayed and config.decision_log.include_prompts:
            record.data["answer"] = answer_message(reply.body)
        if reply.status >= 400:
            gateway.metrics.errors.inc(f"upstream_{outcome.failure}")
            result = "upstream_error"
        else:
            result = "gate_failed" if outcome.failure == GATE_FAILURE else "ok"
        record.settle(reply.status, result)
        body = redacted_error_body(reply.body) if reply.status >= 400 else reply.body
        response = Response(body, status_code=reply.status)
        response.raw_headers.extend(raw_headers)
        return response

    def _count_attempt(self, attempt: Attempt, next_tier: str | None) -> None:
        metrics = self.gateway.metrics
        metrics.upstream_latency.observe(
            attempt.latency_ms / 1e3, attempt.tier, attempt.failure or "ok"
        )
        if next_tier is not None:
            metrics.escalations.inc(attempt.tier, next_tier, attempt.failure or "")


class RouteDecision:
    """``POST /v1/route``: the decision only, for gateways that call upstreams themselves."""

    def __init__(self, gateway: Gateway) -> None:
        self.gateway = gateway

    async def __call__(self, request: Request, record: RequestRecord) -> Response:
        intake = self.gateway.intake
        intake.authorize(request)
        raw = await intake.read_body(request)
        decision = (await self.gateway.prepare(request, raw, record, ROUTE)).decision
        assert decision is not None, "a prepared /v1/route request has its decision"
        record.settle(200, "ok")
        return JSONResponse(
            {"request_id": record.id, **decision.to_dict()},
            headers=decision_headers(
                record, decision.tier, decision.model, decision.source, escalated=False
            ),
        )


class ListModels:
    """``GET /v1/models``: the routing aliases and tier models, for clients that list first."""

    def __init__(self, gateway: Gateway) -> None:
        self.gateway = gateway

    async def __call__(self, request: Request, record: RequestRecord) -> Response:
        self.gateway.intake.authorize(request)
        config = self.gateway.config
        names = sorted(config.aliases) + [t.model for t in config.tiers.values()]
        record.settle(200, "ok")
        return JSONResponse(
            {
                "object": "list",
                "data": [
                    {"id": name, "object": "model", "created": 0, "owned_by": "router-ml"}
                    for name in dict.fromkeys(names)
                ],
            }
        )


class Health:
    """``GET /healthz``: always open, for load balancers."""

    def __init__(self, gateway: Gateway) -> None:
        self.gateway = gateway

    async def __call__(self, _request: Request, record: RequestRecord) -> Response:
        record.settle(200, "ok")
        return JSONResponse(
            {
                "status": "ok",
                "tiers": {t: x.model for t, x in self.gateway.config.tiers.items()},
                "operating_point": self.gateway.router.operating_point.name,
            }
        )


class Metrics:
    """``GET /metrics``: Prometheus text."""

    def __init__(self, gateway: Gateway) -> None:
        self.gateway = gateway

    async def __call__(self, request: Request, record: RequestRecord) -> Response:
        if self.gateway.config.protect_metrics:
            self.gateway.intake.authorize(request)
        record.settle(200, "ok")
        return Response(self.gateway.metrics.render(), media_type=CONTENT_TYPE)


def _usage(body: bytes, content_type: str) -> dict[str, Any] | None:
    """Token usage of a complete answer: a JSON body, or a buffered SSE stream."""
    if not content_type.startswith("text/event-stream"):
        return usage_from_body(body)
    scanner = SseUsageScanner()
    scanner.feed(body + b"\n")
    return scanner.usage


@dataclass(frozen=True)
class Prepared:
    """A request ready to be sent: where to first, what to send, how to escalate."""

    first: TierTarget
    call: UpstreamCall
    source: str
    escalation: Escalation | None


def prepared_call(chat: Preparation, raw: bytes, record: RequestRecord) -> Prepared:
    """A prepared chat request as sent: a routed body with each tier's model spliced into the
    client's bytes, a named model's byte for byte."""
    assert chat.target is not None, "a prepared chat request has its target"
    call = UpstreamCall(
        chat.reencode, raw, chat.stream, {"x-router-request-id": record.id}, forward=chat.forward
    )
    return Prepared(chat.target, call, chat.source, chat.escalation)


class PassthroughEndpoint:
    """``POST /v1/embeddings``, ``/v1/completions``, ``/v1/responses``: relayed unrouted.

    The body goes byte for byte to the passthrough upstream's same endpoint, for the allowed
    models only; streams are relayed like chat streams. Nothing is escalated.
    """

    def __init__(self, gateway: Gateway, endpoint: str) -> None:
        self.gateway = gateway
        self.path = f"/{endpoint}"

    async def __call__(self, request: Request, record: RequestRecord) -> Answer:
        gateway = self.gateway
        gateway.intake.authorize(request)
        raw = await gateway.intake.read_body(request)
        relayed = await gateway.prepare(request, raw, record, self.path)
        assert relayed.target is not None, "a prepared passthrough request has its target"
        headers = {"x-router-request-id": record.id}
        call = UpstreamCall(None, raw, relayed.stream, headers, path=self.path)
        return await proxy(gateway, record, Prepared(relayed.target, call, relayed.source, None))


async def proxy(gateway: Gateway, record: RequestRecord, prepared: Prepared) -> Answer:
    """Send a prepared request along its escalation plan and answer with the outcome."""
    limits = gateway.config.limits
    deadline = time.monotonic() + limits.total_timeout_s
    plan = EscalationPlan(
        prepared.first,
        gateway.config.tiers,
        prepared.escalation,
        deadline,
        limits.first_byte_timeout_s,
    )
    outcome = await call_with_escalation(
        gateway.pool,
        plan,
        prepared.call,
        lambda a, t: count_attempt(gateway, a, t),
        gateway.check_answer,
    )
    record.note_upstream(outcome)
    headers = decision_headers(
        record, outcome.target.tier, outcome.target.model, prepared.source, outcome.escalated
    )
    reply = outcome.reply
    if reply is None:
        raise upstream_failed(gateway, outcome, headers)
    if reply.complete and reply.status in CREDENTIAL_STATUSES:
        await reply.aclose()
        raise credentials_refused(gateway, outcome, reply.status, headers)
    raw_headers = header_pairs(headers) + reply.headers
    if not reply.complete:
        return StreamRelay(
            record,
            outcome,
            raw_headers,
            deadline,
            gateway.metrics,
            limits.max_upstream_response_bytes,
        )
    await reply.aclose()
    record.data["usage"] = usage_from_body(reply.body)
    body = reply.body
    if reply.status >= 400:
        gateway.metrics.errors.inc(f"upstream_{outcome.failure}")
        body = redacted_error_body(body)
    record.settle(reply.status, "ok" if reply.status < 400 else "upstream_error")
    response = Response(body, status_code=reply.status)
    response.raw_headers.extend(raw_headers)
    return response


def upstream_failed(gateway: Gateway, outcome: Any, headers: Mapping[str, str]) -> Rejected:
    """The error for a request whose every attempt failed before an answer (counted by kind)."""
    failure = outcome.failure or "connection"
    gateway.metrics.errors.inc(f"upstream_{failure}")
    return Rejected(
        FAILURE_STATUS.get(failure, 502),
        f"upstream_{failure}",
        error_body(
            f"upstream {outcome.target.upstream} ({outcome.target.model}) failed: "
            f"{outcome.attempts[-1].detail}",
            kind="upstream_error",
            code=FAILURE_CODE.get(failure, "upstream_error"),
        ),
        headers,
    )


def credentials_refused(
    gateway: Gateway, outcome: Any, status: int, headers: Mapping[str, str]
) -> Rejected:
    """The 502 that replaces an upstream 401/403: that body is about the operator's key."""
    gateway.metrics.errors.inc("upstream_credentials")
    return Rejected(
        502,
        "upstream_credentials",
        error_body(
            f"upstream {outcome.target.upstream} refused the gateway's credentials "
            f"(HTTP {status}); the operator must check its API key",
            kind="upstream_error",
            code="upstream_credentials",
        ),
        headers,
    )


CREDENTIAL_STATUSES = frozenset({401, 403})
"""Upstream statuses about the operator's key: never relayed verbatim to a client."""


def redacted_error_body(body: bytes) -> bytes:
    """An upstream error body as relayed: unchanged unless it quotes something key-like."""
    text = body.decode("utf-8", errors="replace")
    if redact(text) == text:
        return body
    return json.dumps(
        error_body(redact(error_message(body)), kind="upstream_error", code="upstream_error")
    ).encode()


def count_attempt(gateway: Gateway, attempt: Attempt, next_tier: str | None) -> None:
    metrics = gateway.metrics
    metrics.upstream_latency.observe(
        attempt.latency_ms / 1e3, attempt.tier, attempt.failure or "ok"
    )
    if next_tier is not None:
        metrics.escalations.inc(attempt.tier, next_tier, attempt.failure or "")


def header_pairs(headers: Mapping[str, str]) -> list[tuple[bytes, bytes]]:
    """Raw ASGI header pairs; any character a header cannot carry becomes ``?``."""
    return [(k.encode("latin-1"), _header_safe(v)) for k, v in headers.items()]


def _header_safe(value: str) -> bytes:
    clean = "".join(c if c.isprintable() and ord(c) < 256 else "?" for c in value)
    return clean.encode("latin-1")
