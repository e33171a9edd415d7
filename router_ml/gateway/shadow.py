"""Shadow mode: try the router on production traffic without letting it decide.

Two independent switches (``shadow`` in the gateway config):

- ``mode: observe``: every chat request is routed and the router's choice is logged under
  ``shadow`` (tier, model, and, once the answer's usage is known, ``cost_usd`` of the same tokens
  on that tier), but the client gets what it asked for: a named model as usual, a routing alias
  on ``serve_tier``. The ``decision`` of the line is the router's (not applied).
- ``replay_fraction``: that share of the answered chat requests is sent again, in the
  background and never shown to the client, to the tier just below the one that served it
  (non-streamed, the same body with that tier's model, the answer gate applied when one is
  configured). The replay writes its own decision-log line, ``endpoint: "shadow.replay"`` with
  ``replay_of`` = the served request's id, so the two answers can be judged side by side (the
  evaluation-before-moving-down discipline; ``router-ml export-log`` pairs them).

Replays are bounded (``max_replays_in_flight``; beyond it a replay is skipped and counted) and
cancelled at shutdown, where their lines are still written with ``outcome: "aborted"``.
"""

from __future__ import annotations

import asyncio
import json
import logging
import random
import time
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from router_ml.gateway.config import GatewayConfig, TierTarget
from router_ml.gateway.decision_log import REPLAY_ENDPOINT
from router_ml.gateway.escalation import EscalationPlan, UpstreamCall, call_with_escalation
from router_ml.gateway.record import RequestRecord
from router_ml.gateway.upstream import usage_from_body
from router_ml.router import Decision
from router_ml.tiers import TIERS

if TYPE_CHECKING:
    from router_ml.gateway.app import Gateway

logger = logging.getLogger("router_ml.gateway")

MAX_REPLAY_BODY = 4 * 1024 * 1024
"""Bytes of a replayed answer read at most (it is judged, never relayed)."""


def answer_message(body: bytes) -> dict[str, Any] | None:
    """``choices[0].message`` of a non-streamed chat completion, for judging; None otherwise."""
    try:
        message = json.loads(body)["choices"][0]["message"]
    except (ValueError, KeyError, IndexError, TypeError):
        return None
    return message if isinstance(message, dict) else None


def cheaper_tier(tier: str) -> str | None:
    """The tier just below ``tier``, None for the cheapest (or a non-tier passthrough)."""
    if tier not in TIERS or TIERS.index(tier) == 0:
        return None
    return TIERS[TIERS.index(tier) - 1]


def observed(config: GatewayConfig, decision: Decision) -> dict[str, Any]:
    """The log line's ``shadow``: what the router chose, not applied (observe mode)."""
    return {
        "mode": config.shadow.mode,
        "tier": decision.tier,
        "model": config.tiers[decision.tier].model,
        "source": decision.source,
    }


def unroutable(config: GatewayConfig, message: str) -> dict[str, Any]:
    """The log line's ``shadow`` when the router could not route a request it only observes
    (the client is still served)."""
    return {"mode": config.shadow.mode, "error": message}


class Shadow:
    """Observe-mode bookkeeping and background replays for one gateway."""

    def __init__(self, gateway: Gateway) -> None:
        self.gateway = gateway
        self.config = gateway.config.shadow
        self._random = random.Random(self.config.seed)
        self._tasks: set[asyncio.Task[None]] = set()

    def maybe_replay(
        self, record: RequestRecord, payload: Mapping[str, Any], served: TierTarget
    ) -> bool:
        """Sample the request for a replay one tier down; True when one was started."""
        fraction = self.config.replay_fraction
        if fraction <= 0 or self._random.random() >= fraction:
            return False
        tier = cheaper_tier(served.tier)
        if tier is None:
            return False
        if len(self._tasks) >= self.config.max_replays_in_flight:
            self.gateway.metrics.replays.inc("skipped")
            return False
        target = self.gateway.config.tiers[tier]
        task = asyncio.get_running_loop().create_task(self._replay(record.id, payload, target))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)
        record.data["shadow_replay"] = {"tier": tier, "model": target.model}
        return True

    async def _replay(self, of: str, payload: Mapping[str, Any], target: TierTarget) -> None:
        gateway = self.gateway
        replay = gateway.recorder.open(REPLAY_ENDPOINT)
        replay.data.update(replay_of=of, requested_model=payload.get("model"), stream=False)
        body = {k: v for k, v in payload.items() if k not in ("stream", "stream_options")}
        try:
            limits = gateway.config.limits
            plan = EscalationPlan(
                target,
                gateway.config.tiers,
                None,
                time.monotonic() + limits.total_timeout_s,
                limits.first_byte_timeout_s,
            )
            call = UpstreamCall(
                body, b"", False, {"x-router-request-id": replay.id, "x-router-replay-of": of}
            )
            outcome = await call_with_escalation(
                gateway.pool, plan, call, None, gateway.check_answer
            )
            replay.note_upstream(outcome)
            reply = outcome.reply
            if reply is None:
                gateway.metrics.replays.inc(f"upstream_{outcome.failure or 'connection'}")
                replay.finish(502, f"upstream_{outcome.failure or 'connection'}")
                return
            answer = reply.body
            if not reply.complete:
                async for chunk in reply.rest():
                    answer += chunk
                    if len(answer) > MAX_REPLAY_BODY:
                        break
            await reply.aclose()
            replay.data["usage"] = usage_from_body(answer)
            if gateway.config.decision_log.include_prompts:
                replay.data["answer"] = answer_message(answer)
            ok = reply.status < 400 and outcome.failure is None
            gateway.metrics.replays.inc("ok" if ok else "upstream_error")
            replay.finish(reply.status, "ok" if ok else "upstream_error")
        except asyncio.CancelledError:
            replay.finish(499, "aborted")
            raise
        except Exception:  # a replay is evaluation only: never let it disturb serving
            logger.exception("shadow replay %s of %s failed", replay.id, of)
            gateway.metrics.replays.inc("internal")
            replay.finish(500, "internal_error")

    async def aclose(self) -> None:
        """Cancel the replays still running (their lines are written as aborted)."""
        tasks = list(self._tasks)
        for task in tasks:
            task.cancel()
        if tasks:
            await asyncio.gather(*tasks, return_exceptions=True)

    async def drain(self) -> None:
        """Wait for the running replays (tests, graceful shutdown)."""
        while self._tasks:
            await asyncio.gather(*list(self._tasks), return_exceptions=True)
