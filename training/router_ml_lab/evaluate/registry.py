"""The routers an evaluation can run, by name (as RouteLLM's ``ROUTER_CLS``).

Each entry builds its router(s) from one :class:`RouterContext`; every router then exposes the same
:class:`~router_ml_lab.evaluate.baselines.TierRouter` interface, whose one scoring method is
``escalation_scores`` (higher = needs a stronger tier). A router that cannot run here raises
:class:`RouterUnavailable` with the reason, which the report lists under "skipped".
Adding a router is one function and one line in :data:`ROUTERS`.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from router_ml.tiers import TIERS
from router_ml_lab.evaluate.baselines import (
    AlwaysTier,
    LearnedRouter,
    LengthHeuristic,
    Oracle,
    RandomAtShares,
    TierRouter,
    load_learned_router,
)
from router_ml_lab.evaluate.peers import EmbeddingKNNRouter, PeerUnavailable, load_peers
from router_ml_lab.quality.evidence import Evidence
from router_ml_lab.quality.metrics import tier_shares


class RouterUnavailable(Exception):
    """A router that cannot run in this evaluation (missing data, file or package)."""


@dataclass(frozen=True)
class RouterContext:
    """What a router may be built from: router-ml itself, the evaluated and training records."""

    ours: LearnedRouter
    eval_set: Evidence | None
    train_set: Evidence | None
    model_dir: str | None
    rules_policy: str
    operating_point: str | float | None = None


@dataclass(frozen=True)
class RouterEntry:
    kind: str
    """``baseline``, ``peer`` or ``reference`` (a ceiling, not a router)."""
    build: Callable[[str, RouterContext], Sequence[TierRouter]]


def _always(name: str, ctx: RouterContext) -> Sequence[TierRouter]:
    return [AlwaysTier(name.removeprefix("always-"))]


def _random(name: str, ctx: RouterContext) -> Sequence[TierRouter]:
    """Request-blind, at router-ml's own tier shares on the evaluated records (else uniform)."""
    if ctx.eval_set is None:
        return [RandomAtShares(np.full(len(TIERS), 1 / len(TIERS)))]
    return [RandomAtShares(tier_shares(ctx.ours.route_batch(list(ctx.eval_set.requests))))]


def _oracle(name: str, ctx: RouterContext) -> Sequence[TierRouter]:
    if ctx.eval_set is None:
        raise RouterUnavailable("needs labels: not a router, only the evaluation ceiling")
    return [Oracle(ctx.eval_set.requests, ctx.eval_set.labels)]


def _length(name: str, ctx: RouterContext) -> Sequence[TierRouter]:
    return [LengthHeuristic()]


def _rules(name: str, ctx: RouterContext) -> Sequence[TierRouter]:
    if not Path(ctx.rules_policy).is_file():
        raise RouterUnavailable(f"policy file {ctx.rules_policy} not found")
    rules = load_learned_router(
        ctx.model_dir,
        policy=ctx.rules_policy,
        name="example rule policy",
        operating_point=ctx.operating_point,
    )
    rules.description = f"{ctx.rules_policy}: rules first, router-ml for the rest"
    return [rules]


def _litellm(name: str, ctx: RouterContext) -> Sequence[TierRouter]:
    peers, why = load_peers([name])
    if not peers:
        raise RouterUnavailable(why.get(name, "not installed"))
    return peers


def _knn(name: str, ctx: RouterContext) -> Sequence[TierRouter]:
    if ctx.train_set is None:
        raise RouterUnavailable(
            "needs a training split it is not evaluated on: run with --split test"
        )
    try:
        return [EmbeddingKNNRouter().fit(list(ctx.train_set.requests), ctx.train_set.labels)]
    except PeerUnavailable as exc:
        raise RouterUnavailable(str(exc)) from exc


ROUTERS: dict[str, RouterEntry] = {
    "always-economy": RouterEntry("baseline", _always),
    "always-premium": RouterEntry("baseline", _always),
    "random": RouterEntry("baseline", _random),
    "oracle": RouterEntry("reference", _oracle),
    "length": RouterEntry("baseline", _length),
    "rules": RouterEntry("baseline", _rules),
    "litellm-heuristic": RouterEntry("peer", _litellm),
    "litellm-heuristic_v2": RouterEntry("peer", _litellm),
    "knn": RouterEntry("peer", _knn),
}


def build_routers(
    names: Sequence[str], ctx: RouterContext
) -> tuple[list[tuple[TierRouter, str]], dict[str, str]]:
    """``(router, kind)`` pairs in report order (router-ml first), and ``{name: why}`` skipped."""
    unknown = [name for name in names if name not in ROUTERS]
    if unknown:
        raise ValueError(f"unknown routers {unknown}; known: {sorted(ROUTERS)}")
    routers: list[tuple[TierRouter, str]] = [(ctx.ours, "ours")]
    skipped: dict[str, str] = {}
    for name in names:
        entry = ROUTERS[name]
        try:
            routers.extend((router, entry.kind) for router in entry.build(name, ctx))
        except RouterUnavailable as exc:
            skipped[name] = str(exc)
    return routers, skipped
