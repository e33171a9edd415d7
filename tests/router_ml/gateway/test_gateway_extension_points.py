"""Gateway extension points: answer gates escalate, enrichers add fields, the plan steps up."""

from __future__ import annotations

import time
from typing import Any

import httpx
from conftest import RunningGateway
from fake_upstream import FakeUpstream

from router_ml.gateway.config import Escalation, TierTarget
from router_ml.gateway.escalation import Attempt, EscalationPlan, GateVerdict
from router_ml.gateway.record import RequestRecord
from router_ml.gateway.upstream import UpstreamReply

TARGETS = {t: TierTarget(t, f"{t}-model", "up") for t in ("economy", "standard", "premium")}


def plan(escalation: Escalation | None, seconds: float = 60.0) -> EscalationPlan:
    return EscalationPlan(TARGETS["economy"], TARGETS, escalation, time.monotonic() + seconds, 10.0)


def test_plan_steps_up_the_chain_within_its_budget() -> None:
    chain = plan(
        Escalation(("economy", "premium"), max_retries=1, retry_on=frozenset({"http_5xx"}))
    )
    failed = Attempt("economy", "economy-model", "up", 500, "http_5xx")
    assert chain.next_target(failed, 1) == TARGETS["premium"]
    assert chain.next_target(failed, 2) is None  # budget spent
    assert chain.next_target(Attempt("economy", "m", "up", 429, "http_429"), 1) is None
    assert chain.next_target(Attempt("economy", "m", "up", 200, None), 1) is None
    gated = Attempt("economy", "m", "up", 200, "gate")
    assert chain.next_target(gated, 1) == TARGETS["premium"]  # gates ignore retry_on
    assert plan(None).next_target(failed, 1) is None  # explicit models never escalate
    assert plan(Escalation(), seconds=-1).next_target(failed, 1) is None  # deadline passed


def chat(gateway: RunningGateway, tier: str) -> httpx.Response:
    body = {
        "model": "auto",
        "messages": [{"role": "user", "content": "hello there"}],
        "metadata": {"force": tier},
    }
    return httpx.post(gateway.base_url + "/v1/chat/completions", json=body, timeout=10.0)


def test_a_rejecting_gate_escalates_and_is_logged(
    gateway: RunningGateway, fake: FakeUpstream
) -> None:
    async def economy_never_good(attempt: Attempt, reply: UpstreamReply) -> GateVerdict:
        assert reply.complete and b"[" + attempt.model.encode() in reply.body
        return GateVerdict("not-economy", attempt.tier != "economy", f"tier {attempt.tier}")

    gateway.gateway.check_answer = economy_never_good
    response = chat(gateway, "economy")
    assert response.status_code == 200 and response.headers["x-router-tier"] == "standard"
    assert fake.models_called() == ["eco-model", "std-model"]
    (line,) = gateway.log_lines()
    assert [(a["tier"], a["failure"], a["gate"]) for a in line["attempts"]] == [
        ("economy", "gate", {"name": "not-economy", "passed": False, "detail": "tier economy"}),
        ("standard", None, {"name": "not-economy", "passed": True, "detail": "tier standard"}),
    ]
    assert line["escalation_reason"] == "gate" and line["tier"] == "standard"


def test_enrichers_add_fields_to_every_line(gateway: RunningGateway, fake: FakeUpstream) -> None:
    seen: list[dict[str, Any]] = []

    def spend(record: RequestRecord) -> None:
        seen.append(dict(record.data))
        record.data["cost_usd"] = 0.5 if record.data.get("tier") == "economy" else None

    def broken(_record: RequestRecord) -> None:
        raise RuntimeError("enricher bug")

    gateway.gateway.recorder.enrichers += [spend, broken]
    assert chat(gateway, "economy").status_code == 200
    (line,) = gateway.log_lines()
    assert line["cost_usd"] == 0.5 and seen[0]["status"] == 200 and seen[0]["usage"]
    metrics = httpx.get(gateway.base_url + "/metrics").text
    assert 'router_ml_errors_total{kind="enricher"} 1' in metrics
