"""Decision log + outcomes → traffic JSONL that the training reader accepts."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import httpx
import pytest
import yaml
from conftest import config_dict, start_gateway
from fake_upstream import FakeUpstream

from router_ml.gateway.cli import run_export
from router_ml.gateway.decision_log import DecisionLog
from router_ml.gateway.export import export_traffic, read_outcomes, tier_models_from_config
from router_ml_lab.quality.data import read_traffic


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
    served = {line["id"]: line["tier"] for line in running.log_lines()}
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
    config_file = tmp_path / "gateway.yaml"
    config_file.write_text(yaml.safe_dump(config))
    report = export_traffic(
        log_path, outcomes, out, source="team-a", tier_models=tier_models_from_config(config_file)
    )
    assert report.written == 3 and report.unused_outcomes == 1
    assert report.skipped == {"no outcome and no gate verdict for the request": 1}
    assert any("matched no log line" in w for w in report.warnings())

    records, read_report = read_traffic([out], known_models=())  # no catalog entry needed
    assert read_report.n_bad == 0
    by_id = {r.id: r for r in records}
    assert by_id[ids[0]].tier == "economy" and by_id[ids[0]].category == "summary"
    # Served model names become their tier: the gateway config says which tier serves which.
    assert by_id[ids[1]].tier_outcomes == {"economy": 0.0, "premium": 1.0}
    assert by_id[ids[1]].outcomes == {}
    assert by_id[ids[2]].tier_outcomes == {served[ids[2]]: 1.0}
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
        ({"id": "ok", "tier": "premium"}, "repeats line 1"),
    ],
)
def test_bad_outcome_lines_are_reported_with_their_line_and_skipped(
    tmp_path: Path, row: dict[str, Any], fragment: str
) -> None:
    good = [{"id": f"g{i}", "tier": "economy"} for i in range(30)]
    path = write_jsonl(tmp_path / "o.jsonl", [{"id": "ok", "tier": "economy"}, row, *good])
    outcomes, report = read_outcomes(path)
    assert len(outcomes) == 31 and outcomes["ok"]["tier"] == "economy"
    ((where, line_no, reason),) = report.bad
    assert (where, line_no) == (str(path), 2) and fragment in reason


def test_an_outcomes_file_mostly_broken_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "o.jsonl"
    path.write_text('{"id": "a", "tier": "economy"}\n' + "not json\n" * 3)
    with pytest.raises(ValueError, match=r"3 of 4 outcome lines are malformed"):
        read_outcomes(path)


def gated_line(request_id: str, attempts: list[tuple[str, bool | None]]) -> dict[str, Any]:
    """A decision-log line in the gates helper's format: one attempt per (tier, gate passed)."""
    models = {"economy": "gpt-4o-mini", "standard": "gpt-4o", "premium": "o1"}
    return {
        "id": request_id,
        "status": 200,
        "tier": attempts[-1][0],
        "model": models[attempts[-1][0]],
        "request": {"messages": [{"role": "user", "content": f"Reply in JSON {request_id}"}]},
        "attempts": [
            {
                "tier": tier,
                "model": models[tier],
                "upstream": "openai",
                "status": 200,
                "failure": None if passed is not False else "gate",
                "gate": None
                if passed is None
                else {"name": "json", "passed": passed, "detail": "" if passed else "bad JSON"},
            }
            for tier, passed in attempts
        ],
    }


def test_gate_verdicts_are_labels_without_an_outcomes_file(tmp_path: Path) -> None:
    log = DecisionLog(tmp_path / "d.jsonl")
    log.write(gated_line("failed-then-passed", [("economy", False), ("standard", True)]))
    log.write(gated_line("passed", [("economy", True)]))
    log.write(gated_line("no-gate-ran", [("economy", None)]))
    log.write(gated_line("failed-at-the-end", [("economy", False)]))
    log.close()
    report = export_traffic(tmp_path / "d.jsonl", None, tmp_path / "t.jsonl")
    records, read_report = read_traffic([tmp_path / "t.jsonl"], known_models=())
    assert read_report.n_bad == 0
    by_id = {r.id: r.tier_outcomes for r in records}
    # A solo pass is left out: every answer is gated, so it would label the router's own choice.
    assert by_id == {
        "failed-then-passed": {"economy": 0.0, "standard": 1.0},
        "failed-at-the-end": {"economy": 0.0},
    }
    assert report.skipped == {"no outcome and no gate verdict for the request": 2}
    assert report.gate_verdicts == {"economy failed": 2, "standard passed": 1}
    assert report.evidence == {"gates": 2}
    assert "gate verdicts used" in report.summary()
    with_passes = export_traffic(tmp_path / "d.jsonl", None, tmp_path / "p.jsonl", gate_passes=True)
    records, _ = read_traffic([tmp_path / "p.jsonl"], known_models=())
    assert {r.id: r.tier_outcomes for r in records}["passed"] == {"economy": 1.0}
    assert with_passes.written == 3

    # A judged outcome of the same tier wins over the structural gate; --no-gates ignores them.
    outcomes = write_jsonl(tmp_path / "o.jsonl", [{"id": "passed", "score": 0.0}])
    export_traffic(tmp_path / "d.jsonl", outcomes, tmp_path / "t2.jsonl")
    records, _ = read_traffic([tmp_path / "t2.jsonl"])
    assert {r.id: r.tier_outcomes for r in records}["passed"] == {"economy": 0.0}
    report = export_traffic(tmp_path / "d.jsonl", outcomes, tmp_path / "t3.jsonl", use_gates=False)
    assert report.written == 1 and report.evidence == {"outcomes file": 1}


def test_a_shadow_replay_one_tier_down_joins_its_request(tmp_path: Path) -> None:
    log = DecisionLog(tmp_path / "d.jsonl")
    log.write(gated_line("served", [("standard", True)]))
    replay = gated_line("replay-1", [("economy", False)])
    replay.update(endpoint="shadow.replay", replay_of="served")
    del replay["request"]  # replay lines carry no prompt; the served line has it
    log.write(replay)
    judged = gated_line("replay-2", [("economy", None)])
    judged.update(endpoint="shadow.replay", replay_of="served-2")
    del judged["request"]
    log.write(gated_line("served-2", [("standard", None)]))
    log.write(judged)
    orphan = dict(judged, id="replay-3", replay_of="gone")
    log.write(orphan)
    log.close()
    # A judge compared the second pair: the replayed economy answer scored 1.
    outcomes = write_jsonl(tmp_path / "o.jsonl", [{"id": "replay-2", "score": 1.0}])
    report = export_traffic(tmp_path / "d.jsonl", outcomes, tmp_path / "t.jsonl")
    records, _ = read_traffic([tmp_path / "t.jsonl"], known_models=())
    assert {r.id: r.tier_outcomes for r in records} == {
        "served": {"economy": 0.0, "standard": 1.0},
        "served-2": {"economy": 1.0},
    }
    assert report.unused_outcomes == 0
    assert report.skipped == {"shadow replay of a request not in the log": 1}


def test_models_of_unknown_tier_are_kept_and_warned_about(tmp_path: Path) -> None:
    log = DecisionLog(tmp_path / "d.jsonl")
    log.write(gated_line("r1", [("economy", None)]))
    log.close()
    outcomes = write_jsonl(
        tmp_path / "o.jsonl", [{"id": "r1", "outcomes": {"gpt-4o-mini": 0.0, "claude-x": 1.0}}]
    )
    report = export_traffic(tmp_path / "d.jsonl", outcomes, tmp_path / "t.jsonl")
    ((record,), _) = read_traffic([tmp_path / "t.jsonl"])
    assert record.tier_outcomes == {"economy": 0.0}  # the log says gpt-4o-mini is economy
    assert record.outcomes == {"claude-x": 1.0}
    assert any("'claude-x'" in w and "--config" in w for w in report.warnings())


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
        config=None,
        use_gates=True,
        gate_passes=False,
    )
    assert run_export(args) == 1
    captured = capsys.readouterr()
    assert "wrote 0 traffic records" in captured.out
    assert "warning: 1 outcomes matched no log line" in captured.err
    args.log = str(tmp_path / "missing.jsonl")
    assert run_export(args) == 2


def test_cli_skips_a_malformed_outcome_line_like_route_and_train(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from router_ml.cli import main

    log = DecisionLog(tmp_path / "d.jsonl")
    request = {"messages": [{"role": "user", "content": "hi"}]}
    for i in range(30):
        log.write(
            {"id": f"r{i}", "status": 200, "tier": "economy", "model": "m", "request": request}
        )
    log.close()
    rows = [json.dumps({"id": f"r{i}", "score": 1.0}) for i in range(30)]
    (tmp_path / "o.jsonl").write_text("\n".join([*rows[:10], "{broken", *rows[10:]]) + "\n")
    code = main(
        [
            "export-log",
            "--log",
            str(tmp_path / "d.jsonl"),
            "--outcomes",
            str(tmp_path / "o.jsonl"),
            "--out",
            str(tmp_path / "t.jsonl"),
        ]
    )
    captured = capsys.readouterr()
    assert code == 0
    assert "wrote 30 traffic records" in captured.out
    assert f"{tmp_path / 'o.jsonl'}:11: malformed JSON" in captured.err


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
