"""Join a gateway decision log with judged outcomes and answer-gate verdicts into training traffic.

Retraining on a team's own traffic needs two things: the request (logged only when the operator
opts in with ``decision_log.include_prompts``) and evidence of how well each tier answered it.
Evidence comes from two places:

- **answer gates** (free labels): each attempt in the log line carries ``gate`` ``{"name",
  "passed", "detail"}`` or null. A failed gate says "this tier was not enough for this request"
  (score 0 for that tier); a passed gate says the answer was structurally sound (score 1). Gates
  only check structure (JSON, tool arguments, truncation, refusals), so a judged outcome for the
  same tier always wins over a gate verdict. A pass counts only in a request where a gate also
  failed (the escalation then says which tier fixed it): the gateway gates every answer, so solo
  passes would label nearly every answer economy gave "economy was enough" and teach the router
  its own decisions back. ``gate_passes=True`` (``--gate-passes``) uses them anyway;
- **an outcomes file** (optional), keyed by the request id the gateway returned in
  ``x-router-request-id``:

  - ``{"id": ..., "tier": "standard"}``: a direct label (the cheapest tier that answers well);
  - ``{"id": ..., "outcomes": {"model-a": 1.0, "model-b": 0.0}}``: scores of several models;
  - ``{"id": ..., "score": 0.0}``: the score of the model that served the request.

- **shadow replays** (``shadow.replay_fraction``): a replay line (``endpoint: "shadow.replay"``,
  ``replay_of``: the served request's id) is the same request answered one tier down; its gate
  verdict, and an outcome keyed by the replay's id (a judge scoring the pair), are evidence about
  that tier in the served request's record. Replays are never exported as records of their own.

Served model names (``gpt-4o-mini``, ``o1``) are usually not in the public catalog, so evidence
about a model the gateway serves is written per *tier* (``tier_outcomes: {"economy": 0.0}``): the
log line records which tier each attempt went to, and ``--config`` adds the tier → model map of
the gateway config for models named only in the outcomes file. A model whose tier is known from
neither stays in ``outcomes`` (training then needs it in its catalog) and is warned about.

An optional ``category`` is copied. Nothing is dropped silently: unjoinable log lines are counted
by reason, malformed outcome lines are reported with their line number and skipped (like
``route`` and ``train`` do; beyond ``max_bad_share`` of them the file is refused), and outcomes
that match no log line are counted.
"""

from __future__ import annotations

import json
import math
import os
from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from router_ml.gateway.decision_log import REPLAY_ENDPOINT, log_files
from router_ml.safe_yaml import load_yaml_file
from router_ml.tiers import TIERS

MAX_BAD_SHARE = 0.05
"""The share of malformed outcome lines beyond which the file is refused (as in ``train``)."""

PathLike = str | os.PathLike[str]


@dataclass
class OutcomesReport:
    """The outcome lines read and every bad one as ``(path, line_no, reason)``."""

    n_read: int = 0
    bad: list[tuple[str, int, str]] = field(default_factory=list)


@dataclass
class ExportReport:
    """What the join did: records written, where their evidence came from, what was skipped."""

    log_lines: int = 0
    written: int = 0
    skipped: Counter[str] = field(default_factory=Counter)
    unused_outcomes: int = 0
    evidence: Counter[str] = field(default_factory=Counter)
    """Records by the kind of evidence they carry (outcomes file, gates, both)."""
    gate_verdicts: Counter[str] = field(default_factory=Counter)
    """Gate verdicts used, as ``"<tier> failed"`` / ``"<tier> passed"``."""
    unknown_tier_models: Counter[str] = field(default_factory=Counter)
    """Models scored in the outcomes file whose tier neither the log nor the config names."""
    outcomes: OutcomesReport = field(default_factory=OutcomesReport)

    def summary(self) -> str:
        lines = [f"read {self.log_lines} log lines, wrote {self.written} traffic records"]
        lines += [f"  {n} with evidence from {kind}" for kind, n in sorted(self.evidence.items())]
        if self.gate_verdicts:
            verdicts = ", ".join(f"{k} {n}" for k, n in sorted(self.gate_verdicts.items()))
            lines.append(f"  gate verdicts used: {verdicts}")
        lines += [f"  skipped {n}: {reason}" for reason, n in self.skipped.most_common()]
        return "\n".join(lines)

    def warnings(self, limit: int = 10) -> list[str]:
        """What the operator should look at: evidence that could not be joined or used."""
        found = []
        bad = self.outcomes.bad
        if bad:
            found.append(
                f"{len(bad)} of {self.outcomes.n_read} outcome lines are malformed and were "
                "skipped:"
            )
            found += [f"  {path}:{line_no}: {reason}" for path, line_no, reason in bad[:limit]]
            if len(bad) > limit:
                found.append(f"  ... and {len(bad) - limit} more")
        if self.unused_outcomes:
            found.append(
                f"{self.unused_outcomes} outcomes matched no log line (wrong log file, or a "
                "rotated backup already deleted?)"
            )
        for model, n in self.unknown_tier_models.most_common():
            found.append(
                f"model {model!r} ({n} records): its tier is in neither the log nor the gateway "
                "config (pass --config); training rejects it unless the catalog knows it"
            )
        if self.skipped:
            found.append(
                f"{sum(self.skipped.values())} log lines were not exported (reasons above)"
            )
        return found


def read_outcomes(
    path: PathLike, max_bad_share: float = MAX_BAD_SHARE
) -> tuple[dict[str, dict[str, Any]], OutcomesReport]:
    """Outcome lines by request id, and the report of the malformed lines that were skipped.

    A malformed line (bad JSON, missing id, unknown tier, score outside [0, 1], a repeated id) is
    reported with its line number and skipped. Raises ``ValueError`` when more than
    ``max_bad_share`` of the lines are malformed: then the file itself is suspect.
    """
    outcomes: dict[str, dict[str, Any]] = {}
    first_line: dict[str, int] = {}
    report = OutcomesReport()
    with open(path, encoding="utf-8", errors="replace") as handle:
        for line_no, line in enumerate(handle, start=1):
            if not line.strip():
                continue
            report.n_read += 1
            try:
                raw = json.loads(line)
            except json.JSONDecodeError as exc:
                report.bad.append((str(path), line_no, f"malformed JSON: {exc.msg}"))
                continue
            try:
                request_id = _check_outcome(raw)
            except ValueError as exc:
                report.bad.append((str(path), line_no, str(exc)))
                continue
            if request_id in outcomes:
                report.bad.append(
                    (str(path), line_no, f"id {request_id!r} repeats line {first_line[request_id]}")
                )
                continue
            outcomes[request_id] = raw
            first_line[request_id] = line_no
    if report.n_read and len(report.bad) / report.n_read > max_bad_share:
        shown = "\n".join(f"  {p}:{n}: {reason}" for p, n, reason in report.bad[:10])
        raise ValueError(
            f"{path}: {len(report.bad)} of {report.n_read} outcome lines are malformed "
            f"(allowed {max_bad_share:.0%}); is this an outcomes file?\n{shown}"
        )
    return outcomes, report


def _check_outcome(raw: Any) -> str:
    if not isinstance(raw, dict) or not isinstance(raw.get("id"), str) or not raw["id"]:
        raise ValueError("expected an object with a non-empty string id")
    kinds = [k for k in ("tier", "outcomes", "score") if k in raw]
    if len(kinds) != 1:
        raise ValueError(f"expected exactly one of tier, outcomes, score; got {kinds}")
    if "tier" in raw and raw["tier"] not in TIERS:
        raise ValueError(f"tier {raw['tier']!r} is not one of {list(TIERS)}")
    scores = raw.get("outcomes", {"served": raw.get("score", 0.0)})
    if not isinstance(scores, dict) or not scores:
        raise ValueError("outcomes must map model names to scores")
    for model, score in scores.items():
        if (
            isinstance(score, bool)
            or not isinstance(score, int | float)
            or not (math.isfinite(score) and 0.0 <= score <= 1.0)
        ):
            raise ValueError(f"score of {model!r} must be a number in [0, 1], got {score!r}")
    if not isinstance(raw.get("category", ""), str):
        raise ValueError("category must be a string")
    return raw["id"]


def tier_models_from_config(path: PathLike) -> dict[str, str]:
    """Model name → tier from a gateway config's ``tiers`` (or its policy's tier models).

    Only the tier map is read, so exporting needs neither the upstream API keys nor the model.
    """
    from router_ml.gateway.config import GatewayConfigError, _policy

    path = Path(path)
    raw = load_yaml_file(path)  # YamlError is a ValueError naming the file
    tiers = raw.get("tiers") if isinstance(raw, dict) else None
    if not isinstance(tiers, dict):
        raise ValueError(f"{path}: no tiers section")
    models = {
        tier: model
        for tier, section in tiers.items()
        if tier in TIERS
        and isinstance(section, dict)
        and isinstance(model := section.get("model"), str)
        and model
    }
    if set(models) != set(TIERS):
        router = raw.get("router") if isinstance(raw.get("router"), dict) else {}
        try:
            policy = _policy(router.get("policy"), tiers, path.parent)
        except GatewayConfigError as exc:
            raise ValueError(f"{path}: {exc}") from exc
        models = {tier: policy.tiers[tier] for tier in TIERS}
    return {model: tier for tier, model in models.items()}


def export_traffic(
    log_path: PathLike | Sequence[PathLike],
    outcomes_path: PathLike | None,
    out_path: PathLike,
    source: str = "gateway",
    tier_models: Mapping[str, str] | None = None,
    use_gates: bool = True,
    gate_passes: bool = False,
) -> ExportReport:
    """Write a traffic record for every logged request with evidence; returns the report.

    ``log_path`` is the active log, or several (one per worker process); rotated backups
    (``.1``, ``.2``, ...) are read too. ``outcomes_path`` may be None: then gate verdicts are the
    only evidence. ``tier_models`` maps model names to tiers (see :func:`tier_models_from_config`);
    every tier and model the log's attempts name is added to it. The output is written to a
    temporary file and renamed, so a failed export leaves no half file.
    """
    paths = [log_path] if isinstance(log_path, str | os.PathLike) else list(log_path)
    files = []
    for path in paths:
        found = log_files(path)
        if not found:
            raise ValueError(f"{path}: no decision log (or rotated backups) found")
        files += found
    report = ExportReport()
    outcomes: dict[str, dict[str, Any]] = {}
    if outcomes_path is not None:
        outcomes, report.outcomes = read_outcomes(outcomes_path)
    entries = list(_log_entries(files, report))
    model_tiers = dict(tier_models or {})
    for entry in entries:
        for attempt in _attempts(entry):
            model_tiers.setdefault(attempt["model"], attempt["tier"])
    replays: dict[str, list[dict[str, Any]]] = {}
    for entry in entries:
        if entry.get("endpoint") == REPLAY_ENDPOINT and isinstance(entry.get("replay_of"), str):
            replays.setdefault(entry["replay_of"], []).append(entry)
    used: set[str] = set()
    out = Path(out_path)
    partial = out.with_name(out.name + ".partial")
    with open(partial, "w", encoding="utf-8") as sink:
        for entry in entries:
            if entry.get("endpoint") == REPLAY_ENDPOINT:
                continue  # joined into the line of the request it replayed
            lines = [entry, *replays.pop(entry["id"], [])]
            gates = _gate_evidence(lines, gate_passes) if use_gates else {}
            record, reason = _join(lines, outcomes, used, source, model_tiers, gates, report)
            if record is None:
                report.skipped[reason] += 1
                continue
            sink.write(json.dumps(record, ensure_ascii=False) + "\n")
            report.written += 1
    partial.replace(out)
    orphans = sum(len(lines) for lines in replays.values())
    if orphans:
        report.skipped["shadow replay of a request not in the log"] += orphans
    report.unused_outcomes = len(set(outcomes) - used)
    return report


def _log_entries(files: Sequence[Path], report: ExportReport) -> Any:
    for path in files:
        with open(path, encoding="utf-8", errors="replace") as handle:
            for line in handle:
                if not line.strip():
                    continue
                report.log_lines += 1
                try:
                    entry = json.loads(line)
                except json.JSONDecodeError:
                    report.skipped["malformed log line"] += 1
                    continue
                if not isinstance(entry, dict) or not isinstance(entry.get("id"), str):
                    report.skipped["log line without an id"] += 1
                    continue
                yield entry


def _attempts(entry: Mapping[str, Any]) -> list[dict[str, Any]]:
    """The log line's well-formed attempts (tier and model named)."""
    attempts = entry.get("attempts")
    if not isinstance(attempts, list):
        return []
    return [
        a
        for a in attempts
        if isinstance(a, dict) and a.get("tier") in TIERS and isinstance(a.get("model"), str)
    ]


def gate_scores(entry: Mapping[str, Any]) -> dict[str, float]:
    """Tier → 0.0 (a gate failed on that tier's answer) or 1.0 (its gates passed).

    Attempts without a gate verdict (no gate ran, or the call itself failed) are no evidence of
    answer quality and are left out.
    """
    scores: dict[str, float] = {}
    for attempt in _attempts(entry):
        gate = attempt.get("gate")
        if isinstance(gate, dict) and isinstance(gate.get("passed"), bool):
            scores[attempt["tier"]] = 1.0 if gate["passed"] else 0.0
    return scores


def _join(
    lines: list[dict[str, Any]],
    outcomes: Mapping[str, dict[str, Any]],
    used: set[str],
    source: str,
    model_tiers: Mapping[str, str],
    gates: Mapping[str, float],
    report: ExportReport,
) -> tuple[dict[str, Any] | None, str]:
    """One record from a request's log line and its shadow replays (same request, lower tier).

    The served line's own evidence wins over a replay's for the same tier; an outcome keyed by
    a replay's id (a judge scoring the replayed answer) scores the replay's tier.
    """
    entry = lines[0]
    judged_lines = [(line, outcomes[line["id"]]) for line in lines if line["id"] in outcomes]
    if not judged_lines and not gates:
        return None, "no outcome and no gate verdict for the request"
    if entry["id"] in used:
        return None, "duplicate request id in the log"
    request = entry.get("request")
    if not isinstance(request, dict):
        return None, "request text not logged (set decision_log.include_prompts: true)"
    record: dict[str, Any] = {
        "id": entry["id"],
        "source": source,
        "category": next((o.get("category", "") for _, o in judged_lines), ""),
        "request": request,
    }
    tier_outcomes = dict(gates)
    by_model: dict[str, float] = {}
    for line, outcome in reversed(judged_lines):  # the served line's outcome applied last
        judged, reason = _judged(line, outcome, model_tiers, report)
        if reason:
            return None, reason
        tier_outcomes.update(judged.pop("tier_outcomes", {}))
        by_model.update(judged.pop("outcomes", {}))
        record.update(judged)
    if by_model:
        record["outcomes"] = by_model
    if tier_outcomes:
        record["tier_outcomes"] = {t: tier_outcomes[t] for t in TIERS if t in tier_outcomes}
    kinds = [k for k, present in (("outcomes file", judged_lines), ("gates", gates)) if present]
    if len(lines) > 1:
        kinds.append("shadow replays")
    report.evidence[" and ".join(kinds)] += 1
    for tier, score in gates.items():
        report.gate_verdicts[f"{tier} {'passed' if score else 'failed'}"] += 1
    used.update(line["id"] for line in lines)
    return record, ""


def _gate_evidence(lines: Sequence[Mapping[str, Any]], solo_passes: bool) -> dict[str, float]:
    """Gate scores of a request and its replays (the served line wins for the same tier)."""
    gates: dict[str, float] = {}
    for line in reversed(lines):
        gates.update(gate_scores(line))
    if not solo_passes and all(score == 1.0 for score in gates.values()):
        return {}
    return gates


def _judged(
    entry: Mapping[str, Any],
    outcome: Mapping[str, Any],
    model_tiers: Mapping[str, str],
    report: ExportReport,
) -> tuple[dict[str, Any], str]:
    """The outcome line as record fields; a non-empty string says why it cannot be used."""
    if "tier" in outcome:
        return {"tier": outcome["tier"]}, ""
    if "score" in outcome:
        served = entry.get("model") if entry.get("status") == 200 else None
        tier = entry.get("tier") if entry.get("tier") in TIERS else model_tiers.get(served or "")
        if not served:
            return {}, "score given but no model served the request"
        if tier is None:
            report.unknown_tier_models[served] += 1
            return {"outcomes": {served: float(outcome["score"])}}, ""
        return {"tier_outcomes": {tier: float(outcome["score"])}}, ""
    by_tier: dict[str, list[float]] = {}
    by_model: dict[str, float] = {}
    for model, score in outcome["outcomes"].items():
        tier = model_tiers.get(model)
        if tier is None:
            by_model[model] = float(score)
            report.unknown_tier_models[model] += 1
        else:
            by_tier.setdefault(tier, []).append(float(score))
    fields: dict[str, Any] = {
        "tier_outcomes": {tier: sum(s) / len(s) for tier, s in by_tier.items()}
    }
    if by_model:
        fields["outcomes"] = by_model
    return fields, ""
