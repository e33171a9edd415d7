"""The ASGI gateway: decision service, OpenAI-compatible routing proxy, health and metrics.

Routes:

- ``POST /v1/chat/completions``: ``model`` set to an alias (``auto``) is routed to a tier and sent
  to that tier's upstream with the tier's model name; any other model passes through untouched to
  the upstream serving it. Streams are relayed chunk by chunk, other bodies byte for byte.
- ``POST /v1/route``: the decision only, for gateways that call upstreams themselves.
- ``GET /v1/models``: the aliases and tier models, for clients that list models first.
- ``GET /healthz``, ``GET /metrics`` (Prometheus text).

Clients always get an OpenAI-style answer: a bad body is a 400 naming the field, an internal
routing error falls back to the policy's safe tier, an upstream that never answers is a 502/504.
Each chat or route request writes exactly one decision-log line once its outcome is final.
"""

from __future__ import annotations

import contextlib
import hmac
import json
import logging
import time
import uuid
from collections.abc import AsyncIterator, Mapping
from datetime import datetime, timezone
from typing import Any

import anyio
import httpx
import numpy as np
from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.requests import ClientDisconnect, Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route
from starlette.types import Receive, Scope, Send

from router_ml.errors import InvalidRequest
from router_ml.features import FEATURE_SCHEMA
from router_ml.gateway.config import GatewayConfig, TierTarget
from router_ml.gateway.decision_log import DecisionLog
from router_ml.gateway.escalation import Attempt, Outcome, call_with_escalation
from router_ml.gateway.prom import CONTENT_TYPE, GatewayMetrics
from router_ml.gateway.upstream import SseUsageScanner, UpstreamPool, usage_from_body
from router_ml.request import ChatRequest, load_json_body, parse_request
from router_ml.router import Decision, Router

logger = logging.getLogger("router_ml.gateway")

FAILURE_STATUS = {"timeout": 504, "connection": 502}
FAILURE_CODE = {"timeout": "upstream_timeout", "connection": "upstream_unreachable"}


def error_body(
    message: str,
    kind: str = "invalid_request_error",
    param: str | None = None,
    code: str | None = None,
) -> dict[str, Any]:
    """An OpenAI-style error object, which every OpenAI SDK turns into a typed exception."""
    return {"error": {"message": message, "type": kind, "param": param, "code": code}}


class _Rejected(Exception):
    """A request answered with an error before reaching an upstream."""

    def __init__(self, status: int, outcome: str, body: dict[str, Any]) -> None:
        super().__init__(body["error"]["message"])
        self.status, self.outcome, self.body = status, outcome, body


class _Record:
    """The decision-log line of one request, filled in as the request progresses."""

    def __init__(self, endpoint: str) -> None:
        self.start = time.perf_counter()
        self.id = f"rtr-{uuid.uuid4().hex}"
        self.data: dict[str, Any] = {
            "id": self.id,
            "time": datetime.now(timezone.utc).isoformat(timespec="milliseconds"),
            "endpoint": endpoint,
        }
        self.written = False


class Gateway:
    """The gateway's state and request handlers; ``app`` is the ASGI application.

    Parameters
    ----------
    config : GatewayConfig
        Tiers, upstreams, limits, auth and logging.
    router : Router or None
        The routing model; None loads ``config.model_dir`` with ``config.policy``.
    transport : httpx.AsyncBaseTransport or None
        Upstream transport override for tests; None uses real sockets.
    """

    def __init__(
        self,
        config: GatewayConfig,
        router: Router | None = None,
        transport: httpx.AsyncBaseTransport | None = None,
    ) -> None:
        self.config = config
        self.router = (
            router
            if router is not None
            else Router.load(config.model_dir, config.policy, config.operating_point)
        )
        self.metrics = GatewayMetrics()
        self.log = DecisionLog(
            config.decision_log.path, config.decision_log.max_bytes, config.decision_log.backups
        )
        self._log_features = config.decision_log.include_features
        self._transport = transport
        self._pool: UpstreamPool | None = None
        self.app = Starlette(
            routes=[
                Route("/v1/chat/completions", self.chat_completions, methods=["POST"]),
                Route("/v1/route", self.route, methods=["POST"]),
                Route("/v1/models", self.models, methods=["GET"]),
                Route("/healthz", self.healthz, methods=["GET"]),
                Route("/metrics", self.prometheus, methods=["GET"]),
            ],
            lifespan=self._lifespan,
            exception_handlers={HTTPException: _http_error},
        )

    @contextlib.asynccontextmanager
    async def _lifespan(self, _app: Starlette) -> AsyncIterator[None]:
        self._pool = UpstreamPool(self.config.upstreams, self.config.limits, self._transport)
        try:
            yield
        finally:
            await self._pool.aclose()
            self.log.close()

    # -- endpoints ---------------------------------------------------------------------------

    async def healthz(self, _request: Request) -> Response:
        return JSONResponse(
            {
                "status": "ok",
                "tiers": {t: x.model for t, x in self.config.tiers.items()},
                "operating_point": self.router.operating_point.name,
            }
        )

    async def models(self, request: Request) -> Response:
        """The routing aliases and tier models, for clients that list models before calling."""
        try:
            self._authorize(request)
        except _Rejected as exc:
            return JSONResponse(exc.body, status_code=exc.status)
        names = sorted(self.config.aliases) + [t.model for t in self.config.tiers.values()]
        return JSONResponse(
            {
                "object": "list",
                "data": [
                    {"id": name, "object": "model", "created": 0, "owned_by": "router-ml"}
                    for name in dict.fromkeys(names)
                ],
            }
        )

    async def prometheus(self, _request: Request) -> Response:
        return Response(self.metrics.render(), media_type=CONTENT_TYPE)

    async def route(self, request: Request) -> Response:
        """Decide only: answer the decision JSON for the chat request in the body."""
        record = _Record("route")
        try:
            self._authorize(request)
            payload = self._json_object(await self._read_body(request))
            parsed = self._parse(payload)
            decision = self._decide(parsed, record)
            self._note_request(record, payload, parsed, decision)
            self.finish(record, 200, "ok")
            return JSONResponse(
                {"request_id": record.id, **decision.to_dict()},
                headers=self._decision_headers(
                    record, decision.tier, decision.model, decision.source, escalated=False
                ),
            )
        except _Rejected as exc:
            return self._reject(record, exc)

    async def chat_completions(self, request: Request) -> Response:
        """Route (or pass through) a chat completion and relay the upstream's answer."""
        record = _Record("chat.completions")
        try:
            self._authorize(request)
            raw = await self._read_body(request)
            payload = self._json_object(raw)
            model = payload.get("model")
            if not isinstance(model, str) or not model:
                raise _Rejected(
                    400,
                    "invalid_request",
                    error_body(
                        f"model: expected a model name or one of the routing aliases "
                        f"{sorted(self.config.aliases)}",
                        param="model",
                        code="invalid_value",
                    ),
                )
            stream = payload.get("stream") is True
            record.data.update(requested_model=model, stream=stream)
            if model in self.config.aliases:
                parsed = self._parse(payload)
                decision = self._decide(parsed, record)
                self._note_request(record, payload, parsed, decision)
                first, forward, source = self.config.tiers[decision.tier], payload, decision.source
                escalation = self.config.escalation
            else:
                first = self._passthrough_target(model)
                forward, source, escalation = None, "passthrough", None
                self._note_request(record, payload, None)
        except _Rejected as exc:
            return self._reject(record, exc)

        deadline = time.monotonic() + self.config.limits.total_timeout_s
        assert self._pool is not None, "the app's lifespan has not started"
        try:
            outcome = await call_with_escalation(
                self._pool,
                first,
                self.config.tiers,
                forward,
                raw,
                stream,
                escalation,
                self.config.limits,
                deadline,
                {"x-router-request-id": record.id},
                self._count_attempt,
            )
        except Exception:  # a bug of ours still gets an OpenAI-style answer and its log line
            logger.exception("proxying request %s failed", record.id)
            self.metrics.errors.inc("internal")
            return self._answer(
                record,
                500,
                "internal_error",
                error_body("internal gateway error", kind="server_error", code="internal_error"),
                {"x-router-request-id": record.id},
            )
        except BaseException:  # cancelled (server shutdown): the line still gets written
            self.finish(record, 499, "aborted")
            raise
        record.data.update(
            attempts=[a.to_dict() for a in outcome.attempts],
            escalated=outcome.escalated,
            escalation_reason=outcome.escalation_reason,
        )
        headers = self._decision_headers(
            record, outcome.target.tier, outcome.target.model, source, outcome.escalated
        )
        reply = outcome.reply
        if reply is None:
            failure = outcome.failure or "connection"
            self.metrics.errors.inc(f"upstream_{failure}")
            return self._answer(
                record,
                FAILURE_STATUS[failure],
                f"upstream_{failure}",
                error_body(
                    f"upstream {outcome.target.upstream} ({outcome.target.model}) failed: "
                    f"{outcome.attempts[-1].detail}",
                    kind="upstream_error",
                    code=FAILURE_CODE[failure],
                ),
                headers,
                outcome,
            )
        raw_headers = _raw(headers) + reply.headers
        if reply.complete:
            await reply.aclose()
            record.data["usage"] = usage_from_body(reply.body)
            if reply.status >= 400:
                self.metrics.errors.inc(f"upstream_{outcome.failure}")
            self.finish(
                record, reply.status, "ok" if reply.status < 400 else "upstream_error", outcome
            )
            response = Response(reply.body, status_code=reply.status)
            response.raw_headers.extend(raw_headers)
            return response
        return _RelayedStream(self, record, outcome, raw_headers, deadline)

    # -- steps ---------------------------------------------------------------------------------

    def _authorize(self, request: Request) -> None:
        tokens = self.config.client_tokens
        if not tokens:
            return
        header = request.headers.get("authorization", "")
        scheme, _, token = header.partition(" ")
        token = token.strip().encode()
        if scheme.lower() != "bearer" or not any(
            hmac.compare_digest(token, t.encode()) for t in tokens
        ):
            raise _Rejected(
                401,
                "unauthorized",
                error_body(
                    "missing or invalid bearer token in the Authorization header",
                    code="invalid_api_key",
                ),
            )

    async def _read_body(self, request: Request) -> bytes:
        limit = self.config.limits.max_body_bytes
        too_large = _Rejected(
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
            async for chunk in request.stream():
                size += len(chunk)
                if size > limit:
                    raise too_large
                chunks.append(chunk)
        except ClientDisconnect as exc:
            raise _Rejected(
                499,
                "client_disconnected",
                error_body(
                    "client disconnected while sending the body", code="client_disconnected"
                ),
            ) from exc
        return b"".join(chunks)

    def _json_object(self, raw: bytes) -> dict[str, Any]:
        try:
            payload = load_json_body(raw)
        except InvalidRequest as exc:
            raise _invalid(exc) from exc
        if not isinstance(payload, dict):
            raise _invalid(
                InvalidRequest("body", f"expected a JSON object, got {type(payload).__name__}")
            )
        return payload

    def _parse(self, payload: Mapping[str, Any]) -> ChatRequest:
        try:
            return parse_request(dict(payload))
        except InvalidRequest as exc:
            raise _invalid(exc) from exc

    def _decide(self, parsed: ChatRequest, record: _Record) -> Decision:
        """The router's decision; any internal error falls back to the safe tier, logged."""
        try:
            decision = self.router.route(parsed)
        except Exception as exc:  # a routing bug must not fail the client's request
            logger.exception("routing failed for request %s; using the safe tier", record.id)
            self.metrics.errors.inc("routing")
            safe = self.config.safe_tier
            decision = Decision(
                safe,
                self.config.tiers[safe].model,
                "fallback",
                reason=f"routing error ({type(exc).__name__}: {exc}); safe tier {safe}",
            )
        self.metrics.decisions.inc(decision.tier, decision.source)
        self.metrics.route_latency.observe(decision.latency_us / 1e6)
        record.data["decision"] = decision.to_dict()
        return decision

    def _note_request(
        self,
        record: _Record,
        payload: Mapping[str, Any],
        parsed: ChatRequest | None,
        decision: Decision | None = None,
    ) -> None:
        """Add the features (and, if opted in, the request body) to the log line.

        The model's own feature vector is reused when it decided; others are extracted here.
        """
        if self._log_features and parsed is not None:
            try:
                features = (
                    decision.features
                    if decision is not None and decision.features is not None
                    else self.router.features(parsed)
                )
                record.data["feature_schema"] = FEATURE_SCHEMA.hash
                record.data["features"] = np.round(features.astype(np.float64), 6).tolist()
            except Exception:  # features are for analysis; never fail the request over them
                logger.exception("feature extraction failed for request %s", record.id)
                self.metrics.errors.inc("features")
        if self.config.decision_log.include_prompts:
            record.data["request"] = payload

    def _passthrough_target(self, model: str) -> TierTarget:
        target = self.config.target_for_model(model)
        if target is not None:
            return target
        upstream = self.config.passthrough_upstream
        if upstream is None:
            raise _Rejected(
                404,
                "model_not_found",
                error_body(
                    f"model {model!r} is neither a routing alias {sorted(self.config.aliases)} "
                    "nor a configured tier model, and no passthrough upstream is configured",
                    param="model",
                    code="model_not_found",
                ),
            )
        return TierTarget("none", model, upstream)

    def _count_attempt(self, attempt: Attempt, next_tier: str | None) -> None:
        self.metrics.upstream_latency.observe(
            attempt.latency_ms / 1e3, attempt.tier, attempt.failure or "ok"
        )
        if next_tier is not None:
            self.metrics.escalations.inc(attempt.tier, next_tier, attempt.failure or "")

    def _decision_headers(
        self, record: _Record, tier: str, model: str, source: str, escalated: bool
    ) -> dict[str, str]:
        return {
            "x-router-request-id": record.id,
            "x-router-tier": tier,
            "x-router-model": model,
            "x-router-source": source,
            "x-router-escalated": "true" if escalated else "false",
        }

    def _reject(self, record: _Record, exc: _Rejected) -> Response:
        return self._answer(
            record, exc.status, exc.outcome, exc.body, {"x-router-request-id": record.id}
        )

    def _answer(
        self,
        record: _Record,
        status: int,
        outcome: str,
        body: dict[str, Any],
        headers: dict[str, str],
        upstream: Outcome | None = None,
    ) -> Response:
        record.data["error"] = body["error"]["message"]
        self.finish(record, status, outcome, upstream)
        return JSONResponse(body, status_code=status, headers=headers)

    def finish(
        self, record: _Record, status: int, outcome: str, upstream: Outcome | None = None
    ) -> None:
        """Write the request's one decision-log line and count it; later calls do nothing."""
        if record.written:
            return
        record.written = True
        data = record.data
        if upstream is not None:
            data.update(
                tier=upstream.target.tier,
                model=upstream.target.model,
                upstream=upstream.target.upstream,
                upstream_status=upstream.attempts[-1].status if upstream.attempts else None,
            )
        data.update(
            status=status,
            outcome=outcome,
            duration_ms=round((time.perf_counter() - record.start) * 1e3, 3),
        )
        self.metrics.requests.inc(data["endpoint"], str(status))
        try:
            self.log.write(data)
        except OSError:
            logger.exception("cannot write the decision log")
            self.metrics.errors.inc("decision_log")


class _RelayedStream:
    """Relays a started upstream stream to the client, then writes the request's log line.

    Built as a raw ASGI response so the log line is written exactly once whatever happens: the
    stream ends, the upstream breaks or stalls (the client gets an SSE error event, since
    retrying is no longer possible), the total deadline passes, or the client goes away.
    """

    def __init__(
        self,
        gateway: Gateway,
        record: _Record,
        outcome: Outcome,
        headers: list[tuple[bytes, bytes]],
        deadline: float,
    ) -> None:
        self.gateway, self.record, self.outcome = gateway, record, outcome
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
                    with anyio.fail_after(max(self.deadline - time.monotonic(), 0.0)):
                        async for chunk in reply.rest():
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
            self.gateway.metrics.errors.inc(result)
        self.record.data["usage"] = usage.usage
        if detail:
            self.record.data["error"] = detail
        self.gateway.finish(self.record, status, result, self.outcome)


async def _http_error(_request: Request, exc: Exception) -> Response:
    """Unknown paths and wrong methods answer in OpenAI's error shape too."""
    assert isinstance(exc, HTTPException)
    code = {404: "unknown_url", 405: "method_not_allowed"}.get(exc.status_code)
    return JSONResponse(
        error_body(str(exc.detail), code=code), status_code=exc.status_code, headers=exc.headers
    )


def _raw(headers: Mapping[str, str]) -> list[tuple[bytes, bytes]]:
    return [(k.encode("latin-1"), v.encode("latin-1")) for k, v in headers.items()]


def _invalid(exc: InvalidRequest) -> _Rejected:
    code = "invalid_json" if exc.field == "body" else "invalid_value"
    return _Rejected(400, "invalid_request", error_body(str(exc), param=exc.field, code=code))


def create_app(
    config: GatewayConfig,
    router: Router | None = None,
    transport: httpx.AsyncBaseTransport | None = None,
) -> Starlette:
    """The ASGI app for ``config`` (for ``uvicorn``: ``create_app(GatewayConfig.load(path))``)."""
    return Gateway(config, router, transport).app
