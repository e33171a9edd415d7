"""Decision log + outcomes → traffic JSONL that the training reader accepts."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import httpx
import pytest
from conftest import config_dict, start_gateway
from fake_upstream import FakeUpstream

from router_ml.gateway.cli import run_export
from router_ml.gateway.decision_log import DecisionLog
from router_ml.gateway.export import export_traffic, read_outcomes
from training.data import read_traffic


def write_jsonl(path: Path, rows: list[dict[str, Any]]) -> Path:
    path.write_text("".join(json.dumps(row) + "\n" for row in rows))
    return path


def test_logged_traffic_round_trips_into_training(
    fake: FakeUpstream, tiny_model_dir: Path, tmp_path: Path
) -> None:
    log_path = tmp_path / "decisions.jsonl"
    config = config_dict(fake.base_url, tiny_model_dir, log_path)
    config["decision_log"]["include_prompts"] = True
    running, server = start_gateway(config, tmp_path)
    prompts = ["Summarize this memo", "Prove Fermat's little theorem", "Hi", "Translate 'cat'"]
    try:
        ids = []
        for prompt in prompts:
            response = httpx.post(
                running.base_url + "/v1/chat/completions",
                json={"model": "auto", "messages": [{"role": "user", "content": prompt}]},
            )
            assert response.status_code == 200
            ids.append(response.headers["x-router-request-id"])
    finally:
        server.stop()
    served = {line["id"]: line["model"] for line in running.log_lines()}
    outcomes = write_jsonl(
        tmp_path / "outcomes.jsonl",
        [
            {"id": ids[0], "tier": "economy", "category": "summary"},
            {"id": ids[1], "outcomes": {"eco-model": 0.0, "pro-model": 1.0}},
            {"id": ids[2], "score": 1.0},
            {"id": "rtr-not-in-log", "tier": "premium"},
        ],
    )
    out = tmp_path / "traffic.jsonl"
    report = export_traffic(log_path, outcomes, out, source="team-a")
    assert report.written == 3 and report.unused_outcomes == 1
    assert report.skipped == {"no outcome for the request": 1}

    records, read_report = read_traffic([out])
    assert read_report.n_bad == 0
    by_id = {r.id: r for r in records}
    assert by_id[ids[0]].tier == "economy" and by_id[ids[0]].category == "summary"
    assert by_id[ids[1]].outcomes == {"eco-model": 0.0, "pro-model": 1.0}
    assert by_id[ids[2]].outcomes == {served[ids[2]]: 1.0}
    assert by_id[ids[1]].request["messages"][0]["content"] == prompts[1]
    assert all(r.source == "team-a" for r in records)


def test_without_prompts_nothing_is_exported_and_the_reason_is_given(tmp_path: Path) -> None:
    log = DecisionLog(tmp_path / "d.jsonl")
    log.write({"id": "a", "status": 200, "model": "m"})
    log.close()
    outcomes = write_jsonl(tmp_path / "o.jsonl", [{"id": "a", "tier": "economy"}])
    report = export_traffic(tmp_path / "d.jsonl", outcomes, tmp_path / "t.jsonl")
    assert report.written == 0
    assert "include_prompts" in report.summary()


def test_rotated_backups_are_read(tmp_path: Path) -> None:
    log = DecisionLog(tmp_path / "d.jsonl", max_bytes=1024, backups=5)
    request = {"messages": [{"role": "user", "content": "x" * 100}]}
    for index in range(20):
        log.write({"id": f"r{index}", "status": 200, "model": "m", "request": request})
    log.close()
    outcomes = write_jsonl(
        tmp_path / "o.jsonl", [{"id": f"r{i}", "tier": "standard"} for i in range(20)]
    )
    report = export_traffic(tmp_path / "d.jsonl", outcomes, tmp_path / "t.jsonl")
    assert report.written == 20


@pytest.mark.parametrize(
    ("row", "fragment"),
    [
        ({"id": "a"}, "exactly one of tier, outcomes, score"),
        ({"id": "a", "tier": "gold"}, "not one of"),
        ({"id": "a", "score": 1.5}, "in [0, 1]"),
        ({"id": "a", "outcomes": {"m": True}}, "in [0, 1]"),
        ({"tier": "economy"}, "non-empty string id"),
    ],
)
def test_bad_outcome_lines_are_refused_with_their_line(
    tmp_path: Path, row: dict[str, Any], fragment: str
) -> None:
    path = write_jsonl(tmp_path / "o.jsonl", [{"id": "ok", "tier": "economy"}, row])
    with pytest.raises(ValueError) as info:
        read_outcomes(path)
    assert f"{path}:2" in str(info.value) and fragment in str(info.value)


def test_cli_reports_and_fails_when_nothing_joins(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    import argparse

    log = DecisionLog(tmp_path / "d.jsonl")
    log.write({"id": "a", "status": 200, "model": "m"})
    log.close()
    outcomes = write_jsonl(tmp_path / "o.jsonl", [{"id": "b", "tier": "economy"}])
    args = argparse.Namespace(
        log=str(tmp_path / "d.jsonl"),
        outcomes=str(outcomes),
        out=str(tmp_path / "t.jsonl"),
        source="gateway",
    )
    assert run_export(args) == 1
    assert "wrote 0 traffic records" in capsys.readouterr().out
    args.log = str(tmp_path / "missing.jsonl")
    assert run_export(args) == 2


def test_one_log_per_worker_are_joined_together(tmp_path: Path) -> None:
    request = {"messages": [{"role": "user", "content": "hi"}]}
    for worker in (101, 202):
        log = DecisionLog(tmp_path / f"d.{worker}.jsonl")
        log.write({"id": f"r{worker}", "status": 200, "model": "m", "request": request})
        log.close()
    outcomes = write_jsonl(
        tmp_path / "o.jsonl", [{"id": "r101", "tier": "economy"}, {"id": "r202", "score": 0.0}]
    )
    logs = [tmp_path / "d.101.jsonl", tmp_path / "d.202.jsonl"]
    assert export_traffic(logs, outcomes, tmp_path / "t.jsonl").written == 2
