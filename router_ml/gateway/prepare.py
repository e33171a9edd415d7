"""Decoding, checking and routing a request body: a request's CPU work, wherever it runs.

Between reading a request and sending it upstream, everything the gateway does — JSON
decoding, the model name check, the client's override, the repeat check, routing, the features,
the forwarded body's splice plan — is a function of the body, three headers, the config and the
router. A :class:`Preparer` does it into a picklable :class:`Preparation`, which collects what
the request's log line and the metrics are to get instead of writing them. That is what lets
``workers`` run it inline, in a thread, or in a worker process with its own router: a heavy
body's decoding holds the GIL wherever it runs in the gateway's own process. The gateway
applies the preparation (:meth:`Preparation.apply`) once it has it back.

Routing mode (an extension point): :meth:`Preparer.serving_target` is the one place where a
routing decision becomes the target a request is sent to. In shadow ``observe`` mode
(``shadow.py``) the router decides and logs as usual (``decision``, plus ``shadow``), and the
request goes where it would have gone without the router: ``shadow.serve_tier`` for an alias,
the named model otherwise.
"""

from __future__ import annotations

import json
import logging
import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from router_ml.errors import InvalidRequest
from router_ml.features import FEATURE_SCHEMA
from router_ml.gateway import shadow
from router_ml.gateway.answers import Rejected, bounded, error_body, invalid
from router_ml.gateway.body import DecodedBody, ForwardedBody, decode_object, splice
from router_ml.gateway.config import Escalation, GatewayConfig, TierTarget
from router_ml.gateway.intake import Intake
from router_ml.gateway.overrides import (
    NO_OVERRIDE,
    POINT_HEADER,
    ROUTER_FIELDS,
    TIER_HEADER,
    Override,
    read_override,
    strip_router_fields,
)
from router_ml.gateway.prom import GatewayMetrics
from router_ml.gateway.repeats import RepeatCache, digest
from router_ml.request import ChatRequest, parse_request
from router_ml.router import FALLBACK_SOURCE, Decision, Router

logger = logging.getLogger("router_ml.gateway")

CHAT = "chat"
ROUTE = "route"
"""``Ask.endpoint`` of chat completions and of ``/v1/route``; others are passthrough paths."""
ASK_HEADERS = (TIER_HEADER, POINT_HEADER, "authorization")
"""The request headers preparation reads: the override headers, the client (repeat digest)."""
OVERRIDE_SOURCE = "override"
"""``Decision.source`` of a request whose tier the client pinned (header or metadata)."""
PASSTHROUGH_SOURCE = "passthrough"
MAX_MODEL_NAME_CHARS = 256


@dataclass(frozen=True)
class Ask:
    """What a handler asks of the preparer besides the body."""

    endpoint: str
    """``CHAT``, ``ROUTE`` or a passthrough endpoint's path (``/embeddings``)."""
    request_id: str
    headers: Mapping[str, str]
    """The ``ASK_HEADERS`` the request has, lower-case names."""
    keep_payload: bool = False
    """Return the decoded body (the gateway's answer gates, replays or logged prompts use it)."""
    payload_fields: frozenset[str] | None = None
    """With ``keep_payload``: only these top-level fields of it (None: all). A worker process
    can prepare a body whose caller needs a few fields, not one that needs all of it."""
    repeated: bool | None = None
    """Whether the request repeats one just seen; None: the preparer asks the repeat cache, or
    (in a worker process, which has none) reports the digest for the gateway to ask."""


@dataclass(frozen=True)
class Refusal:
    """A ``Rejected`` in picklable form (an exception's pickle keeps only its message)."""

    status: int
    outcome: str
    body: dict[str, Any]
    headers: dict[str, str]

    def rejected(self) -> Rejected:
        return Rejected(self.status, self.outcome, self.body, self.headers)


@dataclass
class Preparation:
    """A prepared request: where it goes and what is sent, or its refusal; and what its log line
    and the metrics get (applied by the gateway, in its own process)."""

    data: dict[str, Any] = field(default_factory=dict)
    """Fields for the request's log line."""
    events: list[tuple[str, str, tuple[str, ...], float]] = field(default_factory=list)
    """Metric updates: (``inc`` or ``observe``, ``GatewayMetrics`` attribute, labels, value)."""
    refusal: Refusal | None = None
    digest: bytes | None = None
    """The repeat digest the preparer could not look up itself (see ``Ask.repeated``)."""
    stream: bool = False
    routed: bool = False
    """A chat request that named a routing alias (its answers are gated)."""
    target: TierTarget | None = None
    source: str = ""
    escalation: Escalation | None = None
    decision: Decision | None = None
    forward: ForwardedBody | None = None
    """A routed body as sent upstream: the client's bytes with each tier's model spliced in."""
    reencode: dict[str, Any] | None = None
    """A routed body to encode instead, when its members could not be located (never for a
    body ``json.loads`` reads: see ``body``)."""
    payload: dict[str, Any] | None = None
    """The decoded body (or the ``Ask.payload_fields`` of it), when ``Ask.keep_payload``."""

    def count(self, metric: str, *labels: str) -> None:
        self.events.append(("inc", metric, labels, 1.0))

    def observe(self, metric: str, value: float, *labels: str) -> None:
        self.events.append(("observe", metric, labels, value))

    def apply(self, data: dict[str, Any], metrics: GatewayMetrics) -> None:
        """Add the log fields to ``data`` and count the metrics; then raise the refusal if any."""
        data.update(self.data)
        for kind, name, labels, value in self.events:
            metric = getattr(metrics, name)
            if kind == "inc":
                metric.inc(*labels, amount=value)
            else:
                metric.observe(value, *labels)
        if self.refusal is not None:
            raise self.refusal.rejected()


class Preparer:
    """Prepares request bodies for one gateway config and router (see the module doc).

    Parameters
    ----------
    config : GatewayConfig
    router : Router
    repeat_key : bytes or None
        The repeat cache's digest key (None: the cache is off, nothing repeats).
    repeats : RepeatCache or None
        The cache itself, in the gateway's process; a worker process has only the key.
    """

    def __init__(
        self,
        config: GatewayConfig,
        router: Router,
        repeat_key: bytes | None,
        repeats: RepeatCache | None = None,
    ) -> None:
        self.config, self.router = config, router
        self.repeat_key, self.repeats = repeat_key, repeats

    def prepare(self, raw: bytes, ask: Ask) -> Preparation:
        """Decode, check and route ``raw`` as ``ask.endpoint`` does; a refusal is returned."""
        prep = Preparation()
        try:
            if ask.endpoint == CHAT:
                self._chat(raw, ask, prep)
            elif ask.endpoint == ROUTE:
                payload = Intake.json_object(raw)
                prep.decision = self._route_client_request(ask, payload, prep)
            else:
                self._passthrough(raw, ask, prep)
        except Rejected as exc:
            prep.refusal = Refusal(exc.status, exc.outcome, exc.body, exc.headers)
        return prep

    def _chat(self, raw: bytes, ask: Ask, prep: Preparation) -> None:
        """An alias is routed (or served as observe mode says); a named model passes through."""
        config = self.config
        decoded = decode_object(raw)
        payload = decoded.payload
        model = check_model_name(payload.get("model"), config.aliases)
        prep.stream = payload.get("stream") is True
        prep.data.update(requested_model=model, stream=prep.stream)
        if ask.keep_payload:
            fields = ask.payload_fields
            prep.payload = (
                payload if fields is None else {k: v for k, v in payload.items() if k in fields}
            )
        if model not in config.aliases:
            prep.target = config.target_for_model(model) or passthrough_target(config, model)
            prep.source = PASSTHROUGH_SOURCE
            self._observe_passthrough(ask, payload, prep)
            return
        decision = self._route_client_request(ask, payload, prep)
        prep.routed, prep.decision, prep.source = True, decision, decision.source
        prep.target = self.serving_target(decision, prep)
        prep.escalation = self._escalation(decision)
        self._forward(raw, decoded, prep)

    def _passthrough(self, raw: bytes, ask: Ask, prep: Preparation) -> None:
        """Another endpoint's body, relayed byte for byte: its model is checked, nothing routed."""
        payload = Intake.json_object(raw)
        model = check_model_name(payload.get("model"), ())
        prep.stream = payload.get("stream") is True
        prep.data.update(requested_model=model, stream=prep.stream)
        if self.config.decision_log.include_prompts:
            prep.data["request"] = payload
        prep.target = passthrough_target(self.config, model)
        prep.source = PASSTHROUGH_SOURCE

    def _forward(self, raw: bytes, decoded: DecodedBody, prep: Preparation) -> None:
        """The routed body as forwarded: ``model`` per tier, the router's metadata keys removed
        (the rest of ``metadata`` re-encoded, usually a few bytes), all else as sent."""
        payload = decoded.payload
        values: dict[str, bytes | None] = {"model": None}
        drop: set[str] = set()
        metadata = payload.get("metadata")
        if isinstance(metadata, Mapping) and any(k in metadata for k in ROUTER_FIELDS):
            kept = strip_router_fields(payload).get("metadata")
            if kept is None:
                drop.add("metadata")
            else:
                values["metadata"] = json.dumps(kept, ensure_ascii=False).encode(
                    "utf-8", errors="surrogatepass"
                )
        if decoded.members is not None:
            prep.forward = splice(decoded.members, len(raw), values, drop)
        if prep.forward is None:
            prep.reencode = strip_router_fields(payload)

    def _escalation(self, decision: Decision) -> Escalation:
        """The configured chain, or a cascade decision's own list with a budget to walk it."""
        configured = self.config.escalation
        if not decision.cascade:
            return configured
        return Escalation(decision.cascade, len(decision.cascade) - 1, configured.retry_on)

    def serving_target(self, decision: Decision, prep: Preparation) -> TierTarget:
        """Where a routed request is sent: the decided tier's target, or in shadow ``observe``
        mode the configured ``serve_tier`` (the decision is only logged; see the module doc)."""
        config = self.config
        if config.shadow.observing:
            prep.data["shadow"] = shadow.observed(config, decision)
            return config.tiers[config.shadow.serve_tier]
        return config.tiers[decision.tier]

    def _observe_passthrough(self, ask: Ask, payload: Mapping[str, Any], prep: Preparation) -> None:
        """A named model is served as asked; observing, the router still decides and logs."""
        if not self.config.shadow.observing:
            self._note_request(ask, payload, None, prep)
            return
        try:
            parsed = self._parse(payload, prep)
            decision = self._decide(parsed, prep)
        except Rejected as exc:  # the client asked for a model, not for routing: still served
            prep.data["shadow"] = shadow.unroutable(self.config, exc.body["error"]["message"])
            self._note_request(ask, payload, None, prep)
            return
        prep.data["shadow"] = shadow.observed(self.config, decision)
        self._note_request(ask, payload, parsed, prep, decision)

    def _parse(self, payload: Mapping[str, Any], prep: Preparation) -> ChatRequest:
        """The validated request; any failure of the parser is caused by the body: a 400."""
        try:
            return parse_request(dict(payload))
        except InvalidRequest as exc:
            raise invalid(exc) from exc
        except Exception as exc:  # a parser gap: still the client's input, never a 500
            logger.error("request parser failed on a body (%s: %s)", type(exc).__name__, exc)
            prep.count("errors", "parse")
            problem = f"cannot be parsed ({type(exc).__name__}: {exc})"[:300]
            raise invalid(InvalidRequest("body", problem)) from exc

    def _override(self, ask: Ask, payload: Mapping[str, Any]) -> Override:
        """The tier or operating point the client pins for this request (validated)."""
        allowed = self.config.overrides
        if not allowed.enabled:
            return NO_OVERRIDE
        try:
            override = read_override(ask.headers, payload, allowed.header, allowed.metadata)
            if override.operating_point is not None:
                self.router.thresholds_for(override.operating_point)
        except InvalidRequest as exc:
            raise invalid(exc) from exc
        except ValueError as exc:  # an operating point the model does not have
            where = "x-router-operating-point" if "header" in override.source else "metadata"
            raise invalid(InvalidRequest(where, str(exc)[:300])) from exc
        return override

    def _repeated(self, ask: Ask, payload: Mapping[str, Any], prep: Preparation) -> bool:
        """Whether this client sent this conversation moments ago (the policy's ``retry``)."""
        if ask.repeated is not None:
            return ask.repeated
        if self.repeat_key is None:
            return False
        key = digest(self.repeat_key, payload, ask.headers.get("authorization", ""))
        if self.repeats is not None:
            return self.repeats.seen(key)
        prep.digest = key  # the gateway looks it up, and asks again if it repeats
        return False

    def _decide(
        self,
        parsed: ChatRequest,
        prep: Preparation,
        override: Override = NO_OVERRIDE,
        repeated: bool = False,
    ) -> Decision:
        if override:
            prep.data["override"] = override.to_dict()
        if repeated:
            prep.data["repeated"] = True
        if override.tier is not None:
            target = self.config.tiers[override.tier]
            decision = Decision(
                override.tier,
                target.model,
                OVERRIDE_SOURCE,
                reason=f"tier {override.tier} pinned by the client ({override.source})",
            )
            prep.count("decisions", decision.tier, decision.source)
            prep.data["decision"] = decision.to_dict()
            return decision
        try:
            decision = self.router.route_or_safe(parsed, override.operating_point, repeated)
        except InvalidRequest as exc:
            prep.count("errors", "routing_refused")
            raise invalid(exc) from exc
        if decision.source == FALLBACK_SOURCE:
            prep.count("errors", "routing")
        prep.count("decisions", decision.tier, decision.source)
        prep.observe("route_latency", decision.latency_us / 1e6)
        prep.data["decision"] = decision.to_dict()
        return decision

    def _route_client_request(
        self, ask: Ask, payload: Mapping[str, Any], prep: Preparation
    ) -> Decision:
        """Parse, decide (with the client's override and the repeat cache) and log the features:
        what the chat and decision-only endpoints do alike for a routed request."""
        parsed = self._parse(payload, prep)
        override = self._override(ask, payload)
        decision = self._decide(parsed, prep, override, self._repeated(ask, payload, prep))
        self._note_request(ask, payload, parsed, prep, decision)
        return decision

    def _note_request(
        self,
        ask: Ask,
        payload: Mapping[str, Any],
        parsed: ChatRequest | None,
        prep: Preparation,
        decision: Decision | None = None,
    ) -> None:
        """Add the features (and, if opted in, the request body) to the log line.

        The model's own feature vector is reused when it decided; others are extracted here.
        """
        config = self.config.decision_log
        if config.include_features and parsed is not None:
            try:
                features = (
                    decision.features
                    if decision is not None and decision.features is not None
                    else self.router.features(parsed)
                )
                prep.data["feature_schema"] = FEATURE_SCHEMA.hash
                prep.data["features"] = np.round(features.astype(np.float64), 6).tolist()
            except Exception:  # features are for analysis; never fail the request over them
                logger.exception("feature extraction failed for request %s", ask.request_id)
                prep.count("errors", "features")
        if config.include_prompts:
            prep.data["request"] = payload


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


_worker: Preparer | None = None
"""A worker process's preparer (``start_worker``)."""


def start_worker(config: GatewayConfig, repeat_key: bytes | None) -> None:
    """A worker process's initializer: its own router, loaded as the gateway loaded its own.

    The worker first lowers its CPU priority by ``limits.process_worker_nice``: a heavy body is
    seconds of CPU a client chose to send, and where cores are short it should wait for the
    normal requests' event loop, not the other way round.
    """
    global _worker
    if config.limits.process_worker_nice and hasattr(os, "nice"):
        os.nice(config.limits.process_worker_nice)
    logging.basicConfig(
        level=logging.WARNING, format="%(asctime)s worker %(process)d %(name)s: %(message)s"
    )
    router = Router.load(
        config.model_dir, config.policy, config.operating_point, coverage=config.coverage
    )
    _worker = Preparer(config, router, repeat_key)


def prepare_in_worker(raw: bytes, ask: Ask) -> Preparation:
    """``Preparer.prepare`` in a worker process (``start_worker`` ran)."""
    assert _worker is not None, "start_worker has not run in this process"
    return _worker.prepare(raw, ask)
