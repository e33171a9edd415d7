"""``router-ml eval`` and ``bench`` end to end on synthetic traffic with a tiny real model."""

from __future__ import annotations

import json

import pytest

from router_ml_lab.evaluate.cli import register_bench, register_eval

FAST_BASELINES = ["always-economy", "always-premium", "random", "oracle", "length", "knn"]


def _run(argv: list[str]) -> int:
    import argparse

    parser = argparse.ArgumentParser(prog="router-ml")
    subparsers = parser.add_subparsers()
    register_eval(subparsers)
    register_bench(subparsers)
    args = parser.parse_args(argv)
    return args.func(args)


def test_eval_writes_report_json_markdown_and_plots(tmp_path, tiny_model, fixture_traffic) -> None:
    traffic, catalog = fixture_traffic
    out = tmp_path / "report"
    code = _run(
        [
            "eval",
            "--model",
            str(tiny_model),
            "--data",
            str(traffic),
            "--catalog",
            str(catalog),
            "--split",
            "test",
            "--report",
            str(out),
            "--baselines",
            *[b for b in FAST_BASELINES if b != "knn"],
        ]
    )
    assert code == 0
    report = json.loads((out / "report.json").read_text())
    by_name = {r["name"]: r for r in report["routers"]}
    assert next(iter(by_name)) == "router-ml"
    assert by_name["oracle (label)"]["pooled"]["accuracy"] == 1.0
    premium = by_name["always-premium"]["pooled"]
    assert premium["cost_vs_premium"] == 1.0 and premium["quality_kept"] == 1.0
    assert by_name["always-economy"]["pooled"]["under_routing"] == pytest.approx(
        1 - report["label_shares"]["pooled"]["economy"]
    )
    assert by_name["router-ml"]["cost_quality"]["aiq"] is not None
    assert report["context"]["in_sample"] is False
    cascade = {(tuple(r["cascade"]), r["gate_recall"]): r for r in report["cascade"]}
    perfect = cascade[(("economy", "premium"), 1.0)]
    assert perfect["under_routing"] == 0.0 and 1.0 <= perfect["calls_per_request"] <= 2.0
    markdown = (out / "report.md").read_text()
    assert "Held-out evaluation" in markdown and "| router-ml |" in markdown
    assert "## Cascade" in markdown
    assert "output tokens = `max_tokens` or 256 when absent" in markdown  # the model's contract
    for png in (
        "cost_quality.png",
        "confusion.png",
        "per_source.png",
        "routellm_curve.png",
    ):
        assert (out / png).stat().st_size > 1000


def test_eval_on_all_data_says_in_sample_and_skips_knn(
    tmp_path, tiny_model, fixture_traffic, capsys
) -> None:
    traffic, catalog = fixture_traffic
    out = tmp_path / "report"
    _run(
        [
            "eval",
            "--model",
            str(tiny_model),
            "--data",
            str(traffic),
            "--catalog",
            str(catalog),
            "--split",
            "all",
            "--report",
            str(out),
            "--baselines",
            "always-premium",
            "knn",
            "--sample",
            "100",
        ]
    )
    report = json.loads((out / "report.json").read_text())
    assert report["n_records"] == 100
    assert "knn" in report["skipped"] and "--split test" in report["skipped"]["knn"]
    assert "In-sample warning" in (out / "report.md").read_text()
    err = capsys.readouterr().err
    assert "skipped knn" in err
    assert "WARNING: in-sample evaluation" in err and "--split test" in err


def test_eval_defaults_to_the_held_out_test_split_without_warning(
    tmp_path, tiny_model, fixture_traffic, capsys
) -> None:
    traffic, catalog = fixture_traffic
    out = tmp_path / "report"
    argv = ["eval", "--model", str(tiny_model), "--data", str(traffic), "--catalog", str(catalog)]
    assert _run([*argv, "--report", str(out), "--baselines", "always-premium"]) == 0
    report = json.loads((out / "report.json").read_text())
    assert report["context"]["split"] == "test" and report["context"]["in_sample"] is False
    assert "WARNING" not in capsys.readouterr().err


def test_bench_creates_its_folder_writes_report_md_and_logs_each_workload(
    tmp_path, tiny_model, capsys
) -> None:
    shapes = tmp_path / "shapes.jsonl"
    request = {"messages": [{"role": "user", "content": "What is 2 + 2?"}]}
    shapes.write_text(json.dumps({"id": "1", "request": request}) + "\n")
    out = tmp_path / "new" / "bench"
    argv = ["bench", "--model", str(tiny_model), "--requests", str(shapes), "--no-pin"]
    limits = ["--calls", "20", "--max-seconds", "0.05", "--baselines", "always-economy"]
    assert _run([*argv, *limits, "--report", str(out)]) == 0
    markdown = (out / "report.md").read_text()
    assert "| router-ml |" in markdown and "latency.png" in markdown
    bench = json.loads((out / "bench.json").read_text())
    assert bench["settings"]["n_calls"] == 20 and bench["settings"]["max_seconds"] == 0.05
    assert all(r["n_calls"] <= 20 for w in bench["results"].values() for r in w.values())
    lines = [x for x in capsys.readouterr().err.splitlines() if x.startswith("bench [")]
    assert len(lines) == 2 * 4  # 2 routers x (1 request file + 3 generated sizes)
    assert lines[0].startswith("bench [1/8] router-ml on shapes:")


def test_the_cli_offers_exactly_the_registered_routers() -> None:
    from router_ml_lab.evaluate.cli import ALL_BASELINES
    from router_ml_lab.evaluate.registry import ROUTERS

    assert list(ALL_BASELINES) == list(ROUTERS)


def test_an_unknown_router_name_is_refused_with_the_known_ones(tiny_model) -> None:
    from router_ml_lab.evaluate.baselines import load_learned_router
    from router_ml_lab.evaluate.registry import RouterContext, build_routers

    ctx = RouterContext(load_learned_router(str(tiny_model)), None, None, str(tiny_model), "x")
    with pytest.raises(ValueError, match="always-economy"):
        build_routers(["no-such-router"], ctx)
    routers, skipped = build_routers(["oracle", "length"], ctx)
    assert [r.name for r, _ in routers] == ["router-ml", "length heuristic"]
    assert "oracle" in skipped


def test_eval_suite_reports_the_two_shares_and_every_item(tmp_path, tiny_model, capsys) -> None:
    from pathlib import Path

    suite = Path(__file__).resolve().parents[3] / "examples" / "sense.jsonl"
    code = _run(
        ["eval", "--suite", str(suite), "--model", str(tiny_model), "--report", str(tmp_path)]
    )
    assert code == 0
    out = capsys.readouterr().out
    assert "hard above economy:" in out and "easy at economy:" in out and "code-lru" in out
    summary = json.loads((tmp_path / "suite.json").read_text())
    assert summary["n"] >= 40 and 0 <= summary["hard_above_economy"] <= 1


def test_eval_without_report_or_suite_is_refused(tiny_model, capsys) -> None:
    assert _run(["eval", "--model", str(tiny_model)]) == 2
    assert "--report DIR is required" in capsys.readouterr().err
