"""Decision log: whole lines, size rotation, backups in write order, thread safety."""

from __future__ import annotations

import json
import threading
from pathlib import Path

import pytest

from router_ml.gateway.decision_log import DecisionLog, log_files


def read_all(path: Path) -> list[dict]:
    return [json.loads(line) for f in log_files(path) for line in f.read_text().splitlines()]


def test_rotation_keeps_whole_lines_and_order(tmp_path: Path) -> None:
    path = tmp_path / "sub" / "d.jsonl"
    log = DecisionLog(path, max_bytes=1024, backups=3)
    for index in range(40):
        log.write({"id": index, "pad": "x" * 60})
    log.close()
    files = log_files(path)
    assert [f.name for f in files] == ["d.jsonl.3", "d.jsonl.2", "d.jsonl.1", "d.jsonl"]
    assert all(f.stat().st_size <= 1024 for f in files)
    ids = [entry["id"] for entry in read_all(path)]
    assert ids == sorted(ids) and ids[-1] == 39  # oldest lines rotated out, never reordered


def test_zero_backups_truncates(tmp_path: Path) -> None:
    path = tmp_path / "d.jsonl"
    log = DecisionLog(path, max_bytes=1024, backups=0)
    for index in range(40):
        log.write({"id": index, "pad": "x" * 60})
    log.close()
    assert log_files(path) == [path]
    assert read_all(path)[-1]["id"] == 39


def test_appends_to_an_existing_log(tmp_path: Path) -> None:
    path = tmp_path / "d.jsonl"
    for run in range(2):
        log = DecisionLog(path)
        log.write({"run": run})
        log.close()
    assert [e["run"] for e in read_all(path)] == [0, 1]


def test_disabled_log_counts_but_writes_nothing(tmp_path: Path) -> None:
    log = DecisionLog(None)
    log.write({"id": 1})
    assert log.lines_written == 1 and list(tmp_path.iterdir()) == []


def test_concurrent_writers_never_interleave(tmp_path: Path) -> None:
    path = tmp_path / "d.jsonl"
    log = DecisionLog(path, max_bytes=20_000, backups=50)

    def write(worker: int) -> None:
        for index in range(200):
            log.write({"worker": worker, "i": index, "pad": "y" * 50})

    threads = [threading.Thread(target=write, args=(w,)) for w in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    log.close()
    entries = read_all(path)
    assert len(entries) == 800
    for worker in range(4):
        assert [e["i"] for e in entries if e["worker"] == worker] == list(range(200))


def test_invalid_parameters() -> None:
    with pytest.raises(ValueError):
        DecisionLog(None, max_bytes=0)
    with pytest.raises(ValueError):
        DecisionLog(None, backups=-1)
