"""Reading labeled traffic: valid records in, bad lines reported by line, refusal over a share."""

from __future__ import annotations

import gzip
import json
from pathlib import Path

import pytest

from router_ml_lab.quality.data import parse_record, read_traffic

GOOD = {
    "id": "a",
    "source": "s",
    "category": "c",
    "request": {"messages": [{"role": "user", "content": "hi"}]},
    "outcomes": {"m1": 1.0, "m2": 0.0},
}


def _line(**changes: object) -> str:
    record = {**GOOD, **changes}
    return json.dumps({k: v for k, v in record.items() if v is not None})


def _write(path: Path, lines: list[str]) -> Path:
    opener = gzip.open if path.name.endswith(".gz") else open
    with opener(path, "wt", encoding="utf-8") as handle:
        handle.write("\n".join(lines) + "\n")
    return path


def test_reads_plain_and_gzip_files_and_directories(tmp_path: Path) -> None:
    _write(tmp_path / "a.jsonl", [_line(id="1"), _line(id="2")])
    _write(tmp_path / "b.jsonl.gz", [_line(id="3", tier="premium", outcomes=None)])
    (tmp_path / "notes.txt").write_text("ignored")
    records, report = read_traffic([tmp_path])
    assert [r.id for r in records] == ["1", "2", "3"]
    assert report.n_read == 3 and report.n_bad == 0
    assert records[2].tier == "premium" and records[2].outcomes == {}
    assert records[0].outcomes == {"m1": 1.0, "m2": 0.0}


@pytest.mark.parametrize(
    ("line", "reason"),
    [
        ("{not json", "malformed JSON"),
        (_line(request={"messages": []}), "request.messages"),
        (_line(outcomes={"m1": 1.5}), "outside [0, 1]"),
        (_line(outcomes={"m1": True}), "expected a number"),
        (_line(outcomes={"unknown-model": 1.0}), "unknown model"),
        (_line(tier="gold"), "unknown tier"),
        (_line(outcomes={}), "no label evidence"),
        (_line(id=""), "id"),
    ],
)
def test_bad_lines_are_reported_with_line_numbers(tmp_path: Path, line: str, reason: str) -> None:
    path = _write(tmp_path / "t.jsonl", [_line(id=str(i)) for i in range(30)] + [line])
    records, report = read_traffic([path], max_bad_share=0.05, known_models={"m1", "m2"})
    assert len(records) == 30
    assert report.n_bad == 1
    bad_path, line_no, problem = report.bad[0]
    assert bad_path == str(path) and line_no == 31 and reason in problem


def test_duplicate_ids_keep_the_first(tmp_path: Path) -> None:
    path = _write(tmp_path / "t.jsonl", [_line(id=str(i)) for i in range(30)] + [_line(id="0")])
    records, report = read_traffic([path])
    assert len(records) == 30 and "duplicate id" in report.bad[0][2]


def test_too_many_bad_lines_refuse_the_data(tmp_path: Path) -> None:
    lines = [_line(id=str(i)) for i in range(10)] + ["oops", _line(outcomes={"m1": -1})]
    path = _write(tmp_path / "t.jsonl", lines)
    with pytest.raises(ValueError, match=r"t\.jsonl:11: malformed JSON"):
        read_traffic([path], max_bad_share=0.1)
    records, report = read_traffic([path], max_bad_share=0.2)
    assert len(records) == 10 and [b[1] for b in report.bad] == [11, 12]


def test_the_bad_line_limit_holds_per_file_not_only_pooled(tmp_path: Path) -> None:
    public = _write(tmp_path / "public.jsonl", [_line(id=f"p{i}") for i in range(400)])
    own = [_line(id=f"o{i}") for i in range(16)] + ["oops"] * 4  # 20% bad, 1% of the pool
    own_path = _write(tmp_path / "own.jsonl", own)
    with pytest.raises(ValueError, match=r"own\.jsonl: 20\.00% of 20 lines"):
        read_traffic([public, own_path], max_bad_share=0.05)
    records, report = read_traffic([public, own_path], max_bad_share=0.25)
    assert len(records) == 416 and report.bad_share_of(str(own_path)) == 0.2


def test_missing_paths_and_bad_share_are_errors(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError):
        read_traffic([tmp_path / "nope.jsonl"])
    with pytest.raises(FileNotFoundError):
        read_traffic([tmp_path])  # a directory without traffic files
    with pytest.raises(ValueError, match="max_bad_share"):
        read_traffic([tmp_path], max_bad_share=2.0)


def test_parse_record_keeps_category_and_source() -> None:
    record = parse_record(_line(category="math"))
    assert (record.id, record.source, record.category) == ("a", "s", "math")
    assert record.request == GOOD["request"]
