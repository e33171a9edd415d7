"""The request record: one decision-log line per request, finished exactly once, truthfully.

Every gateway request owns a :class:`RequestRecord` from the moment it arrives. Handlers add
what they learn (``record.data``: decision, features, attempts, usage) and *settle* the outcome
they are about to answer with; the request guard (``app.GuardedEndpoint``) *finishes* the record
once the answer's status line and headers have been accepted by the server — i.e. after the
outcome of sending is known — or with the failure that prevented it. A stream relay finishes it
itself when the stream ends. ``finish`` is idempotent, so exactly one line is written whatever
path a request takes.

Extension point — enrichers (issue 10, spend): ``DecisionRecorder.enrichers`` is a list of
callables ``enrich(record) -> None`` run on every record just before its line is written, after
``status``, ``outcome``, ``tier``, ``model``, ``attempts`` and ``usage`` are final. A spend
component adds its cost fields to ``record.data`` there (e.g. ``cost_usd``, ``baseline_cost_usd``).
An enricher that raises is logged and counted (``router_ml_errors_total{kind="enricher"}``); it
never loses the line.
"""

from __future__ import annotations

import logging
import time
import uuid
from collections.abc import Callable
from datetime import datetime, timezone
from typing import Any

from router_ml.gateway.decision_log import DecisionLog
from router_ml.gateway.escalation import Outcome
from router_ml.gateway.prom import GatewayMetrics

logger = logging.getLogger("router_ml.gateway")

Enricher = Callable[["RequestRecord"], None]


class RequestRecord:
    """The decision-log line of one request, filled in as the request progresses."""

    def __init__(self, endpoint: str, recorder: DecisionRecorder) -> None:
        self.start = time.perf_counter()
        self.id = f"rtr-{uuid.uuid4().hex}"
        self.endpoint = endpoint
        self.data: dict[str, Any] = {
            "id": self.id,
            "time": datetime.now(timezone.utc).isoformat(timespec="milliseconds"),
            "endpoint": endpoint,
        }
        self.written = False
        self.outcome: Outcome | None = None
        """The upstream outcome, once the request was proxied (tier, model and attempts)."""
        self._settled: tuple[int, str] | None = None
        self._recorder = recorder

    @property
    def settled(self) -> tuple[int, str] | None:
        """The (status, outcome) the request is answering with, once a handler decided it."""
        return self._settled

    def note_upstream(self, outcome: Outcome) -> None:
        """Record where the request went: every attempt, and whether it escalated."""
        self.outcome = outcome
        self.data.update(
            attempts=[a.to_dict() for a in outcome.attempts],
            escalated=outcome.escalated,
            escalation_reason=outcome.escalation_reason,
        )

    def settle(self, status: int, outcome: str, error: str | None = None) -> None:
        """Fix the answer's status and outcome; the line is written by ``finish``."""
        self._settled = (status, outcome)
        if error is not None:
            self.data["error"] = error

    def finish(self, status: int | None = None, outcome: str | None = None) -> None:
        """Write the request's one decision-log line and count it; later calls do nothing.

        Without arguments the settled status and outcome are written.
        """
        if self.written:
            return
        if status is None or outcome is None:
            assert self._settled is not None, "finish() before settle()"
            status, outcome = self._settled
        self.written = True
        self._recorder.write(self, status, outcome)


class DecisionRecorder:
    """Writes finished records to the decision log and counts them in the metrics."""

    def __init__(self, log: DecisionLog, metrics: GatewayMetrics) -> None:
        self.log = log
        self.metrics = metrics
        self.enrichers: list[Enricher] = []

    def open(self, endpoint: str) -> RequestRecord:
        return RequestRecord(endpoint, self)

    def write(self, record: RequestRecord, status: int, outcome: str) -> None:
        data = record.data
        upstream = record.outcome
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
        for enrich in self.enrichers:
            try:
                enrich(record)
            except Exception:  # an enricher's bug must not lose the line
                logger.exception("decision-log enricher failed for request %s", record.id)
                self.metrics.errors.inc("enricher")
        self.metrics.requests.inc(record.endpoint, str(status))
        try:
            self.log.write(data)
        except Exception:  # the log must never take the request down with it
            logger.exception("cannot write the decision log")
            self.metrics.errors.inc("decision_log")
