"""The ASGI gateway: decision service, OpenAI-compatible routing proxy, health and metrics.

Routes:

- ``POST /v1/chat/completions``: ``model`` set to an alias (``auto``) is routed to a tier and sent
  to that tier's upstream with the tier's model name; any other model passes through untouched to
  the upstream serving it. Streams are relayed chunk by chunk, other bodies byte for byte.
- ``POST /v1/route``: the decision only, for gateways that call upstreams themselves.
- ``GET /v1/models``: the aliases and tier models, for clients that list models first.
- ``GET /healthz``, ``GET /metrics`` (Prometheus text).

How the pieces fit (one job each):

- ``Gateway`` (here) owns the state — config, router, metrics, decision recorder, upstream pool —
  and wraps every handler in a :class:`GuardedEndpoint`.
- ``GuardedEndpoint`` is the one outer guard per request: whatever a handler does (answers,
  raises ``Rejected``, has a bug, is cancelled), the client gets an OpenAI-shaped answer and the
  request's record gets exactly one decision-log line with the true outcome, written once the
  answer's status and headers have been handed to the server.
- ``handlers`` — one class per endpoint; ``intake`` — auth, body limit, JSON; ``prepare`` — a
  body's decoding, checks and routing, which ``workers`` runs inline, in a thread or in a worker
  process by its size (``Gateway.prepare``); ``body`` — the forwarded body, the client's bytes
  with the tier's model spliced in; ``record`` — the
  log line's lifecycle; ``escalation`` — the typed ``EscalationPlan`` and the retry loop;
  ``relay`` — streams.

Answer gates: the configured gates (``config.gates``, checks in ``gates``) run on every routed
answer through one ``gating.RequestGate`` per request, the escalation loop's answer hook.

Extension points (documented where they live): one more answer check — ``Gateway.check_answer``
(``escalation.AnswerCheck``, run after the configured gates pass, may reject and escalate);
spend — ``Gateway.recorder.enrichers`` (``spend.SpendMeter`` adds each request's cost and
counts it); routing mode / shadow — ``prepare.Preparer.serving_target`` and
``shadow.Shadow`` (observe mode, background replays one tier down).
"""

from __future__ import annotations

import contextlib
import dataclasses
import logging
from collections.abc import AsyncIterator, Awaitable, Callable

import httpx
from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route
from starlette.types import Message, Receive, Scope, Send

from router_ml.gateway import handlers
from router_ml.gateway.answers import Rejected, error_response, http_error, internal_error
from router_ml.gateway.config import GatewayConfig
from router_ml.gateway.decision_log import DecisionLog
from router_ml.gateway.escalation import AnswerCheck
from router_ml.gateway.intake import Intake
from router_ml.gateway.prepare import ASK_HEADERS, Ask, Preparation, Preparer
from router_ml.gateway.prom import GatewayMetrics
from router_ml.gateway.record import DecisionRecorder, RequestRecord
from router_ml.gateway.repeats import RepeatCache
from router_ml.gateway.shadow import Shadow
from router_ml.gateway.spend import OOD_CUTOFF, RollingMix, SpendMeter
from router_ml.gateway.upstream import UpstreamPool
from router_ml.gateway.workers import Workers
from router_ml.router import Router

logger = logging.getLogger("router_ml.gateway")

Handler = Callable[[Request, RequestRecord], Awaitable[handlers.Answer]]


class GuardedEndpoint:
    """The outer guard of one endpoint: an OpenAI-shaped answer and one log line, always.

    Parameters
    ----------
    handler : Handler
        ``async (request, record) -> Response`` (or a stream relay); raises ``Rejected`` to refuse.
    recorder : DecisionRecorder
        Opens the request's record.
    metrics : GatewayMetrics
        Counts the handler bugs caught here (``errors{kind="internal"}``).
    logged : bool
        Whether the endpoint writes decision-log lines (health and metrics do not).
    """

    def __init__(
        self,
        name: str,
        handler: Handler,
        recorder: DecisionRecorder,
        metrics: GatewayMetrics,
        logged: bool = True,
    ) -> None:
        self.name, self.handler, self.recorder = name, handler, recorder
        self.metrics, self.logged = metrics, logged

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        record = self.recorder.open(self.name)
        try:
            response = await self.handler(Request(scope, receive), record)
        except Rejected as exc:
            response = self._refusal(record, exc)
        except Exception:  # a bug of ours still gets an OpenAI-style answer and its log line
            logger.exception("request %s (%s) failed", record.id, self.name)
            self.metrics.errors.inc("internal")
            response = self._refusal(record, internal_error())
        except BaseException:  # cancelled (server shutdown): the line still gets written
            self._finish(record, 499, "aborted")
            raise
        await self._send(response, record, scope, receive, send)

    def _refusal(self, record: RequestRecord, exc: Rejected) -> Response:
        record.settle(exc.status, exc.outcome, exc.body["error"]["message"])
        return error_response(exc, record.id)

    async def _send(
        self,
        response: handlers.Answer,
        record: RequestRecord,
        scope: Scope,
        receive: Receive,
        send: Send,
    ) -> None:
        """Send ``response``; finish the record before its last frame (status and headers were
        accepted by then, and a client that saw the end finds its line written)."""

        async def send_then_record(message: Message) -> None:
            last = message["type"] == "http.response.body" and not message.get("more_body")
            if last and record.settled is not None:
                self._finish(record)
            await send(message)

        try:
            await response(scope, receive, send_then_record)
        except Exception as exc:
            logger.warning("sending the answer to request %s failed: %r", record.id, exc)
            self._finish(record, 499, "client_disconnected")
            if not isinstance(exc, OSError):
                raise
        except BaseException:
            self._finish(record, 499, "aborted")
            raise
        finally:
            if record.settled is not None:
                self._finish(record)

    def _finish(self, record: RequestRecord, status: int | None = None, outcome: str = "") -> None:
        if self.logged:
            record.finish(status, outcome or None)


class Gateway:
    """The gateway's state and endpoints; ``app`` is the ASGI application.

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
            else Router.load(
                config.model_dir, config.policy, config.operating_point, coverage=config.coverage
            )
        )
        self.metrics = GatewayMetrics()
        self.log = DecisionLog(
            config.decision_log.path, config.decision_log.max_bytes, config.decision_log.backups
        )
        self.recorder = DecisionRecorder(self.log, self.metrics)
        cutoff = self.router.ood_threshold
        self.rolling = RollingMix(ood_cutoff=cutoff if isinstance(cutoff, float) else OOD_CUTOFF)
        self.spend = SpendMeter(
            config.pricing,
            {tier: target.model for tier, target in config.tiers.items()},
            self.metrics,
            self.rolling,
        )
        self.recorder.enrichers.append(self.spend)
        self.shadow = Shadow(self)
        self.intake = Intake(
            config.client_tokens, config.limits.max_body_bytes, config.limits.client_body_timeout_s
        )
        self.check_answer: AnswerCheck | None = None
        """An extra answer check run on every routed answer after the configured gates
        (``config.gates``) passed it (None: only the configured gates)."""
        self.repeats = (
            RepeatCache(config.recovery.repeat_window_s, config.recovery.cache_size)
            if config.recovery.repeat_window_s > 0
            else None
        )
        """The request-hash cache behind the policy's ``retry`` key (None: off)."""
        self.preparer = Preparer(
            config, self.router, None if self.repeats is None else self.repeats.key, self.repeats
        )
        self.workers = Workers(config, self.preparer, self.metrics, processes=router is None)
        """Where request bodies are prepared; worker processes only for a router loaded from
        the config, which they can load too."""
        self._transport = transport
        self._pool: UpstreamPool | None = None

        def endpoint(name: str, handler: Handler, logged: bool = True) -> GuardedEndpoint:
            return GuardedEndpoint(name, handler, self.recorder, self.metrics, logged)

        self.app = Starlette(
            routes=[
                Route(
                    "/v1/chat/completions",
                    endpoint("chat.completions", handlers.ChatCompletions(self)),
                    methods=["POST"],
                ),
                Route(
                    "/v1/route", endpoint("route", handlers.RouteDecision(self)), methods=["POST"]
                ),
                *(
                    Route(
                        f"/v1/{name}",
                        endpoint(name, handlers.PassthroughEndpoint(self, name)),
                        methods=["POST"],
                    )
                    for name in config.passthrough_endpoints
                ),
                Route(
                    "/v1/models",
                    endpoint("models", handlers.ListModels(self), logged=False),
                    methods=["GET"],
                ),
                Route(
                    "/healthz", endpoint("healthz", handlers.Health(self), False), methods=["GET"]
                ),
                Route(
                    "/metrics", endpoint("metrics", handlers.Metrics(self), False), methods=["GET"]
                ),
            ],
            lifespan=self._lifespan,
            exception_handlers={HTTPException: http_error},
        )

    @property
    def pool(self) -> UpstreamPool:
        assert self._pool is not None, "the app's lifespan has not started"
        return self._pool

    def kept_payload(self) -> tuple[bool, frozenset[str] | None]:
        """Whether a decoded body is used after its preparation, and which of its top-level
        fields (None: all of it). Answer gates read a few (``AnswerGates.request_fields``), so a
        large body can still be prepared in a worker process; shadow replays, logged prompts, a
        user gate and an answer check read all of it, which keeps it in this process."""
        config = self.config
        whole = (
            self.check_answer is not None
            or config.shadow.replay_fraction > 0
            or config.decision_log.include_prompts
        )
        if whole:
            return True, None
        if config.gates.names:
            return True, config.gates.request_fields
        return False, None

    async def prepare(
        self, request: Request, raw: bytes, record: RequestRecord, endpoint: str
    ) -> Preparation:
        """Decode, check and route ``raw`` for ``endpoint`` (``prepare.CHAT``, ``ROUTE`` or a
        passthrough path) where its size says (``workers``); its log fields and metrics are
        applied here, and a refusal is raised (``Rejected``).

        A worker process cannot ask the repeat cache: it returns the digest, and a body that
        repeats one just seen is prepared again as a repeat (rare: a heavy body sent twice).
        """
        headers = {name: request.headers[name] for name in ASK_HEADERS if name in request.headers}
        keep, fields = self.kept_payload()
        ask = Ask(endpoint, record.id, headers, keep_payload=keep, payload_fields=fields)
        prepared = await self.workers.run(raw, ask)
        repeats = self.repeats
        if prepared.digest is not None and repeats is not None and repeats.seen(prepared.digest):
            prepared = await self.workers.run(raw, dataclasses.replace(ask, repeated=True))
        prepared.apply(record.data, self.metrics)
        return prepared

    @contextlib.asynccontextmanager
    async def _lifespan(self, _app: Starlette) -> AsyncIterator[None]:
        self._pool = UpstreamPool(self.config.upstreams, self.config.limits, self._transport)
        self.workers.start()
        try:
            yield
        finally:
            await self.shadow.aclose()
            await self.workers.aclose()
            await self._pool.aclose()
            self.log.close()


def create_app(
    config: GatewayConfig,
    router: Router | None = None,
    transport: httpx.AsyncBaseTransport | None = None,
) -> Starlette:
    """The ASGI app for ``config`` (for ``uvicorn``: ``create_app(GatewayConfig.load(path))``)."""
    return Gateway(config, router, transport).app
