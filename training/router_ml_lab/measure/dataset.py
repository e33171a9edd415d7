"""Partitioned inputs: JSONL, gzipped JSONL and Parquet files, one partition per file.

A dataset is a list of files (given as paths, globs or directories). Each file is one partition,
read whole by whichever process scans it, so the single-process path and a Dask worker read the
same records in the same order. Two record shapes are understood, line by line:

- request records: ``{"id", "request": {...}, ...}`` or a bare chat-completions body;
- gateway decision-log lines (``router_ml.gateway.decision_log``): ``decision``, ``features``,
  ``usage``, ``time`` and, when prompts were logged, ``request``.

Parquet rows use the same keys as columns; a string column among :data:`JSON_COLUMNS` holds
JSON text (``pyarrow`` from the ``dask`` extra reads them). Bad lines are counted and reported by
line number, never silently dropped, and do not stop the partition.
"""

from __future__ import annotations

import glob
import gzip
import json
import os
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

SUFFIXES = (".jsonl", ".jsonl.gz", ".json.gz", ".parquet")
JSON_COLUMNS = ("request", "decision", "usage", "features", "attempts", "shadow")


class DatasetError(ValueError):
    """A dataset that names no readable partition."""


@dataclass
class ReadIssues:
    """Lines of a partition that could not be used, with the first few reasons."""

    bad: int = 0
    examples: list[str] = field(default_factory=list)

    def add(self, where: str, reason: str) -> None:
        self.bad += 1
        if len(self.examples) < 5:
            self.examples.append(f"{where}: {reason}")

    def merge(self, other: ReadIssues) -> None:
        self.bad += other.bad
        self.examples.extend(other.examples[: max(0, 5 - len(self.examples))])


def partitions(inputs: Sequence[str | os.PathLike[str]]) -> list[Path]:
    """The partition files of ``inputs`` (files, globs, directories), sorted, without duplicates."""
    found: list[Path] = []
    for item in inputs:
        text = str(item)
        path = Path(text)
        if path.is_dir():
            found += [p for p in sorted(path.rglob("*")) if p.is_file() and _supported(p)]
        elif path.is_file():
            found.append(path)
        else:
            matches = sorted(glob.glob(text))
            if not matches:
                raise DatasetError(f"{text}: no such file, directory or matching glob")
            found += [Path(m) for m in matches if Path(m).is_file()]
    unique = list(dict.fromkeys(p.resolve() for p in found))
    unsupported = [p for p in unique if not _supported(p)]
    if unsupported:
        raise DatasetError(
            f"{unsupported[0]}: unsupported file type; expected one of {', '.join(SUFFIXES)}"
        )
    if not unique:
        raise DatasetError(f"no {'/'.join(SUFFIXES)} files in {[str(i) for i in inputs]}")
    return unique


def read_partition(path: str | os.PathLike[str], issues: ReadIssues) -> Iterator[dict[str, Any]]:
    """The records of one partition as dicts; unusable lines go to ``issues``."""
    path = Path(path)
    if path.name.endswith(".parquet"):
        yield from _parquet_rows(path, issues)
        return
    opener = gzip.open if path.name.endswith(".gz") else open
    with opener(path, "rb") as handle:
        for line_no, line in enumerate(handle, start=1):
            if not line.strip():
                continue
            try:
                record = json.loads(line)
            except (json.JSONDecodeError, UnicodeDecodeError) as exc:
                issues.add(f"{path.name}:{line_no}", f"malformed JSON ({exc})")
                continue
            if not isinstance(record, dict):
                issues.add(f"{path.name}:{line_no}", "expected a JSON object")
                continue
            record.setdefault("_line", line_no)
            yield record


def _parquet_rows(path: Path, issues: ReadIssues) -> Iterator[dict[str, Any]]:
    try:
        import pyarrow.parquet as pq
    except ModuleNotFoundError:
        raise DatasetError(
            f"{path}: reading Parquet needs pyarrow (pip install 'router-ml[dask]')"
        ) from None
    for row_no, row in enumerate(pq.read_table(path).to_pylist(), start=1):
        try:
            for column in JSON_COLUMNS:
                if isinstance(row.get(column), str):
                    row[column] = json.loads(row[column])
        except json.JSONDecodeError as exc:
            issues.add(f"{path.name}:row {row_no}", f"malformed JSON in a column ({exc})")
            continue
        row.setdefault("_line", row_no)
        yield row


def _supported(path: Path) -> bool:
    return path.name.endswith(SUFFIXES)
