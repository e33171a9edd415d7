"""The route CLI: one request, JSONL batches with bad lines, helpful failures."""

from __future__ import annotations

import io
import json
import subprocess
import sys
from pathlib import Path

import pytest

from router_ml.cli import main

REPO = Path(__file__).resolve().parents[2]


def run(argv: list[str], capsys: pytest.CaptureFixture[str]) -> tuple[int, str, str]:
    code = main(argv)
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def test_route_one_file(tiny_model_dir: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = run(
        ["route", str(REPO / "examples" / "request.json"), "--model", str(tiny_model_dir)], capsys
    )
    assert code == 0
    decision = json.loads(out)
    assert decision["tier"] in ("economy", "standard", "premium") and decision["source"] == "auto"


def test_route_stdin_with_policy(
    tiny_model_dir: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    body = json.dumps({"messages": [{"role": "user", "content": "hello"}]}).encode()
    monkeypatch.setattr(sys, "stdin", io.TextIOWrapper(io.BytesIO(body)))
    code, out, _ = run(
        [
            "route",
            "-",
            "--model",
            str(tiny_model_dir),
            "--policy",
            str(REPO / "examples" / "policy-rules.yaml"),
        ],
        capsys,
    )
    assert code == 0 and json.loads(out)["source"] == "rule:first-reply"


def test_invalid_single_request_exits_1_with_the_field(
    tiny_model_dir: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    bad = tmp_path / "bad.json"
    bad.write_text('{"messages": [{"role": "user"}]}')
    code, out, err = run(["route", str(bad), "--model", str(tiny_model_dir)], capsys)
    assert code == 1 and out == ""
    assert "messages[0].content" in err


def test_batch_keeps_ids_and_reports_bad_lines(
    tiny_model_dir: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    lines = [
        json.dumps(
            {"id": "a", "request": {"messages": [{"role": "user", "content": "Sort this list"}]}}
        ),
        "{broken json",
        "",
        json.dumps({"messages": [{"role": "user", "content": "a bare request body"}]}),
        json.dumps({"id": "c", "request": {"messages": [{"role": "alien", "content": "x"}]}}),
        json.dumps({"id": 7, "request": {"messages": [{"role": "user", "content": "last"}]}}),
    ]
    batch = tmp_path / "in.jsonl"
    batch.write_text("\n".join(lines) + "\n")
    out_path = tmp_path / "out.jsonl"
    code, _, err = run(
        ["route", "--batch", str(batch), "--out", str(out_path), "--model", str(tiny_model_dir)],
        capsys,
    )
    assert code == 1
    results = [json.loads(line) for line in out_path.read_text().splitlines()]
    assert [r["id"] for r in results] == ["a", 2, 4, "c", 7]
    assert "tier" in results[0] and "tier" in results[2] and "tier" in results[4]
    assert results[1]["line"] == 2 and "malformed JSON" in results[1]["error"]
    assert results[3]["line"] == 5 and "messages[0].role" in results[3]["error"]
    assert f"{batch}:2:" in err and f"{batch}:5:" in err
    assert "routed 3 of 5 lines; 2 bad" in err


def test_batch_table_output(tiny_model_dir: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = run(
        [
            "route",
            "--batch",
            str(REPO / "examples" / "requests.jsonl"),
            "--table",
            "--model",
            str(tiny_model_dir),
        ],
        capsys,
    )
    assert code == 0
    assert out.splitlines()[0].split()[:3] == ["id", "tier", "model"]
    assert "classify-review" in out and "agent-tool-result" in out


def test_missing_model_and_bad_policy_are_clear(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    code, _, err = run(["route", "--model", str(tmp_path / "none")], capsys)
    assert code == 2 and "metadata.json: missing" in err
    policy = tmp_path / "p.yaml"
    policy.write_text(
        "tiers: {economy: a, standard: b, premium: c}\n"
        "rules: [{name: x, match: {}, tier: premium}]\n"
    )
    code, _, err = run(["route", "--policy", str(policy)], capsys)
    assert code == 2 and "rule 0" in err


def test_help_lists_every_subcommand() -> None:
    result = subprocess.run(
        [sys.executable, "-m", "router_ml.cli", "--help"],
        capture_output=True,
        text=True,
        check=True,
    )
    for command in ("route", "train", "eval", "bench", "serve", "export-log"):
        assert command in result.stdout


def test_batch_table_ends_with_tier_shares_and_cost_vs_premium(
    tiny_model_dir: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    batch = tmp_path / "batch.jsonl"
    batch.write_text(
        "\n".join(
            json.dumps({"id": f"r{i}", "request": {"messages": [{"role": "user", "content": t}]}})
            for i, t in enumerate(["hi", "prove the Riemann hypothesis " * 30, "2+2?"])
        )
    )
    code, out, _ = run(
        ["route", "--batch", str(batch), "--table", "--model", str(tiny_model_dir)], capsys
    )
    assert code == 0
    shares, cost, note = out.strip().splitlines()[-3:]
    counts = [int(part.split("(")[1].rstrip(")")) for part in shares.split(", ")]
    assert shares.startswith("tier shares: economy") and sum(counts) == 3
    assert cost.startswith("estimated cost: $") and "all-premium" in cost
    assert "default_prices.json" in note


def test_spend_line_shows_the_catalog_relative_to_the_working_directory_or_as_given(
    tiny_model_dir: Path,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    batch, catalog = tmp_path / "batch.jsonl", tmp_path / "prices.json"
    batch.write_text(json.dumps({"messages": [{"role": "user", "content": "hi"}]}) + "\n")
    catalog.write_text((REPO / "router_ml" / "default_prices.json").read_text())
    argv = ["route", "--batch", "batch.jsonl", "--table", "--model", str(tiny_model_dir)]
    monkeypatch.chdir(REPO)
    _, out, _ = run([*argv[:2], str(batch), *argv[3:]], capsys)
    assert out.strip().endswith("prices from router_ml/default_prices.json)")
    monkeypatch.chdir(tmp_path)
    _, out, _ = run([*argv, "--catalog", str(catalog)], capsys)
    assert out.strip().endswith("prices from prices.json)")  # absolute, but under the cwd
    monkeypatch.chdir(tiny_model_dir)
    _, out, _ = run([*argv[:2], str(batch), *argv[3:], "--catalog", str(catalog)], capsys)
    assert out.strip().endswith(f"prices from {catalog})")


def test_an_offline_command_without_its_extra_is_absent_with_the_extra_to_install(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    from importlib.metadata import EntryPoint

    import router_ml.cli as cli

    def needs_a_missing_module(subparsers: object) -> None:
        cli.require_modules("router_ml_no_such_module", extra="train")

    monkeypatch.setattr(
        sys.modules[__name__], "needs_a_missing_module", needs_a_missing_module, raising=False
    )
    fake = EntryPoint("train", f"{__name__}:needs_a_missing_module", cli.COMMAND_GROUP)
    monkeypatch.setattr(
        cli, "entry_points", lambda group: [fake] if group == cli.COMMAND_GROUP else []
    )
    parser, unavailable = cli.build_parser()
    assert list(unavailable) == ["train"]
    assert "pip install 'router-ml[train]'" in parser.format_help()
    code, _, err = run(["train", "--out", "x"], capsys)
    assert code == 2
    assert "router-ml train: needs the train extra" in err and "router_ml_no_such_module" in err


def test_batch_never_stops_on_a_crash_trigger_and_creates_the_out_folder(
    tiny_model_dir: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    good = {"messages": [{"role": "user", "content": "hello"}]}
    lines = [
        json.dumps(good),
        '{"messages": [{"role": "user", "content": [{"type": ["text"], "text": "x"}]}]}',
        json.dumps({**good, "max_tokens": 10**400}),
        '{"messages": [{"role": "user", "content": "x"}], "max_tokens": 1e400}',
        '{"messages": [{"role": "user", "content": "x"}], "seed": ' + "9" * 5000 + "}",
        '{"id": "\\ud800", "request": {"messages": [{"role": "user", "content": "\\udfff"}]}}',
        "[" * 50_000,
        json.dumps({"id": "last", "request": good}),
    ]
    batch = tmp_path / "in.jsonl"
    batch.write_text("\n".join(lines) + "\n")
    out_path = tmp_path / "not" / "yet" / "there.jsonl"
    code, _, err = run(
        ["route", "--batch", str(batch), "--out", str(out_path), "--model", str(tiny_model_dir)],
        capsys,
    )
    assert code == 1 and "Traceback" not in err
    results = [json.loads(line) for line in out_path.read_text().splitlines()]
    assert len(results) == len(lines)
    assert [("error" in r) for r in results] == [False, True, True, True, True, False, True, False]
    assert results[5]["id"] == "\ud800" and results[-1]["id"] == "last"
    assert "routed 3 of 8 lines; 5 bad" in err


def test_batch_out_that_cannot_be_written_is_a_clear_error(
    tiny_model_dir: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    batch = tmp_path / "in.jsonl"
    batch.write_text(json.dumps({"messages": [{"role": "user", "content": "x"}]}) + "\n")
    blocker = tmp_path / "file"
    blocker.write_text("")
    code, _, err = run(
        [
            "route",
            "--batch",
            str(batch),
            "--out",
            str(blocker / "out.jsonl"),
            "--model",
            str(tiny_model_dir),
        ],
        capsys,
    )
    assert code == 2 and "cannot write" in err and "Traceback" not in err
