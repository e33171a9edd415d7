"""Read labeled traffic: JSONL records of a chat request plus how models did on it.

The format is what a user exports from their own gateway: a sample of requests replayed on each
tier and judged, one JSON object a line, optionally gzip'd::

    {"id": "...", "source": "...", "category": "...",
     "request": {<OpenAI chat-completions body>},
     "outcomes": {"<model>": score in [0, 1], ...},     # and/or
     "tier_outcomes": {"<tier>": score in [0, 1], ...}, # and/or (the deployed model of a tier)
     "tier": "economy" | "standard" | "premium"}         # a direct label

``tier_outcomes`` is what ``router-ml export-log`` writes for a gateway's own traffic: the gateway
knows which tier served each attempt, so its model names need no catalog entry.

Real exports contain broken lines. A bad record (malformed JSON, invalid request, score outside
[0, 1], unknown model, unknown tier, duplicate id) is skipped and reported with its file and line
number, so the user can fix the export; only when more than ``max_bad_share`` of the lines of
any one file (or of all files) are bad does reading fail, because then the export itself is suspect
and a model trained on the rest would be silently biased.
"""

from __future__ import annotations

import gzip
import json
import math
import os
import sys
from collections.abc import Collection, Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from router_ml.errors import InvalidRequest
from router_ml.request import parse_request
from router_ml.tiers import TIERS

TRAFFIC_SUFFIXES = (".jsonl", ".jsonl.gz")


@dataclass(frozen=True)
class TrafficRecord:
    """One labeled request: the body a gateway saw and the evidence of which tier it needs."""

    id: str
    source: str
    category: str
    request: dict[str, Any]
    outcomes: dict[str, float]
    tier: str | None = None
    tier_outcomes: dict[str, float] = field(default_factory=dict)
    """Scores of the model deployed on a tier, keyed by tier (own gateway traffic)."""


@dataclass
class ReadReport:
    """What reading saw: lines read and every bad one as ``(path, line_no, reason)``."""

    n_read: int = 0
    bad: list[tuple[str, int, str]] = field(default_factory=list)
    lines_per_file: dict[str, int] = field(default_factory=dict)

    def bad_share_of(self, path: str) -> float:
        """Share of bad lines in one input file."""
        n = self.lines_per_file.get(path, 0)
        return sum(1 for p, _, _ in self.bad if p == path) / n if n else 0.0

    @property
    def n_bad(self) -> int:
        return len(self.bad)

    @property
    def bad_share(self) -> float:
        return self.n_bad / self.n_read if self.n_read else 0.0

    def summary(self, limit: int = 10) -> str:
        """Human-readable account of the bad lines (the first ``limit`` of them)."""
        lines = [f"read {self.n_read} lines, {self.n_bad} bad ({self.bad_share:.2%})"]
        lines += [f"  {path}:{line_no}: {reason}" for path, line_no, reason in self.bad[:limit]]
        if self.n_bad > limit:
            lines.append(f"  ... and {self.n_bad - limit} more")
        return "\n".join(lines)


def traffic_files(paths: Iterable[str | os.PathLike[str]]) -> list[Path]:
    """The traffic files named by ``paths``: files as given, directories expanded, sorted."""
    files: list[Path] = []
    for raw in paths:
        path = Path(raw)
        if path.is_dir():
            found = sorted(p for p in path.iterdir() if p.name.endswith(TRAFFIC_SUFFIXES))
            if not found:
                raise FileNotFoundError(f"{path}: no *.jsonl or *.jsonl.gz files")
            files.extend(found)
        elif path.is_file():
            files.append(path)
        else:
            raise FileNotFoundError(f"{path}: no such file or directory")
    return files


def read_traffic(
    paths: Iterable[str | os.PathLike[str]],
    max_bad_share: float = 0.05,
    known_models: Collection[str] | None = None,
    progress: bool | None = None,
) -> tuple[list[TrafficRecord], ReadReport]:
    """Read every record of ``paths`` (files or directories of .jsonl / .jsonl.gz).

    ``known_models`` (e.g. the catalog's models) makes an outcome for any other model a bad
    record: a typo in a model name would otherwise silently drop that evidence. Raises
    ``ValueError`` with the report when more than ``max_bad_share`` of the lines are bad, in any
    one file or overall.
    """
    if not 0.0 <= max_bad_share <= 1.0:
        raise ValueError(f"max_bad_share must be in [0, 1], got {max_bad_share}")
    files = traffic_files(paths)
    report = ReadReport()
    records: list[TrafficRecord] = []
    seen: set[str] = set()
    known = frozenset(known_models) if known_models is not None else None
    show = sys.stderr.isatty() if progress is None else progress
    for path in _progress(files, show, "read traffic"):
        report.lines_per_file.setdefault(str(path), 0)
        for line_no, line in _lines(path):
            report.n_read += 1
            report.lines_per_file[str(path)] += 1
            try:
                record = parse_record(line, known)
                if record.id in seen:
                    raise ValueError(f"duplicate id {record.id!r}")
            except ValueError as exc:  # InvalidRequest and JSON errors are ValueErrors
                report.bad.append((str(path), line_no, str(exc)))
                continue
            seen.add(record.id)
            records.append(record)
    # Per file as well as pooled: a user's small export that is 20% bad must not pass unnoticed
    # because it sits next to a large clean public set.
    suspect = [p for p in report.lines_per_file if report.bad_share_of(p) > max_bad_share]
    if suspect or report.bad_share > max_bad_share:
        where = "; ".join(
            f"{p}: {report.bad_share_of(p):.2%} of {report.lines_per_file[p]} lines"
            for p in suspect
        )
        raise ValueError(
            f"{report.bad_share:.2%} of the lines are bad overall"
            f"{' and too many in ' + where if where else ''} (allowed {max_bad_share:.2%} per "
            "file and overall):\n" + report.summary()
        )
    return records, report


def parse_record(line: str, known_models: Collection[str] | None = None) -> TrafficRecord:
    """Validate one JSONL line into a record; raises ``ValueError`` saying what is wrong."""
    try:
        raw = json.loads(line)
    except json.JSONDecodeError as exc:
        raise ValueError(f"malformed JSON at column {exc.colno}: {exc.msg}") from None
    if not isinstance(raw, dict):
        raise ValueError("expected a JSON object")
    record_id = raw.get("id")
    if not isinstance(record_id, str) or not record_id:
        raise ValueError("id: expected a non-empty string")
    source = raw.get("source", "")
    category = raw.get("category", "")
    if not isinstance(source, str) or not isinstance(category, str):
        raise ValueError("source and category must be strings")
    request = raw.get("request")
    try:
        parse_request(request)
    except InvalidRequest as exc:
        raise ValueError(f"request.{exc.field}: {exc.problem}") from None
    outcomes = _parse_outcomes(raw.get("outcomes", {}), known_models)
    tier_outcomes = _parse_outcomes(raw.get("tier_outcomes", {}), TIERS, "tier_outcomes")
    tier = raw.get("tier")
    if tier is not None and tier not in TIERS:
        raise ValueError(f"tier: unknown tier {tier!r}; expected one of {TIERS}")
    if not outcomes and not tier_outcomes and tier is None:
        raise ValueError(
            "neither outcomes, tier_outcomes nor tier: the record carries no label evidence"
        )
    return TrafficRecord(record_id, source, category, request, outcomes, tier, tier_outcomes)


def _parse_outcomes(
    raw: Any, known_models: Collection[str] | None, name: str = "outcomes"
) -> dict[str, float]:
    if not isinstance(raw, dict):
        raise ValueError(f"{name}: expected an object mapping model to score")
    outcomes: dict[str, float] = {}
    for model, score in raw.items():
        numeric = isinstance(score, int | float) and not isinstance(score, bool)
        if not numeric or not math.isfinite(score):
            raise ValueError(f"{name}[{model!r}]: expected a number, got {score!r}")
        if not 0.0 <= score <= 1.0:
            raise ValueError(f"{name}[{model!r}]: score {score} outside [0, 1]")
        if known_models is not None and model not in known_models:
            what = "tier" if name == "tier_outcomes" else "model (not in the catalog)"
            raise ValueError(f"{name}[{model!r}]: unknown {what}")
        outcomes[model] = float(score)
    return outcomes


def _lines(path: Path) -> Iterator[tuple[int, str]]:
    opener = gzip.open if path.name.endswith(".gz") else open
    with opener(path, "rt", encoding="utf-8", errors="replace") as handle:
        for line_no, line in enumerate(handle, start=1):
            if line.strip():
                yield line_no, line


def _progress(items: list[Path], show: bool, desc: str) -> Iterable[Path]:
    if not show:
        return items
    from tqdm import tqdm

    return tqdm(items, desc=desc, unit="file", file=sys.stderr)
