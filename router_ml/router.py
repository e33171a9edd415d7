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
from router_ml.features import (
    FEATURE_INDEX,
    KIND_FEATURES,
    THREAD_KIND_FEATURES,
    FeatureExtractor,
    thread_reading,
)
from router_ml.model import OperatingPoint, TierModel
from router_ml.policy import AUTO, Policy, Rule
from router_ml.request import ChatRequest, parse_request
from router_ml.task_kinds import TaskTable, TaskVerdict
from router_ml.tiers import TIERS, at_least, tier_rank
from router_ml.tokenizer import TokenCounter, get_encoding

logger = logging.getLogger("router_ml.router")

FALLBACK_SOURCE = "fallback"
"""``Decision.source`` of a decision made by the safe-tier fallback, not by the policy or model."""

RequestLike = ChatRequest | dict[str, Any] | str | bytes
_KIND_SLICE = slice(FEATURE_INDEX[KIND_FEATURES[0]], FEATURE_INDEX[KIND_FEATURES[-1]] + 1)
_THREAD_TOKENS = FEATURE_INDEX["thread_tokens_last_user"]
_THREAD_KIND_SLICE = slice(
    FEATURE_INDEX[THREAD_KIND_FEATURES[0]], FEATURE_INDEX[THREAD_KIND_FEATURES[-1]] + 1
)
_TOOL_COLUMNS = tuple(FEATURE_INDEX[n] for n in ("n_tools", "n_tool_calls", "n_tool_results"))
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
    task_kind: str | None = None
    """The task kind whose tier the policy's task table applied (``router_ml.task_kinds``), None
    when the table left the decision to the model."""

    def to_dict(self) -> dict[str, Any]:
        data = {
            "tier": self.tier,
            "model": self.model,
            "source": self.source,
            "probabilities": {tier: round(p, 6) for tier, p in self.probabilities.items()},
            "latency_us": round(self.latency_us, 1),
            "reason": self.reason,
            "ood": None if self.ood is None else round(self.ood, 4),
            "task_kind": self.task_kind,
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
        self.task_table = policy.task_table
        self._reads_kinds = model.text_embedding is not None and model.text_embedding.reads_kinds
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
        # The tokenizer first: building it is the load's memory peak (tiktoken's rank dict beside
        # its Rust core's copy, the dict then dropped), so it happens before the model and the
        # text table are resident and the process's high-water mark stays the tokenizer's.
        get_encoding()
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
        rows = features[None, :]
        if features[_THREAD_TOKENS] > 0:  # model_risks, in one model call and no array maths
            rows = np.vstack([rows, thread_reading(rows)[1]])
        probabilities = self.model.predict_proba(rows).tolist()
        risks = self.model.calibrator.risk_row(probabilities[0])
        if len(probabilities) > 1:
            thread = self.model.calibrator.risk_row(probabilities[1])
            risks = [max(own, read) for own, read in zip(risks, thread, strict=True)]
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
            risks = dict(zip(auto_rows, self.model_risks(features).tolist(), strict=True))
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
        risks = self.model_risks(features)
        thresholds = self.thresholds_for(operating_point)
        for i, row in enumerate(features):
            risks[i] = self._adjusted(risks[i].tolist(), row, thresholds).risks
        return risks

    def model_risks(self, features: np.ndarray) -> np.ndarray:
        """The model's calibrated risks ``(n, 2)`` of feature rows, the higher of two readings
        where a row continues a thread: as it is, and with the thread's user text as its last
        turn (``features.thread_reading``). Escalation bias: an unrelated earlier turn can only
        raise a decision, and a follow-up is judged with the material it refers to."""
        rows, read = thread_reading(features)
        if not rows.size:
            return self.model.risks(features)
        both = self.model.risks(np.vstack([features, read]))  # one model call for both readings
        risks = both[: len(features)]
        risks[rows] = np.maximum(risks[rows], both[len(features) :])
        return risks

    def bounded_risks(self, features: np.ndarray) -> np.ndarray:
        """The model's calibrated risks with each row's ``tier_bounds`` imposed, free of thresholds.

        Below a row's floor the risks become 1 (never accepted), from its ceiling on 0 (accepted
        by any positive threshold): choosing thresholds on these (training's operating points,
        ``router-ml calibrate``) chooses them on the tiers this router gives, coverage rule and
        task table included.
        """
        risks = np.array(self.model_risks(features), dtype=np.float64)
        bounds = self.tier_bounds(features)
        for k in range(risks.shape[1]):
            risks[bounds[:, 0] > k, k] = 1.0
            risks[bounds[:, 1] <= k, k] = 0.0
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

    def _adjusted(
        self, risks: list[float], features: np.ndarray, thresholds: Sequence[float]
    ) -> _Adjusted:
        """The model's risks after the coverage rule and the task table, in that order.

        A request outside covered ground escalates (``CoverageRule``); the task table then raises
        a kind the product sends up, or caps a value kind, but never caps a flagged request. The
        one path both ``route`` and ``risks`` take, so rankings and decisions agree.
        """
        ood, flagged, verdict = self._constraints(features)
        escalated_tier = None
        if flagged:
            assert ood is not None
            risks = self.coverage_rule.escalate(risks, thresholds, ood)
            escalated_tier = TIERS[choose_tier(risks, thresholds)]
        if verdict is not None:
            risks = TaskTable.apply(verdict, risks, thresholds)
        return _Adjusted(risks, ood, escalated_tier, verdict)

    def _constraints(self, features: np.ndarray) -> tuple[float | None, bool, TaskVerdict | None]:
        """The row's ``ood``, whether the coverage rule flags it, and the task table's verdict."""
        ood = None
        flagged = False
        if self._coverage is not None:
            ood = self._coverage.score(features)
            flagged = self.coverage_rule.enabled and ood >= self._ood_threshold
        verdict = None
        if self.task_table.enabled and self._reads_kinds:
            uses_tools = any(features[j] for j in _TOOL_COLUMNS)
            verdict = self.task_table.verdict(
                features[_KIND_SLICE], uses_tools, flagged, features[_THREAD_KIND_SLICE]
            )
        return ood, flagged, verdict

    def tier_bounds(self, features: np.ndarray) -> np.ndarray:
        """Per feature row, the least and most capable tier index the rules leave to the model.

        ``(n, 2)``: the coverage rule and a raising task kind set the floor, a value kind the
        ceiling. Whatever the (positive) thresholds, the router's tier is the model's clipped
        into these bounds.
        """
        bounds = np.zeros((len(features), 2), dtype=np.int64)
        bounds[:, 1] = len(TIERS) - 1
        for i, row in enumerate(features):
            _, flagged, verdict = self._constraints(row)
            if flagged:
                bounds[i, 0] = tier_rank(self.coverage_rule.escalate_to)
            if verdict is not None and verdict.action == "raise":
                bounds[i, 0] = max(bounds[i, 0], tier_rank(verdict.tier))
            elif verdict is not None:
                bounds[i, 1] = tier_rank(verdict.tier)
        return bounds

    def _auto_decision(
        self,
        risks: list[float],
        rule: Rule | None,
        start_ns: int,
        features: np.ndarray | None = None,
        thresholds: Sequence[float] | None = None,
    ) -> Decision:
        thresholds = self.thresholds if thresholds is None else thresholds
        model_risks = risks
        adjusted = None
        if features is not None:
            adjusted = self._adjusted(risks, features, thresholds)
            risks = adjusted.risks
        chosen = TIERS[choose_tier(risks, thresholds)]
        floor = self.policy.floor_of(rule)
        tier = chosen if floor is None else at_least(chosen, floor)
        above = [1.0, *risks, 0.0]
        return Decision(
            tier=tier,
            model=self.policy.tiers[tier],
            source=f"rule:{rule.name}" if rule is not None else "auto",
            probabilities={t: above[k] - above[k + 1] for k, t in enumerate(TIERS)},
            latency_us=(time.perf_counter_ns() - start_ns) / 1e3,
            reason=self._reason(
                model_risks, thresholds, features, adjusted, rule, floor, chosen, tier
            ),
            features=features,
            ood=None if adjusted is None else adjusted.ood,
            task_kind=adjusted.verdict.kind if adjusted and adjusted.verdict else None,
        )

    def _reason(
        self,
        risks: Sequence[float],
        thresholds: Sequence[float],
        features: np.ndarray | None,
        adjusted: _Adjusted | None,
        rule: Rule | None,
        floor: str | None,
        chosen: str,
        tier: str,
    ) -> str:
        """The model's comparison, then each step that moved the decision, in order."""
        model_index = choose_tier(risks, thresholds)
        shown = [
            f"P(needs > {TIERS[k]})={_comparison(risks[k], k == model_index, thresholds[k])}"
            for k in range(min(model_index + 1, len(risks)))
        ]
        reason = f"{'; '.join(shown)} → {TIERS[model_index]}"
        if adjusted is not None and adjusted.escalated_tier is not None:
            assert self._coverage is not None and adjusted.ood is not None
            assert features is not None
            outside = ", ".join(self._coverage.out_of_range(features))
            reason += (
                f"; out of training range (ood={adjusted.ood:.2f} >= {self._ood_threshold:.2f}: "
                f"{outside}) → {adjusted.escalated_tier}"
            )
        if adjusted is not None and adjusted.verdict is not None:
            reason += f"; {adjusted.verdict.describe()}"
        if tier != chosen:
            which = f"rule '{rule.name}'" if rule is not None else "the policy default"
            reason += f"; raised to {tier} by {which} (min_tier {floor})"
        return reason


@dataclass(frozen=True, slots=True)
class _Adjusted:
    risks: list[float]
    ood: float | None
    escalated_tier: str | None
    """The tier the coverage rule escalated to; None when it did not flag the request."""
    verdict: TaskVerdict | None


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
        decision.task_kind,
    )
