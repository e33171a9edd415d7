"""``router-ml eval`` end to end on synthetic traffic with a tiny real model."""

from __future__ import annotations

import json

import pytest

from router_ml_lab.evaluate.cli import register_eval

FAST_BASELINES = ["always-economy", "always-premium", "random", "oracle", "length", "knn"]


def _run(argv: list[str]) -> int:
    import argparse

    parser = argparse.ArgumentParser(prog="router-ml")
    register_eval(parser.add_subparsers())
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
    assert premium["cost_relative"] == 1.0 and premium["quality_kept"] == 1.0
    assert by_name["always-economy"]["pooled"]["under_routing"] == pytest.approx(
        1 - report["label_shares"]["pooled"]["economy"]
    )
    assert by_name["router-ml"]["cost_quality"]["aiq"] is not None
    assert report["context"]["in_sample"] is False
    markdown = (out / "report.md").read_text()
    assert "Held-out evaluation" in markdown and "| router-ml |" in markdown
    for png in (
        "cost_quality.png",
        "confusion.png",
        "per_source_accuracy.png",
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
    assert "skipped knn" in capsys.readouterr().err
