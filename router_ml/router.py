"""The router a gateway embeds: request → policy rules → learned model → tier decision.

``Router`` holds no per-request state, so one instance serves any number of threads: the request
is parsed into local objects, the feature extractor is stateless, and onnxruntime sessions are
safe to run concurrently.
"""

from __future__ import annotations

import logging
import os
import time
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from router_ml.calibration import choose_tier
from router_ml.coverage import CoverageRule
from router_ml.errors import InvalidRequest, shown
from router_ml.features import FeatureExtractor
from router_ml.model import OperatingPoint, TierModel
from router_ml.policy import AUTO, Policy, Rule
from router_ml.request import ChatRequest, parse_request
from router_ml.tiers import TIERS, at_least
from router_ml.tokenizer import TokenCounter

logger = logging.getLogger("router_ml.router")

FALLBACK_SOURCE = "fallback"
"""``Decision.source`` of a decision made by the safe-tier fallback, not by the policy or model."""

RequestLike = ChatRequest | dict[str, Any] | str | bytes
_WARM_UP_REQUEST = {
    "messages": [
        {"role": "system", "content": "You are a helpful assistant."},
        {"role": "user", "content": "Summarize the following text in one sentence: warm-up. " * 20},
    ],
    "tools": [{"type": "function", "function": {"name": "f", "parameters": {"type": "object"}}}],
}


@dataclass(frozen=True, slots=True)
class Decision:
    """Which tier and model serve a request, and why."""

    tier: str
    model: str
    source: str
    """``"rule:<name>"`` when a policy rule matched, ``"auto"`` when the learned model decided
    unprompted, ``"default"`` when the policy's fixed default tier did."""
    probabilities: dict[str, float] = field(default_factory=dict)
    """Calibrated P(label = tier) from the model; empty when a rule decided without it."""
    latency_us: float = 0.0
    reason: str = ""
    features: np.ndarray | None = field(default=None, repr=False, compare=False)
    """The feature vector the model saw (None when the policy decided without the model), so a
    gateway can log it without extracting twice. Not part of ``to_dict``."""
    cascade: tuple[str, ...] = ()
    """Tiers to try in order when a policy rule asked for a cascade (``tier`` is the first);
    a gateway with answer gates steps along it. Empty for a plain decision."""
    ood: float | None = None
    """How far outside the training traffic the request lies (``router_ml.coverage``): 0 inside,
    towards 1 far outside; None when the model decided nothing or has no coverage ranges. When it
    reached the coverage threshold, ``probabilities`` are those after the escalation."""

    def to_dict(self) -> dict[str, Any]:
        data = {
            "tier": self.tier,
            "model": self.model,
            "source": self.source,
            "probabilities": {tier: round(p, 6) for tier, p in self.probabilities.items()},
            "latency_us": round(self.latency_us, 1),
            "reason": self.reason,
            "ood": None if self.ood is None else round(self.ood, 4),
        }
        if self.cascade:
            data["cascade"] = list(self.cascade)
        return data


class Router:
    """Routes chat requests to a tier with a policy in front of a learned, calibrated model.

    Parameters
    ----------
    model : TierModel
        The loaded ONNX tier model.
    policy : Policy
        Tier → model map and rules; ``default: auto`` defers to ``model``.
    operating_point : str, float or None
        A stored operating point name, a target under-routing rate (the stored point with the
        largest target not above it), or None for the model's default.
    thresholds : (float, float) or None
        Explicit risk thresholds for economy and standard; overrides ``operating_point``.
    coverage : CoverageRule, mapping or None
        What to do with requests outside the training traffic (``{enabled, threshold,
        escalate_to}``); None takes the policy's ``coverage`` section, else the default rule
        (escalate to the top tier at the model's calibrated threshold).
    """

    def __init__(
        self,
        model: TierModel,
        policy: Policy,
        operating_point: str | float | None = None,
        thresholds: Sequence[float] | None = None,
        coverage: CoverageRule | Mapping[str, Any] | None = None,
    ) -> None:
        self.model = model
        self.policy = policy
        self.coverage_rule = CoverageRule.from_config(
            coverage if coverage is not None else policy.coverage
        )
        self._coverage = model.coverage
        self._ood_threshold = (
            self.coverage_rule.threshold_for(model.coverage) if model.coverage is not None else 1.0
        )
        if thresholds is not None:
            values = tuple(float(t) for t in thresholds)
            if len(values) != len(TIERS) - 1 or not all(0.0 <= t <= 1.0 for t in values):
                raise ValueError(
                    f"thresholds must be {len(TIERS) - 1} numbers in [0, 1], "
                    f"got {shown(thresholds)}"
                )
            self.operating_point = OperatingPoint("custom", None, values, {})  # type: ignore[arg-type]
        else:
            self.operating_point = model.operating_point(operating_point)
        self.thresholds = tuple(self.operating_point.thresholds)
        self._thresholds_by_point: dict[str | float, tuple[float, ...]] = {}
        self._counter = TokenCounter()
        self._extractor = FeatureExtractor(self._counter, model.text_embedding)
        # The first extraction pays for lazy allocations (tokenizer, regex caches); pay it here,
        # not on a client's request (TierModel.load already warmed the ONNX session).
        self._extractor.extract(_WARM_UP_REQUEST)

    @classmethod
    def load(
        cls,
        model_dir: str | os.PathLike[str] | None = None,
        policy: str | os.PathLike[str] | Mapping[str, Any] | Policy | None = None,
        operating_point: str | float | None = None,
        thresholds: Sequence[float] | None = None,
        coverage: CoverageRule | Mapping[str, Any] | None = None,
    ) -> Router:
        """Load a model directory and a policy (None for either: the shipped default)."""
        loaded_policy = policy if isinstance(policy, Policy) else Policy.load(policy)
        return cls(TierModel.load(model_dir), loaded_policy, operating_point, thresholds, coverage)

    @property
    def tiers(self) -> Mapping[str, str]:
        return self.policy.tiers

    @property
    def ood_threshold(self) -> float | None:
        """The ``ood`` score at which this router treats a request as out of distribution.

        None when the model stores no coverage (its decisions carry no ``ood`` score). Gateways and
        ``router-ml drift`` count a decision as out of distribution by this same cutoff.
        """
        return self._ood_threshold if self._coverage is not None else None

    @property
    def token_counter(self) -> TokenCounter:
        """The router's token counter (o200k, memoised), for callers that count tokens too."""
        return self._counter

    def features(self, request: RequestLike) -> np.ndarray:
        """The feature vector the model would see for ``request`` (same extractor as ``route``).

        A gateway that logs features calls this instead of building a second extractor.
        """
        return self._extractor.extract_parsed(parse_request(request))

    def thresholds_for(self, operating_point: str | float | None) -> tuple[float, ...]:
        """The risk thresholds of a stored operating point (None: the router's own).

        Raises ``ValueError`` for a point the model does not have, so a per-request override
        can be answered with a 400 naming it.
        """
        if operating_point is None:
            return self.thresholds
        cached = self._thresholds_by_point.get(operating_point)
        if cached is None:
            cached = tuple(self.model.operating_point(operating_point).thresholds)
            if len(self._thresholds_by_point) < 64:  # bounded: clients choose the key
                self._thresholds_by_point[operating_point] = cached
        return cached

    def route(
        self,
        request: RequestLike,
        operating_point: str | float | None = None,
        repeated: bool = False,
    ) -> Decision:
        """Decide the tier of one request; raises ``InvalidRequest`` if it is malformed.

        ``operating_point`` overrides the router's for this request only; ``repeated`` tells the
        policy's ``retry`` key that the caller saw this same request moments ago.
        """
        start = time.perf_counter_ns()
        thresholds = self.thresholds_for(operating_point)
        parsed = parse_request(request)
        tier, rule = self.policy.decide(parsed, self._counter.count, repeated)
        if tier != AUTO:
            return self._policy_decision(tier, rule, start)
        features = self._extractor.extract_parsed(parsed)
        probabilities = self.model.predict_proba(features[None, :])[0].tolist()
        risks = self.model.calibrator.risk_row(probabilities)
        return self._auto_decision(risks, rule, start, features, thresholds)

    def route_or_safe(
        self,
        request: RequestLike,
        operating_point: str | float | None = None,
        repeated: bool = False,
    ) -> Decision:
        """Like ``route``, but a routing failure that is not the request's fault is served.

        This is the one safe-tier fallback every gateway uses (the HTTP gateway, the LiteLLM
        hook). ``InvalidRequest`` propagates: a malformed request is the caller's to fix. Any other
        error is told apart by routing a known-good probe request: if the probe routes, the
        failure is specific to this request's content, so it is refused as ``InvalidRequest``
        (field ``body``) — a client must never buy the safe (most capable) tier by sending input
        that breaks routing. If the probe fails too, the router itself is broken and the request
        gets the policy's safe tier with ``source="fallback"``. Both are logged at error level.
        """
        try:
            return self.route(request, operating_point, repeated)
        except InvalidRequest:
            raise
        except Exception as exc:
            cause = f"{type(exc).__name__}: {exc}"[:300]
            if self._probe_routes():
                logger.error("routing failed on one request's content; refused (%s)", cause)
                raise InvalidRequest("body", f"request cannot be routed ({cause})") from exc
            logger.exception("routing failed; using the safe tier %s", self.policy.safe_tier)
            safe = self.policy.safe_tier
            return Decision(
                safe,
                self.policy.tiers[safe],
                FALLBACK_SOURCE,
                reason=f"routing error ({cause}); safe tier {safe}",
            )

    def _probe_routes(self) -> bool:
        """Whether the router still routes a known-good request."""
        try:
            self.route(_WARM_UP_REQUEST)
        except Exception:
            return False
        return True

    def route_batch(self, requests: Iterable[RequestLike]) -> list[Decision]:
        """Decide many requests with one model call; raises ``InvalidRequest`` on a bad one.

        ``latency_us`` of each decision is the batch's total time divided evenly.
        """
        start = time.perf_counter_ns()
        parsed = [parse_request(r) for r in requests]
        verdicts = [self.policy.decide(request, self._counter.count) for request in parsed]
        auto_rows = [i for i, (tier, _) in enumerate(verdicts) if tier == AUTO]
        risks: dict[int, list[float]] = {}
        rows: dict[int, np.ndarray] = {}
        if auto_rows:
            features = np.vstack([self._extractor.extract_parsed(parsed[i]) for i in auto_rows])
            risks = dict(zip(auto_rows, self.model.risks(features).tolist(), strict=True))
            rows = dict(zip(auto_rows, features, strict=True))
        decisions = [
            self._auto_decision(risks[i], rule, start, rows[i])
            if tier == AUTO
            else self._policy_decision(tier, rule, start)
            for i, (tier, rule) in enumerate(verdicts)
        ]
        per_request = (time.perf_counter_ns() - start) / 1e3 / max(len(parsed), 1)
        return [_with_latency(d, per_request) for d in decisions]

    def risks(
        self, requests: Iterable[RequestLike], operating_point: str | float | None = None
    ) -> np.ndarray:
        """P(needs more than economy), P(needs more than standard) per request, as decided.

        The calibrated model risks, raised by the coverage rule where a request lies outside the
        training traffic (``CoverageRule.escalate``, relative to the thresholds of
        ``operating_point``, None: the router's own): ranking by these ranks as the router routes,
        and ``choose_tiers`` with those thresholds gives the router's tiers.
        """
        features = self._extractor.extract_many(parse_request(r) for r in requests)
        return self.risks_of_features(features, operating_point)

    def risks_of_features(
        self, features: np.ndarray, operating_point: str | float | None = None
    ) -> np.ndarray:
        """``risks`` of feature rows already extracted by ``features``."""
        risks = self.model.risks(features)
        if self._coverage is None or not self.coverage_rule.enabled:
            return risks
        thresholds = self.thresholds_for(operating_point)
        for i, ood in enumerate(self._coverage.scores(features).tolist()):
            if ood >= self._ood_threshold:
                risks[i] = self.coverage_rule.escalate(risks[i].tolist(), thresholds, ood)
        return risks
        for i, ood in enumerate(self._coverage.scores(features).tolist()):
            if ood >= self._ood_threshold:
                risks[i] = self.coverage_rule.escalate(risks[i].tolist(), self.thresholds, ood)
        return risks

    def _policy_decision(self, tier: str, rule: Rule | None, start_ns: int) -> Decision:
        cascade = self.policy.cascade_of(rule)
        reason = rule.describe() if rule is not None else f"policy default tier {tier}"
        if cascade:
            reason += f"; cascade {' → '.join(cascade)}"
        return Decision(
            tier=tier,
            model=self.policy.tiers[tier],
            source=f"rule:{rule.name}" if rule is not None else "default",
            latency_us=(time.perf_counter_ns() - start_ns) / 1e3,
            reason=reason,
            cascade=cascade,
        )

    def _auto_decision(
        self,
        risks: list[float],
        rule: Rule | None,
        start_ns: int,
        features: np.ndarray | None = None,
        thresholds: Sequence[float] | None = None,
    ) -> Decision:
        thresholds = self.thresholds if thresholds is None else thresholds
        ood = None
        flagged = False
        if self._coverage is not None and features is not None:
            ood = self._coverage.score(features)
            flagged = self.coverage_rule.enabled and ood >= self._ood_threshold
        model_tier = choose_tier(risks, thresholds)
        reason = self._explain(risks, model_tier, thresholds)
        if flagged:
            assert features is not None and self._coverage is not None and ood is not None
            risks = self.coverage_rule.escalate(risks, thresholds, ood)
            outside = ", ".join(self._coverage.out_of_range(features))
            reason += (
                f"; out of training range (ood={ood:.2f} >= {self._ood_threshold:.2f}: "
                f"{outside}) → {TIERS[choose_tier(risks, thresholds)]}"
            )
        tier_index = choose_tier(risks, thresholds)
        chosen = TIERS[tier_index]
        floor = self.policy.floor_of(rule)
        tier = chosen if floor is None else at_least(chosen, floor)
        if tier != chosen:
            which = f"rule '{rule.name}'" if rule is not None else "the policy default"
            reason += f"; raised to {tier} by {which} (min_tier {floor})"
        above = [1.0, *risks, 0.0]
        return Decision(
            tier=tier,
            model=self.policy.tiers[tier],
            source=f"rule:{rule.name}" if rule is not None else "auto",
            probabilities={t: above[k] - above[k + 1] for k, t in enumerate(TIERS)},
            latency_us=(time.perf_counter_ns() - start_ns) / 1e3,
            reason=reason,
            features=features,
            ood=ood,
        )

    def _explain(self, risks: Sequence[float], tier_index: int, thresholds: Sequence[float]) -> str:
        shown = [
            f"P(needs > {TIERS[k]})={_comparison(risks[k], k == tier_index, thresholds[k])}"
            for k in range(min(tier_index + 1, len(risks)))
        ]
        return f"{'; '.join(shown)} → {TIERS[tier_index]}"


def _comparison(risk: float, below: bool, threshold: float) -> str:
    """``risk < threshold`` (or ``>=``) with just enough decimals that it holds as printed.

    Two decimals read best, but 0.1496 and 0.1502 both print as 0.15, and "0.15 < 0.15" reads
    as a bug; so decimals are added until the printed numbers compare like the real ones.
    """
    for decimals in range(2, 17):
        shown_risk, shown_threshold = f"{risk:.{decimals}f}", f"{threshold:.{decimals}f}"
        a, b = float(shown_risk), float(shown_threshold)
        if (a < b) if below else (a >= b):
            break
    else:
        shown_risk, shown_threshold = repr(risk), repr(threshold)
    return f"{shown_risk} {'<' if below else '>='} {shown_threshold}"


def _with_latency(decision: Decision, latency_us: float) -> Decision:
    return Decision(
        decision.tier,
        decision.model,
        decision.source,
        decision.probabilities,
        latency_us,
        decision.reason,
        decision.features,
        decision.cascade,
        decision.ood,
    )
