"""Batch routing of a partitioned dataset: one decisions file per input partition.

Each partition is routed with ``Router.route_batch`` in chunks by whichever process holds it (this
one or a Dask worker) and written next to the others as ``<partition>.decisions.jsonl``; a line
per request in input order, ``{"id", "tier", "model", "source", "probabilities", "reason"}``, or
``{"id", "line", "error"}`` for a request that cannot be routed. Decision latency is left out:
it is a timing, not a result, and the files of a Dask run equal those of a single-process run
byte for byte.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from router_ml.errors import InvalidRequest
from router_ml.request import parse_request
from router_ml_lab.measure.dataset import ReadIssues, read_partition
from router_ml_lab.measure.scan import CHUNK, RouterSettings, load_router


@dataclass(frozen=True)
class RoutedPartition:
    """What routing one partition did."""

    source: str
    output: str
    routed: int
    bad: int


def output_name(path: Path) -> str:
    """``traffic.jsonl.gz`` → ``traffic.decisions.jsonl``."""
    name = path.name
    for suffix in (".jsonl.gz", ".json.gz", ".jsonl", ".parquet"):
        if name.endswith(suffix):
            name = name[: -len(suffix)]
            break
    return f"{name}.decisions.jsonl"


def route_partition(path: Path, settings: RouterSettings, out_dir: str) -> RoutedPartition:
    """Route every request of ``path`` and write its decisions file into ``out_dir``."""
    router = load_router(settings)
    issues = ReadIssues()
    target = Path(out_dir) / output_name(Path(path))
    routed = bad = 0
    with target.open("w", encoding="utf-8") as sink:
        pending: list[tuple[Any, Any]] = []

        def flush() -> None:
            decisions = router.route_batch([request for _, request in pending])
            for (record_id, _), decision in zip(pending, decisions, strict=True):
                line = {"id": record_id, **decision.to_dict()}
                del line["latency_us"]
                sink.write(json.dumps(line, ensure_ascii=False) + "\n")
            pending.clear()

        for record in read_partition(path, issues):
            body = record.get("request", record)
            record_id = record.get("id", record.get("_line"))
            try:
                parsed = parse_request(body)
            except InvalidRequest as exc:
                flush()
                bad += 1
                error = {"id": record_id, "line": record.get("_line"), "error": str(exc)}
                sink.write(json.dumps(error, ensure_ascii=False) + "\n")
                continue
            pending.append((record_id, parsed))
            routed += 1
            if len(pending) == CHUNK:
                flush()
        if pending:
            flush()
    return RoutedPartition(str(path), str(target), routed, bad + issues.bad)
