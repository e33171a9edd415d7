"""Escalation: retry a request on a more capable tier while nothing has reached the client.

A cheap tier that is down, rate-limited or stalled should cost the client latency, not an error:
5xx, 429, timeouts and dropped connections before the first byte are retried on the next tier of
the chain, within the retry budget and the request's total deadline. A 4xx is the client's own
mistake and would fail the same way everywhere, so it is returned as is. Every attempt is
recorded with its failure reason for the decision log and the metrics.

The two objects a caller builds:

- :class:`EscalationPlan` — where the request goes first, which tiers it may step up to (the
  next-tier rule of ``router_ml.tiers`` along the configured chain), the retry budget and the
  deadline. ``plan.next_target(attempt)`` is the one place that decides "try again, and where".
- :class:`UpstreamCall` — what is sent: the client's bytes with each tier's ``model`` spliced
  in (``body.ForwardedBody``), a parsed body to encode (a shadow replay), or the raw bytes of a
  passthrough, streaming or not, extra headers.

Extension point — answer gates (issue 9): ``call_with_escalation(..., check_answer=gate)`` calls
``await gate(attempt, reply)`` after an upstream answer has started and before anything is sent
to the client. Returning ``GateVerdict(name, passed=False, detail)`` rejects the answer: the
attempt is recorded with ``failure="gate"`` and ``gate={name, passed, detail}`` and the plan is
asked for the next tier (the retry budget and the deadline still apply; ``retry_on`` does not,
since a rejected answer is not an upstream failure). When no tier is left, the rejected answer
is the one relayed, and its attempt still shows the failed gate. A gate sees a complete body for
non-streaming answers and only the first chunk of a stream (``reply.complete`` is False); a gate
that needs a whole stream must read it (``reply.rest()``) and give up streaming latency. Returning
None (or a passing verdict, which is recorded) accepts the answer.
"""

from __future__ import annotations

import json
import time
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from router_ml.gateway.body import ForwardedBody
from router_ml.gateway.config import Escalation, TierTarget
from router_ml.gateway.gates import GateVerdict
from router_ml.gateway.redact import redact
from router_ml.gateway.upstream import CHAT_PATH, UpstreamFailure, UpstreamPool, UpstreamReply

GATE_FAILURE = "gate"
"""The failure kind of an attempt whose answer an answer gate rejected."""


def status_failure(status: int) -> str | None:
    """The failure kind of an HTTP status: ``http_429``, ``http_5xx``, ``http_4xx`` or None."""
    if status == 429:
        return "http_429"
    if status >= 500:
        return "http_5xx"
    if status >= 400:
        return "http_4xx"
    return None


@dataclass
class Attempt:
    """One upstream call: where it went and how it ended (``failure`` None = answer accepted)."""

    tier: str
    model: str
    upstream: str
    status: int | None = None
    failure: str | None = None
    detail: str = ""
    latency_ms: float = 0.0
    gate: GateVerdict | None = None
    gate_ms: float | None = None
    """Time the answer gates took on this attempt (None: no gate ran)."""

    def to_dict(self) -> dict[str, Any]:
        data = {
            "tier": self.tier,
            "model": self.model,
            "upstream": self.upstream,
            "status": self.status,
            "failure": self.failure,
            "gate": None if self.gate is None else self.gate.to_dict(),
            "detail": self.detail,
            "latency_ms": round(self.latency_ms, 3),
        }
        if self.gate_ms is not None:
            data["gate_ms"] = round(self.gate_ms, 3)
        return data


@dataclass
class Outcome:
    """The last attempt's reply (None when no upstream answered) and every attempt made."""

    target: TierTarget
    reply: UpstreamReply | None
    attempts: list[Attempt] = field(default_factory=list)

    @property
    def escalated(self) -> bool:
        return len(self.attempts) > 1

    @property
    def escalation_reason(self) -> str | None:
        """Why the first attempt was abandoned (None when it was not)."""
        return self.attempts[0].failure if self.escalated else None

    @property
    def failure(self) -> str | None:
        return self.attempts[-1].failure if self.attempts else None


@dataclass(frozen=True)
class EscalationPlan:
    """Where a request goes first and where it may go after a failed or rejected attempt.

    Parameters
    ----------
    first : TierTarget
        The first tier, model and upstream.
    tiers : mapping of tier to TierTarget
        Where each tier's requests go, for the steps up.
    escalation : Escalation or None
        The chain, retry budget and retryable failure kinds; None never leaves ``first`` (an
        explicit model name is the client's choice).
    deadline : float
        A ``time.monotonic()`` instant bounding all attempts together.
    first_byte_timeout_s : float
        The longest wait for one attempt's answer to start.
    """

    first: TierTarget
    tiers: Mapping[str, TierTarget]
    escalation: Escalation | None
    deadline: float
    first_byte_timeout_s: float

    def attempt_timeout(self) -> float:
        """Seconds the next attempt may wait for its answer to start (<= 0: none left)."""
        return min(self.first_byte_timeout_s, self.deadline - time.monotonic())

    def next_target(self, attempt: Attempt, attempts_made: int) -> TierTarget | None:
        """The target to retry on after ``attempt`` (the ``attempts_made``-th), or None."""
        if attempt.failure is None or self.escalation is None:
            return None
        if attempt.failure != GATE_FAILURE and attempt.failure not in self.escalation.retry_on:
            return None
        if attempts_made > self.escalation.max_retries or time.monotonic() >= self.deadline:
            return None
        tier = self.escalation.next_tier(attempt.tier)
        return None if tier is None else self.tiers[tier]


@dataclass(frozen=True)
class UpstreamCall:
    """What is sent to each attempted upstream."""

    payload: Mapping[str, Any] | None
    """A body to encode with ``model`` set to each tier's model, when ``forward`` is None;
    both None: ``raw_body`` is sent as is."""
    raw_body: bytes
    stream: bool
    headers: Mapping[str, str] = field(default_factory=dict)
    path: str = CHAT_PATH
    """The upstream endpoint, relative to its base URL."""
    forward: ForwardedBody | None = None
    """``raw_body`` with each tier's model spliced in: a routed body, never re-encoded."""

    def body_for(self, target: TierTarget) -> bytes:
        if self.forward is not None:
            return self.forward.render(self.raw_body, target.model)
        if self.payload is None:
            return self.raw_body
        body = {**self.payload, "model": target.model}
        return json.dumps(body, ensure_ascii=False).encode("utf-8", errors="surrogatepass")


OnAttempt = Callable[[Attempt, str | None], None]
"""Called after each attempt with the tier it escalates to (None: no escalation)."""
AnswerCheck = Callable[[Attempt, UpstreamReply], Awaitable[GateVerdict | None]]
"""An answer gate: judges a started answer before the client sees it (see the module doc)."""


async def call_with_escalation(
    pool: UpstreamPool,
    plan: EscalationPlan,
    call: UpstreamCall,
    on_attempt: OnAttempt | None = None,
    check_answer: AnswerCheck | None = None,
) -> Outcome:
    """Send ``call`` along ``plan``, escalating on retryable failures and rejected answers."""
    outcome = Outcome(plan.first, None)
    target: TierTarget | None = plan.first
    while target is not None:
        attempt = Attempt(target.tier, target.model, target.upstream)
        reply = await _attempt(pool, plan, call, target, attempt)
        if reply is not None and attempt.failure is None and check_answer is not None:
            attempt.gate = await check_answer(attempt, reply)
            if attempt.gate is not None and not attempt.gate.passed:
                attempt.failure, attempt.detail = GATE_FAILURE, attempt.gate.detail
        outcome.attempts.append(attempt)
        outcome.target, outcome.reply = target, reply
        following = plan.next_target(attempt, len(outcome.attempts))
        if on_attempt is not None:
            on_attempt(attempt, None if following is None else following.tier)
        if following is not None and reply is not None:
            await reply.aclose()
        target = following
    return outcome


async def _attempt(
    pool: UpstreamPool,
    plan: EscalationPlan,
    call: UpstreamCall,
    target: TierTarget,
    attempt: Attempt,
) -> UpstreamReply | None:
    """One upstream call, filling in ``attempt``; the reply when an answer started."""
    start = time.perf_counter()
    reply: UpstreamReply | None = None
    timeout = plan.attempt_timeout()
    if timeout <= 0:
        attempt.failure, attempt.detail = "timeout", "total timeout exhausted before this attempt"
    else:
        try:
            reply = await pool.open(
                target.upstream,
                call.body_for(target),
                call.stream,
                timeout,
                call.headers,
                call.path,
            )
        except UpstreamFailure as exc:
            attempt.failure, attempt.detail = exc.reason, redact(exc.detail)
        else:
            attempt.status = reply.status
            attempt.failure = status_failure(reply.status)
            if attempt.failure is not None:
                attempt.detail = error_message(reply.body)
    attempt.latency_ms = (time.perf_counter() - start) * 1e3
    return reply


def error_message(body: bytes, limit: int = 300) -> str:
    """A short, log-safe description of an upstream error body (key-like strings redacted)."""
    message: Any = None
    try:
        error = json.loads(body).get("error")
        message = error.get("message") if isinstance(error, dict) else error
    except (ValueError, AttributeError, RecursionError):
        pass
    if not isinstance(message, str):
        message = body[: limit * 4].decode("utf-8", errors="replace")
    return redact(message)[:limit]
