"""Escalation on failure: retry a request on a more capable tier while nothing reached the client.

A cheap tier that is down, rate-limited or stalled should cost the client latency, not an error:
5xx, 429, timeouts and dropped connections before the first byte are retried on the next tier of
the chain, within the retry budget and the request's total deadline. A 4xx is the client's own
mistake and would fail the same way everywhere, so it is returned as is. Every attempt is
recorded with its failure reason for the decision log and the metrics.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from router_ml.gateway.config import Escalation, Limits, TierTarget
from router_ml.gateway.upstream import UpstreamFailure, UpstreamPool, UpstreamReply


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
    """One upstream call: where it went and how it ended (``failure`` None = answer started)."""

    tier: str
    model: str
    upstream: str
    status: int | None = None
    failure: str | None = None
    detail: str = ""
    latency_ms: float = 0.0

    def to_dict(self) -> dict[str, Any]:
        return {
            "tier": self.tier,
            "model": self.model,
            "upstream": self.upstream,
            "status": self.status,
            "failure": self.failure,
            "detail": self.detail,
            "latency_ms": round(self.latency_ms, 3),
        }


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


OnAttempt = Callable[[Attempt, str | None], None]
"""Called after each attempt with the tier it escalates to (None: no escalation)."""


async def call_with_escalation(
    pool: UpstreamPool,
    first: TierTarget,
    tiers: Mapping[str, TierTarget],
    payload: Mapping[str, Any] | None,
    raw_body: bytes,
    stream: bool,
    escalation: Escalation | None,
    limits: Limits,
    deadline: float,
    headers: Mapping[str, str] | None = None,
    on_attempt: OnAttempt | None = None,
) -> Outcome:
    """Send the request to ``first``, escalating along ``escalation`` on retryable failures.

    ``payload`` is the parsed body whose ``model`` is set to each tier's model; None forwards
    ``raw_body`` untouched (an explicit model, which is never escalated: pass ``escalation=None``).
    ``deadline`` is a ``time.monotonic()`` instant bounding all attempts together.
    """
    outcome = Outcome(first, None)
    target = first
    while True:
        body = (
            raw_body
            if payload is None
            else json.dumps({**payload, "model": target.model}, ensure_ascii=False).encode("utf-8")
        )
        attempt = Attempt(target.tier, target.model, target.upstream)
        remaining = deadline - time.monotonic()
        reply: UpstreamReply | None = None
        start = time.perf_counter()
        if remaining <= 0:
            attempt.failure, attempt.detail = (
                "timeout",
                "total timeout exhausted before this attempt",
            )
        else:
            try:
                reply = await pool.open(
                    target.upstream,
                    body,
                    stream,
                    min(limits.first_byte_timeout_s, remaining),
                    headers,
                )
            except UpstreamFailure as exc:
                attempt.failure, attempt.detail = exc.reason, exc.detail
            else:
                attempt.status = reply.status
                attempt.failure = status_failure(reply.status)
                if attempt.failure is not None:
                    attempt.detail = _error_message(reply.body)
        attempt.latency_ms = (time.perf_counter() - start) * 1e3
        outcome.attempts.append(attempt)
        outcome.target, outcome.reply = target, reply

        next_tier = None
        if (
            attempt.failure is not None
            and escalation is not None
            and attempt.failure in escalation.retry_on
            and len(outcome.attempts) <= escalation.max_retries
            and time.monotonic() < deadline
        ):
            next_tier = escalation.next_tier(target.tier)
        if on_attempt is not None:
            on_attempt(attempt, next_tier)
        if next_tier is None:
            return outcome
        if reply is not None:
            await reply.aclose()
        target = tiers[next_tier]


def _error_message(body: bytes, limit: int = 300) -> str:
    """A short, log-safe description of an upstream error body."""
    try:
        error = json.loads(body).get("error")
        message = error.get("message") if isinstance(error, dict) else error
        if isinstance(message, str):
            return message[:limit]
    except (ValueError, AttributeError):
        pass
    return body[:limit].decode("utf-8", errors="replace")
