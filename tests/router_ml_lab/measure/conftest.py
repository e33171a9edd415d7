"""Fixtures of the measure tests (helpers live in ``measure_fixtures``)."""

from __future__ import annotations

from pathlib import Path

import pytest
from measure_fixtures import request_records, write_jsonl


@pytest.fixture
def traffic_dir(tmp_path: Path) -> Path:
    """Two request partitions with every kind, plus one malformed line."""
    directory = tmp_path / "traffic"
    directory.mkdir()
    records = request_records()
    write_jsonl(directory / "part-a.jsonl", records[: len(records) // 2])
    path = write_jsonl(directory / "part-b.jsonl", records[len(records) // 2 :])
    with path.open("a") as handle:
        handle.write("{not json\n")
    return directory
