"""The Prometheus text format, checked line by line."""

from __future__ import annotations

import pytest

from router_ml.gateway.prom import Counter, GatewayMetrics, Histogram


def test_counter_renders_labels_escaped_and_sorted() -> None:
    counter = Counter("x_total", "Things.", ("kind",))
    counter.inc("b")
    counter.inc('a"\\\n', amount=2)
    assert counter.render() == [
        "# HELP x_total Things.",
        "# TYPE x_total counter",
        'x_total{kind="a\\"\\\\\\n"} 2',
        'x_total{kind="b"} 1',
    ]


def test_counter_rejects_wrong_labels_and_decrements() -> None:
    counter = Counter("x_total", "Things.", ("kind",))
    with pytest.raises(ValueError):
        counter.inc()
    with pytest.raises(ValueError):
        counter.inc("a", amount=-1)


def test_histogram_buckets_are_cumulative_with_inf_sum_and_count() -> None:
    histogram = Histogram("lat_seconds", "Latency.", (0.1, 1.0))
    for value in (0.05, 0.1, 0.5, 3.0):
        histogram.observe(value)
    assert histogram.render()[2:] == [
        'lat_seconds_bucket{le="0.1"} 2',
        'lat_seconds_bucket{le="1"} 3',
        'lat_seconds_bucket{le="+Inf"} 4',
        "lat_seconds_sum 3.65",
        "lat_seconds_count 4",
    ]


def test_histogram_needs_increasing_buckets() -> None:
    with pytest.raises(ValueError):
        Histogram("h", "H.", (1.0, 0.5))


def test_gateway_metrics_render_every_family() -> None:
    metrics = GatewayMetrics()
    metrics.escalations.inc("economy", "standard", "http_5xx")
    text = metrics.render()
    for family in (
        "router_ml_requests_total",
        "router_ml_decisions_total",
        "router_ml_route_latency_seconds",
        "router_ml_upstream_latency_seconds",
        "router_ml_escalations_total",
        "router_ml_errors_total",
    ):
        assert f"# TYPE {family} " in text
    assert (
        'router_ml_escalations_total{from_tier="economy",to_tier="standard",reason="http_5xx"} 1'
        in text
    )
    assert text.endswith("\n")
