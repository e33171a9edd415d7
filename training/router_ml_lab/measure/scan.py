"""One partition → compact per-request arrays: the heavy work of analyze, drift and batch routing.

Parsing, tokenising, feature extraction and the model call happen here, once per request, in
whichever process scans the partition (this one or a Dask worker); what comes back is a few
numbers per request (features, risks, tiers, tokens), so the aggregation that follows is cheap
and identical whichever path produced the arrays.

Request records are routed by the current router (policy rules, then the model): the tier under
the current policy is the router's own decision, and the risks kept for re-thresholding at other
operating points are the ones behind that decision's probabilities. Decision-log lines without
the prompt carry their feature vector: the model re-scores it, and requests a rule decided keep
the logged tier (rules need the text). Lines with a logged prompt are re-routed
like request records. Upstream token usage, when logged, replaces the token estimates.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

import numpy as np

from router_ml.calibration import choose_tiers
from router_ml.errors import InvalidRequest
from router_ml.features import FEATURE_SCHEMA, N_FEATURES
from router_ml.pricing import billed_input_tokens, estimated_tokens, expected_output_tokens
from router_ml.request import ChatRequest, parse_request
from router_ml.router import Decision, Router
from router_ml.tiers import TIERS
from router_ml_lab.measure.dataset import ReadIssues, read_partition

CHUNK = 512
"""Requests routed per model call: large enough to amortise the call, small enough for memory."""


@dataclass(frozen=True)
class RouterSettings:
    """How to load the router; picklable, so Dask workers load the same one."""

    model_dir: str | None = None
    policy: str | None = None
    operating_point: str | float | None = None


_ROUTERS: dict[RouterSettings, Router] = {}
_ROUTERS_LOCK = threading.Lock()


def load_router(settings: RouterSettings) -> Router:
    """The router for ``settings``, loaded once per process (a Dask worker reuses it)."""
    with _ROUTERS_LOCK:
        router = _ROUTERS.get(settings)
        if router is None:
            router = _ROUTERS[settings] = Router.load(
                settings.model_dir, settings.policy, settings.operating_point
            )
        return router


@dataclass
class PartitionScan:
    """Per-request arrays of one partition (or of several, concatenated in partition order)."""

    ids: list[str]
    features: np.ndarray
    """``(n, N_FEATURES)`` float32, the model's own feature vectors."""
    risks: np.ndarray
    """``(n, 2)`` calibrated P(needs more than economy / standard)."""
    tiers: np.ndarray
    """Index into TIERS chosen under the current policy and operating point."""
    auto: np.ndarray
    """True where the model decided (operating points apply), False where a rule fixed the tier."""
    floors: np.ndarray
    """Index of the lowest tier the policy allows (a rule's or the default's ``min_tier``)."""
    input_tokens: np.ndarray
    output_tokens: np.ndarray
    served_models: list[str | None]
    """The model that answered (decision logs), None for request records."""
    served_tiers: list[str | None]
    times: np.ndarray
    """Epoch seconds of logged requests, NaN for request records."""
    ood: np.ndarray
    """The router's out-of-distribution score when it exposes one (``Decision.ood``), else NaN."""
    embeddings: np.ndarray | None = None
    """The model's text representation, when the router exposes one (``Router.embeddings``)."""
    issues: ReadIssues = field(default_factory=ReadIssues)
    partitions: int = 1

    def __len__(self) -> int:
        return len(self.ids)

    @classmethod
    def concat(cls, scans: list[PartitionScan]) -> PartitionScan:
        """The scans joined in the given order (the order of the partitions)."""
        issues = ReadIssues()
        for scan in scans:
            issues.merge(scan.issues)
        embedded = [s.embeddings for s in scans if len(s)]
        embeddings = (
            np.vstack(embedded) if embedded and all(e is not None for e in embedded) else None
        )
        return cls(
            ids=[i for s in scans for i in s.ids],
            features=_stack([s.features for s in scans], (0, N_FEATURES), np.float32),
            risks=_stack([s.risks for s in scans], (0, len(TIERS) - 1), np.float64),
            tiers=_cat([s.tiers for s in scans], np.int64),
            auto=_cat([s.auto for s in scans], bool),
            floors=_cat([s.floors for s in scans], np.int64),
            input_tokens=_cat([s.input_tokens for s in scans], np.float64),
            output_tokens=_cat([s.output_tokens for s in scans], np.float64),
            served_models=[m for s in scans for m in s.served_models],
            served_tiers=[t for s in scans for t in s.served_tiers],
            times=_cat([s.times for s in scans], np.float64),
            ood=_cat([s.ood for s in scans], np.float64),
            embeddings=embeddings,
            issues=issues,
            partitions=sum(s.partitions for s in scans),
        )


@dataclass
class _Row:
    """One usable record before the batched model call."""

    id: str
    parsed: ChatRequest | None = None
    features: np.ndarray | None = None
    logged_tier: str | None = None
    logged_auto: bool = True
    usage: tuple[float, float] | None = None
    served_model: str | None = None
    served_tier: str | None = None
    time: float = float("nan")
    ood: float = float("nan")


def scan_partition(
    path: str | Path,
    settings: RouterSettings,
    on_records: Callable[[int], None] | None = None,
) -> PartitionScan:
    """Read, route and measure every usable record of one partition file."""
    router = load_router(settings)
    issues = ReadIssues()
    scans = [_scan_chunk(router, chunk) for chunk in _chunks(_rows(path, issues), on_records)]
    scan = PartitionScan.concat(scans) if scans else _empty()
    scan.issues = issues
    scan.partitions = 1
    return scan


def _rows(path: str | Path, issues: ReadIssues) -> Iterator[_Row]:
    name = Path(path).name
    for record in read_partition(path, issues):
        where = f"{name}:{record.get('_line', '?')}"
        try:
            row = _row(record)
        except (InvalidRequest, ValueError, TypeError, KeyError) as exc:
            issues.add(where, str(exc))
            continue
        if row is not None:
            yield row


def _row(record: dict[str, Any]) -> _Row | None:
    """A request record or a decision-log line as a row; None for log lines with nothing to
    measure (requests rejected before routing)."""
    is_log = "decision" in record or "endpoint" in record
    record_id = str(record.get("id", record.get("_line")))
    if not is_log:
        body = record.get("request", record)
        return _Row(record_id, parsed=parse_request(body))
    decision = record.get("decision")
    shadow = record.get("shadow")
    decided = decision if isinstance(decision, dict) else shadow if isinstance(shadow, dict) else {}
    row = _Row(
        record_id,
        logged_tier=decided.get("tier"),
        # a rule's min_tier is not logged: only the model's own decisions move with the
        # operating point; a rule-decided line keeps its logged tier
        logged_auto=bool(decided.get("probabilities")) and decided.get("source") == "auto",
        served_model=record.get("model"),
        served_tier=record.get("tier"),
        time=_epoch(record.get("time")),
        ood=float(decided["ood"]) if isinstance(decided.get("ood"), int | float) else float("nan"),
    )
    usage = record.get("usage")
    if isinstance(usage, dict) and isinstance(usage.get("prompt_tokens"), int | float):
        row.usage = (float(usage["prompt_tokens"]), float(usage.get("completion_tokens") or 0))
    if isinstance(record.get("request"), dict):
        row.parsed = parse_request(record["request"])
        return row
    features = record.get("features")
    if features is None:
        return None
    if record.get("feature_schema") not in (None, FEATURE_SCHEMA.hash):
        raise ValueError(
            f"features of schema {record.get('feature_schema')} (this runtime: "
            f"{FEATURE_SCHEMA.hash}); analyze it with the router version that logged it"
        )
    vector = np.asarray(features, dtype=np.float32)
    if vector.shape != (N_FEATURES,) or not np.isfinite(vector).all():
        raise ValueError(f"expected {N_FEATURES} finite features, got shape {vector.shape}")
    if row.logged_tier not in TIERS:
        raise ValueError(f"logged decision has no known tier ({row.logged_tier!r})")
    row.features = vector
    return row


def _chunks(rows: Iterable[_Row], on_records: Callable[[int], None] | None) -> Iterator[list[_Row]]:
    chunk: list[_Row] = []
    for row in rows:
        chunk.append(row)
        if len(chunk) == CHUNK:
            yield chunk
            if on_records:
                on_records(len(chunk))
            chunk = []
    if chunk:
        yield chunk
        if on_records:
            on_records(len(chunk))


def _scan_chunk(router: Router, rows: list[_Row]) -> PartitionScan:
    routed = [i for i, r in enumerate(rows) if r.parsed is not None]
    decisions: dict[int, Decision] = dict(
        zip(routed, router.route_batch([rows[i].parsed for i in routed]), strict=True)
    )
    features = np.zeros((len(rows), N_FEATURES), dtype=np.float32)
    for i, row in enumerate(rows):
        if i in decisions:
            vector = decisions[i].features
            features[i] = router.features(row.parsed) if vector is None else vector
        else:
            features[i] = row.features
    risks = router.model_risks(features).astype(np.float64)
    tiers = np.zeros(len(rows), dtype=np.int64)
    auto = np.zeros(len(rows), dtype=bool)
    floors = np.zeros(len(rows), dtype=np.int64)
    ood = np.array([r.ood for r in rows], dtype=np.float64)
    for i, row in enumerate(rows):
        if i in decisions:
            decision = decisions[i]
            tiers[i] = TIERS.index(decision.tier)
            auto[i] = bool(decision.probabilities)
            if auto[i]:
                floors[i] = _floor(router, row.parsed)
                risks[i] = _risks_of(decision.probabilities)
            score = getattr(decision, "ood", None)
            if isinstance(score, int | float):
                ood[i] = float(score)
        else:
            auto[i] = row.logged_auto
            tiers[i] = TIERS.index(row.logged_tier)  # type: ignore[arg-type]
    rescored = auto & np.array([i not in decisions for i in range(len(rows))], dtype=bool)
    if rescored.any():  # logged features without the prompt: the current model re-scores them
        tiers[rescored] = choose_tiers(risks[rescored], router.thresholds)
    default_output = router.model.contract.output_tokens_default
    input_tokens, output_tokens = estimated_tokens(features, default_output)
    for i, row in enumerate(rows):
        if row.usage is not None:
            input_tokens[i], output_tokens[i] = row.usage
        elif row.parsed is not None:  # the request is at hand: count it as evaluation does
            input_tokens[i] = billed_input_tokens(row.parsed, router.token_counter)
            output_tokens[i] = expected_output_tokens(row.parsed, default_output)
    return PartitionScan(
        ids=[r.id for r in rows],
        features=features,
        risks=risks,
        tiers=tiers,
        auto=auto,
        floors=floors,
        input_tokens=input_tokens.astype(np.float64),
        output_tokens=output_tokens.astype(np.float64),
        served_models=[r.served_model for r in rows],
        served_tiers=[r.served_tier for r in rows],
        times=np.array([r.time for r in rows], dtype=np.float64),
        ood=ood,
        embeddings=_text_representation(router, [rows[i].parsed for i in routed], len(rows)),
    )


def _risks_of(probabilities: dict[str, float]) -> np.ndarray:
    """The cumulative risks behind a decision's tier probabilities (whatever the router did to
    them, e.g. an out-of-distribution escalation, is in them)."""
    return np.array([1.0 - probabilities[TIERS[0]], probabilities[TIERS[-1]]], dtype=np.float64)


def _floor(router: Router, parsed: ChatRequest | None) -> int:
    """The policy's ``min_tier`` for a request the model decides (0: no floor)."""
    assert parsed is not None
    _, rule = router.policy.decide(parsed, router.token_counter.count)
    floor = router.policy.floor_of(rule)
    return 0 if floor is None else TIERS.index(floor)


def _text_representation(
    router: Router, parsed: list[ChatRequest | None], n_rows: int
) -> np.ndarray | None:
    """The router's text representation of every row, if it has one and every row has text."""
    embed = getattr(router, "embeddings", None)
    if not callable(embed) or len(parsed) != n_rows or not n_rows:
        return None
    return np.asarray(embed(parsed), dtype=np.float64)


def _epoch(value: Any) -> float:
    if not isinstance(value, str):
        return float("nan")
    try:
        return datetime.fromisoformat(value.replace("Z", "+00:00")).timestamp()
    except ValueError:
        return float("nan")


def _empty() -> PartitionScan:
    return PartitionScan.concat([])


def _stack(parts: list[np.ndarray], empty: tuple[int, int], dtype: Any) -> np.ndarray:
    parts = [p for p in parts if len(p)]
    return np.vstack(parts).astype(dtype) if parts else np.zeros(empty, dtype=dtype)


def _cat(parts: list[np.ndarray], dtype: Any) -> np.ndarray:
    parts = [p for p in parts if len(p)]
    return np.concatenate(parts).astype(dtype) if parts else np.zeros(0, dtype=dtype)
