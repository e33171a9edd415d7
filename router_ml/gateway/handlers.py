"""The gateway's endpoint handlers: each turns one request into one response.

A handler is ``async (request, record) -> Response``: it reads the request, adds what it learns
to the request's :class:`~router_ml.gateway.record.RequestRecord`, settles the outcome it answers
with and raises :class:`~router_ml.gateway.answers.Rejected` for any refusal. It never writes the
log line and never catches its own bugs: the request guard (``app.GuardedEndpoint``) does both,
for every endpoint alike.

Routing mode: :meth:`ChatCompletions.serving_target` is the one place where a routing decision
becomes the target a request is sent to. In shadow ``observe`` mode (``shadow.py``) the router
decides and logs as usual (``record.data["decision"]``, plus ``shadow``), and the request goes
where it would have gone without the router: ``shadow.serve_tier`` for an alias, the named model
otherwise. Answered requests may be sampled for a background replay one tier down.
"""

from __future__ import annotations

import json
import time
from collections.abc import Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np
from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from router_ml.errors import InvalidRequest
from router_ml.features import FEATURE_SCHEMA
from router_ml.gateway.answers import Rejected, bounded, error_body, invalid
from router_ml.gateway.config import Escalation, GatewayConfig, TierTarget
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
from router_ml.gateway.overrides import NO_OVERRIDE, Override, read_override, strip_router_fields
from router_ml.gateway.prom import CONTENT_TYPE
from router_ml.gateway.record import RequestRecord, logger
from router_ml.gateway.redact import redact
from router_ml.gateway.relay import StreamRelay
from router_ml.gateway.shadow import answer_message
from router_ml.gateway.upstream import SseUsageScanner, usage_from_body
from router_ml.request import ChatRequest, parse_request
from router_ml.router import FALLBACK_SOURCE, Decision

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


class Decider:
    """Parse, route (with the router's safe-tier fallback) and note features in the record."""

    def __init__(self, gateway: Gateway) -> None:
        self.gateway = gateway

    def parse(self, payload: Mapping[str, Any]) -> ChatRequest:
        """The validated request; any failure of the parser is caused by the body: a 400."""
        try:
            return parse_request(dict(payload))
        except InvalidRequest as exc:
            raise invalid(exc) from exc
        except Exception as exc:  # a parser gap: still the client's input, never a 500
            logger.error("request parser failed on a body (%s: %s)", type(exc).__name__, exc)
            self.gateway.metrics.errors.inc("parse")
            problem = f"cannot be parsed ({type(exc).__name__}: {exc})"[:300]
            raise invalid(InvalidRequest("body", problem)) from exc

    def override(self, request: Request, payload: Mapping[str, Any]) -> Override:
        """The tier or operating point the client pins for this request (validated)."""
        allowed = self.gateway.config.overrides
        if not allowed.enabled:
            return NO_OVERRIDE
        try:
            override = read_override(request.headers, payload, allowed.header, allowed.metadata)
            if override.operating_point is not None:
                self.gateway.router.thresholds_for(override.operating_point)
        except InvalidRequest as exc:
            raise invalid(exc) from exc
        except ValueError as exc:  # an operating point the model does not have
            where = "x-router-operating-point" if "header" in override.source else "metadata"
            raise invalid(InvalidRequest(where, str(exc)[:300])) from exc
        return override

    def repeated(self, request: Request, payload: Mapping[str, Any]) -> bool:
        """Whether this client sent this conversation moments ago (the policy's ``retry``)."""
        cache = self.gateway.repeats
        if cache is None:
            return False
        return cache.seen(cache.digest(payload, request.headers.get("authorization", "")))

    def decide(
        self,
        parsed: ChatRequest,
        record: RequestRecord,
        override: Override = NO_OVERRIDE,
        repeated: bool = False,
    ) -> Decision:
        metrics = self.gateway.metrics
        if override:
            record.data["override"] = override.to_dict()
        if repeated:
            record.data["repeated"] = True
        if override.tier is not None:
            target = self.gateway.config.tiers[override.tier]
            decision = Decision(
                override.tier,
                target.model,
                OVERRIDE_SOURCE,
                reason=f"tier {override.tier} pinned by the client ({override.source})",
            )
            metrics.decisions.inc(decision.tier, decision.source)
            record.data["decision"] = decision.to_dict()
            return decision
        try:
            decision = self.gateway.router.route_or_safe(parsed, override.operating_point, repeated)
        except InvalidRequest as exc:
            metrics.errors.inc("routing_refused")
            raise invalid(exc) from exc
        if decision.source == FALLBACK_SOURCE:
            metrics.errors.inc("routing")
        metrics.decisions.inc(decision.tier, decision.source)
        metrics.route_latency.observe(decision.latency_us / 1e6)
        record.data["decision"] = decision.to_dict()
        return decision

    def route_client_request(
        self, request: Request, payload: Mapping[str, Any], record: RequestRecord
    ) -> Decision:
        """Parse, decide (with the client's override and the repeat cache) and log the features:
        what the chat and decision-only endpoints do alike for a routed request."""
        parsed = self.parse(payload)
        decision = self.decide(
            parsed, record, self.override(request, payload), self.repeated(request, payload)
        )
        self.note_request(record, payload, parsed, decision)
        return decision

    def note_request(
        self,
        record: RequestRecord,
        payload: Mapping[str, Any],
        parsed: ChatRequest | None,
        decision: Decision | None = None,
    ) -> None:
        """Add the features (and, if opted in, the request body) to the log line.

        The model's own feature vector is reused when it decided; others are extracted here.
        """
        config = self.gateway.config.decision_log
        if config.include_features and parsed is not None:
            try:
                features = (
                    decision.features
                    if decision is not None and decision.features is not None
                    else self.gateway.router.features(parsed)
                )
                record.data["feature_schema"] = FEATURE_SCHEMA.hash
                record.data["features"] = np.round(features.astype(np.float64), 6).tolist()
            except Exception:  # features are for analysis; never fail the request over them
                logger.exception("feature extraction failed for request %s", record.id)
                self.gateway.metrics.errors.inc("features")
        if config.include_prompts:
            record.data["request"] = payload


class ChatCompletions:
    """``POST /v1/chat/completions``: route (or pass through) and relay the upstream's answer."""

    def __init__(self, gateway: Gateway) -> None:
        self.gateway = gateway
        self.decider = Decider(gateway)

    async def __call__(self, request: Request, record: RequestRecord) -> Answer:
        gateway, config = self.gateway, self.gateway.config
        gateway.intake.authorize(request)
        raw = await gateway.intake.read_body(request)
        chat = await gateway.offload(len(raw), self.prepare, request, raw, record)
        payload, prepared = chat.payload, chat.prepared
        deadline = time.monotonic() + config.limits.total_timeout_s
        check = None
        if chat.routed:
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

    def prepare(self, request: Request, raw: bytes, record: RequestRecord) -> PreparedChat:
        """Decode, check and route (or pick the passthrough target): the request's CPU work,
        which ``Gateway.offload`` runs in a worker thread for a heavy body."""
        config = self.gateway.config
        payload = self.gateway.intake.json_object(raw)
        model = check_model_name(payload.get("model"), config.aliases)
        stream = payload.get("stream") is True
        record.data.update(requested_model=model, stream=stream)
        headers = {"x-router-request-id": record.id}
        if model not in config.aliases:
            target = self._passthrough_target(model)
            self._observe_passthrough(record, payload)
            call = UpstreamCall(None, raw, stream, headers)
            return PreparedChat(Prepared(target, call, "passthrough", None), payload, stream, False)
        decision = self.decider.route_client_request(request, payload, record)
        call = UpstreamCall(strip_router_fields(payload), raw, stream, headers)
        prepared = Prepared(
            self.serving_target(decision, record), call, decision.source, self._escalation(decision)
        )
        return PreparedChat(prepared, payload, stream, True)

    def _escalation(self, decision: Decision) -> Escalation:
        """The configured chain, or a cascade decision's own list with a budget to walk it."""
        configured = self.gateway.config.escalation
        if not decision.cascade:
            return configured
        return Escalation(decision.cascade, len(decision.cascade) - 1, configured.retry_on)

    def serving_target(self, decision: Decision, record: RequestRecord) -> TierTarget:
        """Where a routed request is sent: the decided tier's target, or in shadow ``observe``
        mode the configured ``serve_tier`` (the decision is only logged; see the module doc)."""
        config = self.gateway.config
        if config.shadow.observing:
            self.gateway.shadow.note(record, decision)
            return config.tiers[config.shadow.serve_tier]
        return config.tiers[decision.tier]

    def _observe_passthrough(self, record: RequestRecord, payload: Mapping[str, Any]) -> None:
        """A named model is served as asked; observing, the router still decides and logs."""
        if not self.gateway.config.shadow.observing:
            self.decider.note_request(record, payload, None)
            return
        try:
            parsed = self.decider.parse(payload)
            decision = self.decider.decide(parsed, record)
        except Rejected as exc:  # the client asked for a model, not for routing: still served
            self.gateway.shadow.note_refusal(record, exc.body["error"]["message"])
            self.decider.note_request(record, payload, None)
            return
        self.gateway.shadow.note(record, decision)
        self.decider.note_request(record, payload, parsed, decision)

    def _passthrough_target(self, model: str) -> TierTarget:
        config = self.gateway.config
        target = config.target_for_model(model)
        if target is not None:
            return target
        return passthrough_target(config, model)

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
        self.decider = Decider(gateway)

    async def __call__(self, request: Request, record: RequestRecord) -> Response:
        intake = self.gateway.intake
        intake.authorize(request)
        raw = await intake.read_body(request)
        decision = await self.gateway.offload(len(raw), self.decide, request, raw, record)
        record.settle(200, "ok")
        return JSONResponse(
            {"request_id": record.id, **decision.to_dict()},
            headers=decision_headers(
                record, decision.tier, decision.model, decision.source, escalated=False
            ),
        )

    def decide(self, request: Request, raw: bytes, record: RequestRecord) -> Decision:
        """Decode and route: the CPU work, in a worker thread for a heavy body (``offload``)."""
        payload = self.gateway.intake.json_object(raw)
        return self.decider.route_client_request(request, payload, record)


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


MAX_MODEL_NAME_CHARS = 256


def check_model_name(model: Any, aliases: Any) -> str:
    """The requested model name, refused with a 400 unless it is safe to put in a header.

    A name with CR, LF, NUL or another control character, or one that Latin-1 (the HTTP header
    charset) cannot carry, would otherwise break or smuggle a response header.
    """
    if not isinstance(model, str) or not model:
        raise Rejected(
            400,
            "invalid_request",
            error_body(
                f"model: expected a model name or one of the routing aliases {sorted(aliases)}",
                param="model",
                code="invalid_value",
            ),
        )
    if (
        len(model) > MAX_MODEL_NAME_CHARS
        or not model.isprintable()
        or not all(ord(c) < 256 for c in model)
    ):
        raise Rejected(
            400,
            "invalid_request",
            error_body(
                f"model: expected at most {MAX_MODEL_NAME_CHARS} printable Latin-1 characters "
                "(no control characters)",
                param="model",
                code="invalid_value",
            ),
        )
    return model


@dataclass(frozen=True)
class Prepared:
    """A request ready to be sent: where to first, what to send, how to escalate."""

    first: TierTarget
    call: UpstreamCall
    source: str
    escalation: Escalation | None


@dataclass(frozen=True)
class PreparedChat:
    """A chat request decoded and prepared; ``routed`` when it named an alias (gates apply)."""

    prepared: Prepared
    payload: dict[str, Any]
    stream: bool
    routed: bool


def passthrough_target(config: GatewayConfig, model: str) -> TierTarget:
    """The passthrough upstream for an allowed explicit model name, else a 404."""
    upstream = config.passthrough_upstream
    if upstream is None or not config.passthrough_allows(model):
        why = (
            "no passthrough upstream is configured"
            if upstream is None
            else "it is not in the passthrough allowlist"
        )
        raise Rejected(
            404,
            "model_not_found",
            error_body(
                f"model {bounded(model, 100)!r} is neither a routing alias "
                f"{sorted(config.aliases)} nor a configured tier model, and {why}",
                param="model",
                code="model_not_found",
            ),
        )
    return TierTarget("none", model, upstream)


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
        prepared = await gateway.offload(len(raw), self.prepare, raw, record)
        return await proxy(gateway, record, prepared)

    def prepare(self, raw: bytes, record: RequestRecord) -> Prepared:
        config = self.gateway.config
        payload = self.gateway.intake.json_object(raw)
        model = check_model_name(payload.get("model"), ())
        stream = payload.get("stream") is True
        record.data.update(requested_model=model, stream=stream)
        if config.decision_log.include_prompts:
            record.data["request"] = payload
        call = UpstreamCall(None, raw, stream, {"x-router-request-id": record.id}, path=self.path)
        return Prepared(passthrough_target(config, model), call, "passthrough", None)


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
