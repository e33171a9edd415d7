"""Per-request overrides: read from headers or metadata, validated, stripped before forwarding."""

from __future__ import annotations

import pytest

from router_ml.errors import InvalidRequest
from router_ml.gateway.overrides import Override, read_override, strip_router_fields

BODY = {"messages": [{"role": "user", "content": "hi"}]}


def test_headers_and_metadata_pin_a_tier_or_an_operating_point() -> None:
    assert not read_override({}, BODY)
    assert read_override({"x-router-tier": "Premium"}, BODY) == Override("premium", None, "header")
    meta = {**BODY, "metadata": {"router_operating_point": "under_routing_0.02"}}
    assert read_override({}, meta) == Override(None, "under_routing_0.02", "metadata")
    assert read_override({"x-router-operating-point": "0.05"}, BODY).operating_point == 0.05
    both = read_override(
        {"x-router-tier": "economy"}, {**BODY, "metadata": {"router_tier": "premium"}}
    )
    assert both.tier == "economy" and both.source == "metadata+header"  # the header wins
    assert not read_override({"x-router-tier": "auto"}, BODY)


def test_a_disabled_source_is_ignored() -> None:
    meta = {**BODY, "metadata": {"router_tier": "premium"}}
    assert not read_override({"x-router-tier": "premium"}, meta, False, False)
    assert read_override({"x-router-tier": "economy"}, meta, True, False).tier == "economy"


@pytest.mark.parametrize(
    ("headers", "metadata", "field"),
    [
        ({"x-router-tier": "gold"}, {}, "x-router-tier"),
        ({}, {"router_tier": 3}, "metadata.router_tier"),
        ({"x-router-operating-point": "1.5"}, {}, "x-router-operating-point"),
        ({"x-router-operating-point": "nan"}, {}, "x-router-operating-point"),
        ({"x-router-operating-point": "x" * 100}, {}, "x-router-operating-point"),
        ({}, {"router_operating_point": True}, "metadata.router_operating_point"),
    ],
)
def test_invalid_values_are_the_clients_error(headers: dict, metadata: dict, field: str) -> None:
    with pytest.raises(InvalidRequest) as info:
        read_override(headers, {**BODY, "metadata": metadata})
    assert info.value.field == field


def test_router_fields_are_not_forwarded() -> None:
    body = {**BODY, "metadata": {"router_tier": "premium", "team": "a"}}
    assert strip_router_fields(body)["metadata"] == {"team": "a"}
    assert "metadata" not in strip_router_fields({**BODY, "metadata": {"router_tier": "premium"}})
    assert strip_router_fields(BODY) == BODY
