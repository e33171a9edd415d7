"""The routers router-ml is compared with, all behind one small interface.

Every router has a ``name``, ``route(request) -> tier name`` (the per-request path the speed
benchmark times) and ``route_batch(requests) -> tier indices``. A router that has a continuous
"how much does this need a stronger model" score also gives ``escalation_scores`` (used for
RouteLLM's call–performance curve) and ``sweep`` (tier choices at many operating points, for the
cost–quality curve); the others return None and are shown as single points.
"""

from __future__ import annotations

import json
import os
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from router_ml.calibration import choose_tiers
from router_ml.request import parse_request
from router_ml.tiers import TIERS

Request = Mapping[str, Any]
N_SWEEP = 41
"""Operating points per sweep; the cost–quality hull needs no more to be smooth."""


class TierRouter:
    """Base class: a router of requests to tier indices (0 = economy .. 2 = premium)."""

    name = "router"
    description = ""

    def route_batch(self, requests: Sequence[Request]) -> np.ndarray:
        return np.array([TIERS.index(self.route(r)) for r in requests], dtype=np.int64)

    def route(self, request: Request) -> str:
        return TIERS[int(self.route_batch([request])[0])]

    def escalation_scores(self, requests: Sequence[Request]) -> np.ndarray | None:
        """Higher = more in need of a stronger tier; None when the router has no such score."""
        return None

    def sweep(self, requests: Sequence[Request]) -> np.ndarray | None:
        """Tier choices ``(n_points, n)`` at a range of operating points; None when fixed."""
        return None


class AlwaysTier(TierRouter):
    """Sends everything to one tier: the cost floor (economy) or the quality reference (premium)."""

    def __init__(self, tier: str) -> None:
        if tier not in TIERS:
            raise ValueError(f"unknown tier {tier!r}; expected one of {TIERS}")
        self.tier = tier
        self.name = f"always-{tier}"
        self.description = f"every request to {tier}"

    def route(self, request: Request) -> str:
        parse_request(request)  # a router must still reject malformed requests
        return self.tier

    def route_batch(self, requests: Sequence[Request]) -> np.ndarray:
        for request in requests:
            parse_request(request)
        return np.full(len(requests), TIERS.index(self.tier), dtype=np.int64)


class RandomAtShares(TierRouter):
    """Draws each request's tier at random with fixed tier shares (e.g. matched to router-ml's).

    It shows what a router's tier mix is worth without looking at the request: a learned router
    must beat it at the same cost. Seeded, so a report is reproducible.
    """

    def __init__(self, shares: Sequence[float], seed: int = 0) -> None:
        shares = np.asarray(shares, dtype=float)
        if shares.shape != (len(TIERS),) or (shares < 0).any() or not np.isclose(shares.sum(), 1):
            raise ValueError(f"shares must be {len(TIERS)} non-negative numbers summing to 1")
        self.shares = shares
        self.seed = seed
        self._rng = np.random.default_rng(seed)
        self.name = "random (matched shares)"
        self.description = "tier drawn at random with " + ", ".join(
            f"{t} {s:.0%}" for t, s in zip(TIERS, shares, strict=True)
        )

    def route(self, request: Request) -> str:
        parse_request(request)
        return TIERS[int(self._rng.choice(len(TIERS), p=self.shares))]

    def route_batch(self, requests: Sequence[Request]) -> np.ndarray:
        for request in requests:
            parse_request(request)
        rng = np.random.default_rng(self.seed)
        return rng.choice(len(TIERS), size=len(requests), p=self.shares).astype(np.int64)

    def escalation_scores(self, requests: Sequence[Request]) -> np.ndarray:
        return np.random.default_rng(self.seed + 1).random(len(requests))


class Oracle(TierRouter):
    """Routes each evaluation record to its reference label: the ceiling, not a real router.

    It knows labels by the canonical JSON of the request; a request it was not given is an
    error. Where one request body carries several labels, the highest wins (escalation bias).
    """

    name = "oracle (label)"
    description = "the reference label itself: the best any router could agree"

    def __init__(self, requests: Sequence[Request], labels: Sequence[int]) -> None:
        self._labels: dict[str, int] = {}
        for request, label in zip(requests, labels, strict=True):
            key = _canonical(request)
            self._labels[key] = max(int(label), self._labels.get(key, 0))

    def route_batch(self, requests: Sequence[Request]) -> np.ndarray:
        try:
            return np.array([self._labels[_canonical(r)] for r in requests], dtype=np.int64)
        except KeyError:
            raise KeyError("the oracle only knows the requests it was built with") from None

    def escalation_scores(self, requests: Sequence[Request]) -> np.ndarray:
        return self.route_batch(requests).astype(float)


class LengthHeuristic(TierRouter):
    """The rule teams write first: ``len(prompt) + max_tokens`` < 500 economy, < 5000 standard.

    ``len(prompt)`` is the characters of every message's text (tool calls included);
    ``max_tokens`` counts 0 when absent. Its sweep scales both cut-offs together.
    """

    name = "length heuristic"
    description = "len(prompt) + max_tokens: < 500 economy, < 5000 standard, else premium"

    def __init__(self, economy_below: float = 500, standard_below: float = 5000) -> None:
        if not 0 < economy_below <= standard_below:
            raise ValueError("need 0 < economy_below <= standard_below")
        self.cuts = np.array([economy_below, standard_below], dtype=float)

    @staticmethod
    def size(request: Request) -> int:
        parsed = parse_request(request)
        chars = sum(len(m.text) + len(m.tool_call_text) for m in parsed.messages)
        return chars + (parsed.max_tokens or 0)

    def route(self, request: Request) -> str:
        return TIERS[int(np.searchsorted(self.cuts, self.size(request), side="right"))]

    def route_batch(self, requests: Sequence[Request]) -> np.ndarray:
        sizes = self.escalation_scores(requests)
        return np.searchsorted(self.cuts, sizes, side="right").astype(np.int64)

    def escalation_scores(self, requests: Sequence[Request]) -> np.ndarray:
        return np.array([self.size(r) for r in requests], dtype=float)

    def sweep(self, requests: Sequence[Request]) -> np.ndarray:
        sizes = self.escalation_scores(requests)
        scales = np.geomspace(1e-3, 1e3, N_SWEEP)
        return np.stack(
            [np.searchsorted(self.cuts * s, sizes, side="right") for s in scales]
        ).astype(np.int64)


class LearnedRouter(TierRouter):
    """router-ml itself (or any ``Router``): policy rules, then the calibrated model."""

    def __init__(self, router: Any, name: str = "router-ml", description: str = "") -> None:
        self.router = router
        self.name = name
        self.description = description or (
            f"learned model, operating point {router.operating_point.name} "
            f"(thresholds {router.thresholds[0]:.3f}, {router.thresholds[1]:.3f})"
        )

    def route(self, request: Request) -> str:
        return self.router.route(request).tier

    def route_batch(self, requests: Sequence[Request]) -> np.ndarray:
        decisions = self.router.route_batch(requests)
        return np.array([TIERS.index(d.tier) for d in decisions], dtype=np.int64)

    def risks(self, requests: Sequence[Request]) -> np.ndarray:
        return self.router.risks(requests)

    def escalation_scores(self, requests: Sequence[Request]) -> np.ndarray | None:
        if self.router.policy.rules:
            return None  # rules decide some requests regardless of the risk
        return self.risks(requests)[:, 0]

    def sweep(self, requests: Sequence[Request]) -> np.ndarray | None:
        """Every pair of thresholds on a grid: the hull then keeps the best ones."""
        if self.router.policy.rules:
            return None
        risks = self.risks(requests)
        grid = np.linspace(0.0, 1.0, 21)
        return np.stack([choose_tiers(risks, (t0, t1)) for t0 in grid for t1 in grid]).astype(
            np.int64
        )


def load_learned_router(
    model_dir: str | os.PathLike[str] | None,
    policy: str | os.PathLike[str] | Mapping[str, Any] | None = None,
    name: str = "router-ml",
    operating_point: str | float | None = None,
) -> LearnedRouter:
    """A ``LearnedRouter`` over ``Router.load`` (imported here: the runtime is a heavy import)."""
    from router_ml.router import Router

    router = Router.load(model_dir=model_dir, policy=policy, operating_point=operating_point)
    return LearnedRouter(router, name=name)


def _canonical(request: Request) -> str:
    return json.dumps(request, sort_keys=True, separators=(",", ":"))
