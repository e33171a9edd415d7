"""Prometheus text-format metrics, implemented in a page so the serve extra needs no client library.

Only what the gateway uses: counters and histograms with labels, rendered in the text exposition
format 0.0.4. Updates run on the event loop thread; a lock still guards them because the
decision service may be embedded in threaded servers too.
"""

from __future__ import annotations

import bisect
import math
import threading
from collections.abc import Sequence
from typing import Any

CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"

LATENCY_BUCKETS_S = (0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1)
"""Routing-decision latency buckets: the decision should take well under a millisecond."""
UPSTREAM_BUCKETS_S = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0)
"""Upstream time-to-first-byte buckets: LLM calls take from milliseconds to a minute."""


def _escape(value: str) -> str:
    return value.replace("\\", "\\\\").replace("\n", "\\n").replace('"', '\\"')


def _labels(names: Sequence[str], values: Sequence[str], extra: str = "") -> str:
    parts = [f'{n}="{_escape(v)}"' for n, v in zip(names, values, strict=True)]
    if extra:
        parts.append(extra)
    return "{" + ",".join(parts) + "}" if parts else ""


def _number(value: float) -> str:
    if math.isinf(value):
        return "+Inf" if value > 0 else "-Inf"
    return repr(float(value)) if not float(value).is_integer() else str(int(value))


class Counter:
    """A monotonically increasing count per label combination."""

    def __init__(self, name: str, help_text: str, labels: Sequence[str] = ()) -> None:
        self.name, self.help, self.labels = name, help_text, tuple(labels)
        self._values: dict[tuple[str, ...], float] = {}
        self._lock = threading.Lock()

    def inc(self, *label_values: str, amount: float = 1.0) -> None:
        if len(label_values) != len(self.labels):
            raise ValueError(f"{self.name}: expected labels {self.labels}, got {label_values}")
        if amount < 0:
            raise ValueError(f"{self.name}: counters only go up, got {amount}")
        with self._lock:
            self._values[label_values] = self._values.get(label_values, 0.0) + amount

    def value(self, *label_values: str) -> float:
        return self._values.get(label_values, 0.0)

    def render(self) -> list[str]:
        lines = [f"# HELP {self.name} {self.help}", f"# TYPE {self.name} counter"]
        with self._lock:
            items = sorted(self._values.items())
        lines += [f"{self.name}{_labels(self.labels, k)} {_number(v)}" for k, v in items]
        return lines


class Gauge:
    """A value per label combination that goes up and down (set, not added)."""

    def __init__(self, name: str, help_text: str, labels: Sequence[str] = ()) -> None:
        self.name, self.help, self.labels = name, help_text, tuple(labels)
        self._values: dict[tuple[str, ...], float] = {}
        self._lock = threading.Lock()

    def set(self, value: float, *label_values: str) -> None:
        if len(label_values) != len(self.labels):
            raise ValueError(f"{self.name}: expected labels {self.labels}, got {label_values}")
        with self._lock:
            self._values[label_values] = float(value)

    def value(self, *label_values: str) -> float | None:
        return self._values.get(label_values)

    def render(self) -> list[str]:
        lines = [f"# HELP {self.name} {self.help}", f"# TYPE {self.name} gauge"]
        with self._lock:
            items = sorted(self._values.items())
        lines += [f"{self.name}{_labels(self.labels, k)} {_number(v)}" for k, v in items]
        return lines


class Histogram:
    """Observations counted into cumulative ``le`` buckets, plus their sum and count."""

    def __init__(
        self, name: str, help_text: str, buckets: Sequence[float], labels: Sequence[str] = ()
    ) -> None:
        if list(buckets) != sorted(set(buckets)) or not buckets:
            raise ValueError(f"{name}: buckets must be distinct and increasing")
        self.name, self.help, self.labels = name, help_text, tuple(labels)
        self.buckets = tuple(float(b) for b in buckets)
        self._series: dict[tuple[str, ...], list[float]] = {}
        self._lock = threading.Lock()

    def observe(self, value: float, *label_values: str) -> None:
        if len(label_values) != len(self.labels):
            raise ValueError(f"{self.name}: expected labels {self.labels}, got {label_values}")
        index = bisect.bisect_left(self.buckets, value)
        with self._lock:
            series = self._series.get(label_values)
            if series is None:
                # per-bucket counts (non-cumulative), then +Inf, sum, count
                series = self._series[label_values] = [0.0] * (len(self.buckets) + 3)
            series[index] += 1
            series[-2] += value
            series[-1] += 1

    def count(self, *label_values: str) -> float:
        series = self._series.get(label_values)
        return series[-1] if series else 0.0

    def render(self) -> list[str]:
        lines = [f"# HELP {self.name} {self.help}", f"# TYPE {self.name} histogram"]
        with self._lock:
            items = sorted((k, list(v)) for k, v in self._series.items())
        for key, series in items:
            cumulative = 0.0
            for bound, n in zip((*self.buckets, math.inf), series[:-2], strict=True):
                cumulative += n
                le = f'le="{_number(bound)}"'
                lines.append(
                    f"{self.name}_bucket{_labels(self.labels, key, le)} {_number(cumulative)}"
                )
            lines.append(f"{self.name}_sum{_labels(self.labels, key)} {_number(series[-2])}")
            lines.append(f"{self.name}_count{_labels(self.labels, key)} {_number(series[-1])}")
        return lines


class GatewayMetrics:
    """Every metric the gateway exports, created once per app."""

    def __init__(self) -> None:
        self.requests = Counter(
            "router_ml_requests_total",
            "Requests answered, by endpoint and HTTP status.",
            ("endpoint", "status"),
        )
        self.decisions = Counter(
            "router_ml_decisions_total", "Routing decisions by tier and source.", ("tier", "source")
        )
        self.route_latency = Histogram(
            "router_ml_route_latency_seconds",
            "Time to decide a request's tier (parse, rules, model).",
            LATENCY_BUCKETS_S,
        )
        self.upstream_latency = Histogram(
            "router_ml_upstream_latency_seconds",
            "Upstream time to first byte, by tier and outcome.",
            UPSTREAM_BUCKETS_S,
            ("tier", "outcome"),
        )
        self.escalations = Counter(
            "router_ml_escalations_total",
            "Retries on a more capable tier, by failed tier and reason.",
            ("from_tier", "to_tier", "reason"),
        )
        self.gate_checks = Counter(
            "router_ml_gate_checks_total",
            "Answers checked by the answer gates, by tier and result (passed, failed).",
            ("tier", "result"),
        )
        self.gate_failures = Counter(
            "router_ml_gate_failures_total",
            "Answers rejected by an answer gate, by gate and tier.",
            ("gate", "tier"),
        )
        self.errors = Counter(
            "router_ml_errors_total",
            "Errors by kind (routing fallbacks, upstream failures, aborted streams).",
            ("kind",),
        )

        # spend (issue 10): incremented with the exact figures written into the decision log
        self.tokens = Counter(
            "router_ml_tokens_total",
            "Upstream-reported tokens by served tier, model and kind (input/output).",
            ("tier", "model", "kind"),
        )
        self.cost = Counter(
            "router_ml_cost_usd_total",
            "Cost in USD of the answers served, at catalog prices, by tier and model.",
            ("tier", "model"),
        )
        self.premium_cost = Counter(
            "router_ml_premium_cost_usd_total",
            "Counterfactual: what the same tokens would have cost on the premium tier, by the "
            "tier and model that served them (saving = this - router_ml_cost_usd_total).",
            ("tier", "model"),
        )
        self.shadow_cost = Counter(
            "router_ml_shadow_cost_usd_total",
            "Shadow mode: what the same tokens would have cost on the tier the router chose.",
            ("tier", "model"),
        )
        self.replay_cost = Counter(
            "router_ml_shadow_replay_cost_usd_total",
            "Shadow replays on the next cheaper tier (never shown to clients), by tier and model.",
            ("tier", "model"),
        )
        self.replays = Counter(
            "router_ml_shadow_replays_total",
            "Shadow replays by outcome (ok, upstream failure, skipped when too many in flight).",
            ("outcome",),
        )
        self.unpriced = Counter(
            "router_ml_unpriced_requests_total",
            "Answered requests without a price (no usage reported, or a model nobody prices).",
            ("model",),
        )
        self.rolling_tier_share = Gauge(
            "router_ml_rolling_tier_share",
            "Share of each tier among the last router_ml_rolling_window_requests decisions.",
            ("tier",),
        )
        self.rolling_ood_share = Gauge(
            "router_ml_rolling_ood_share",
            "Share of out-of-distribution requests among the last decisions that had a score.",
        )
        self.rolling_window = Gauge(
            "router_ml_rolling_window_requests", "Decisions in the rolling window."
        )

    def set_rolling(self, rolling: Any) -> None:
        """Copy a ``spend.RollingMix`` into the rolling gauges."""
        for tier, share in rolling.shares().items():
            self.rolling_tier_share.set(share, tier)
        ood = rolling.ood_share()
        if ood is not None:
            self.rolling_ood_share.set(ood)
        self.rolling_window.set(len(rolling))

    def render(self) -> str:
        lines: list[str] = []
        for metric in (
            self.requests,
            self.decisions,
            self.route_latency,
            self.upstream_latency,
            self.escalations,
            self.gate_checks,
            self.gate_failures,
            self.errors,
            self.tokens,
            self.cost,
            self.premium_cost,
            self.shadow_cost,
            self.replay_cost,
            self.replays,
            self.unpriced,
            self.rolling_tier_share,
            self.rolling_ood_share,
            self.rolling_window,
        ):
            lines += metric.render()
        return "\n".join(lines) + "\n"
