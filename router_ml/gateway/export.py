"""Join a gateway decision log with judged outcomes into the traffic JSONL that training reads.

Retraining on a team's own traffic needs two things the gateway cannot know alone: the request
(logged only when the operator opts in with ``decision_log.include_prompts``) and how well it was
answered (from user feedback, an evaluator, or replaying a sample on each tier). The outcomes file
carries the latter keyed by the request id the gateway returned in ``x-router-request-id``:

- ``{"id": ..., "tier": "standard"}``: a direct label (the cheapest tier that answers well);
- ``{"id": ..., "outcomes": {"model-a": 1.0, "model-b": 0.0}}``: scores of several models;
- ``{"id": ..., "score": 0.0}``: the score of the model that served the request.

An optional ``category`` is copied. Lines that cannot be joined are counted by reason, not
silently dropped, so the operator sees when prompts were not logged.
"""

from __future__ import annotations

import json
import math
import os
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from router_ml.gateway.decision_log import log_files
from router_ml.tiers import TIERS


@dataclass
class ExportReport:
    """What the join did: records written and everything skipped, by reason."""

    log_lines: int = 0
    written: int = 0
    skipped: Counter[str] = field(default_factory=Counter)
    unused_outcomes: int = 0

    def summary(self) -> str:
        lines = [f"read {self.log_lines} log lines, wrote {self.written} traffic records"]
        lines += [f"  skipped {n}: {reason}" for reason, n in self.skipped.most_common()]
        if self.unused_outcomes:
            lines.append(f"  {self.unused_outcomes} outcomes matched no log line")
        return "\n".join(lines)


def read_outcomes(path: str | os.PathLike[str]) -> dict[str, dict[str, Any]]:
    """Outcome lines by request id; raises ``ValueError`` naming the first bad line."""
    outcomes: dict[str, dict[str, Any]] = {}
    with open(path, encoding="utf-8") as handle:
        for line_no, line in enumerate(handle, start=1):
            if not line.strip():
                continue
            where = f"{path}:{line_no}"
            try:
                raw = json.loads(line)
            except json.JSONDecodeError as exc:
                raise ValueError(f"{where}: malformed JSON: {exc.msg}") from None
            outcomes[_check_outcome(raw, where)] = raw
    return outcomes


def _check_outcome(raw: Any, where: str) -> str:
    if not isinstance(raw, dict) or not isinstance(raw.get("id"), str) or not raw["id"]:
        raise ValueError(f"{where}: expected an object with a non-empty string id")
    kinds = [k for k in ("tier", "outcomes", "score") if k in raw]
    if len(kinds) != 1:
        raise ValueError(f"{where}: expected exactly one of tier, outcomes, score; got {kinds}")
    if "tier" in raw and raw["tier"] not in TIERS:
        raise ValueError(f"{where}: tier {raw['tier']!r} is not one of {list(TIERS)}")
    scores = raw.get("outcomes", {"served": raw.get("score", 0.0)})
    if not isinstance(scores, dict) or not scores:
        raise ValueError(f"{where}: outcomes must map model names to scores")
    for model, score in scores.items():
        if (
            isinstance(score, bool)
            or not isinstance(score, int | float)
            or not (math.isfinite(score) and 0.0 <= score <= 1.0)
        ):
            raise ValueError(
                f"{where}: score of {model!r} must be a number in [0, 1], got {score!r}"
            )
    if not isinstance(raw.get("category", ""), str):
        raise ValueError(f"{where}: category must be a string")
    return raw["id"]


def export_traffic(
    log_path: str | os.PathLike[str] | Sequence[str | os.PathLike[str]],
    outcomes_path: str | os.PathLike[str],
    out_path: str | os.PathLike[str],
    source: str = "gateway",
) -> ExportReport:
    """Write traffic records for every logged request with an outcome; returns the report.

    ``log_path`` is the active log, or several (one per worker process); rotated backups
    (``.1``, ``.2``, ...) are read too. The output is written to a temporary file and renamed, so
    a failed export leaves no half file.
    """
    paths = [log_path] if isinstance(log_path, str | os.PathLike) else list(log_path)
    files = []
    for path in paths:
        found = log_files(path)
        if not found:
            raise ValueError(f"{path}: no decision log (or rotated backups) found")
        files += found
    outcomes = read_outcomes(outcomes_path)
    report = ExportReport()
    used: set[str] = set()
    out = Path(out_path)
    partial = out.with_name(out.name + ".partial")
    with open(partial, "w", encoding="utf-8") as sink:
        for path in files:
            with open(path, encoding="utf-8", errors="replace") as handle:
                for line in handle:
                    if not line.strip():
                        continue
                    report.log_lines += 1
                    record, reason = _join(line, outcomes, used, source)
                    if record is None:
                        report.skipped[reason] += 1
                        continue
                    sink.write(json.dumps(record, ensure_ascii=False) + "\n")
                    report.written += 1
    partial.replace(out)
    report.unused_outcomes = len(set(outcomes) - used)
    return report


def _join(
    line: str, outcomes: dict[str, dict[str, Any]], used: set[str], source: str
) -> tuple[dict[str, Any] | None, str]:
    try:
        entry = json.loads(line)
    except json.JSONDecodeError:
        return None, "malformed log line"
    if not isinstance(entry, dict) or not isinstance(entry.get("id"), str):
        return None, "log line without an id"
    outcome = outcomes.get(entry["id"])
    if outcome is None:
        return None, "no outcome for the request"
    if entry["id"] in used:
        return None, "duplicate request id in the log"
    request = entry.get("request")
    if not isinstance(request, dict):
        return None, "request text not logged (set decision_log.include_prompts: true)"
    record: dict[str, Any] = {
        "id": entry["id"],
        "source": source,
        "category": outcome.get("category", ""),
        "request": request,
    }
    if "tier" in outcome:
        record["tier"] = outcome["tier"]
    elif "outcomes" in outcome:
        record["outcomes"] = outcome["outcomes"]
    else:
        served = entry.get("model") if entry.get("status") == 200 else None
        if not served:
            return None, "score given but no model served the request"
        record["outcomes"] = {served: float(outcome["score"])}
    used.add(entry["id"])
    return record, ""
