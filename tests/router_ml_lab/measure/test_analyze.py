"""``router-ml analyze``: type breakdown, bill shares and scenarios add up; the report is whole."""

from __future__ import annotations

import base64
import gzip
import itertools
import json
from pathlib import Path

import numpy as np
import pytest
from measure_cli import run_measure
from measure_fixtures import request_records, write_jsonl

from router_ml.features import FEATURE_SCHEMA, FeatureExtractor
from router_ml.pricing import PriceCatalog, request_costs
from router_ml_lab.measure.analyze import ALL_PREMIUM, CURRENT, analyze
from router_ml_lab.measure.dataset import DatasetError, partitions
from router_ml_lab.measure.scan import PartitionScan, RouterSettings, load_router, scan_partition

CATALOG = {
    "_tiers": {
        "economy": {"input_usd_per_mtok": 1.0, "output_usd_per_mtok": 5.0},
        "standard": {"input_usd_per_mtok": 3.0, "output_usd_per_mtok": 15.0},
        "premium": {"input_usd_per_mtok": 15.0, "output_usd_per_mtok": 75.0},
    },
    "served-mini": {"tier": "economy", "input_usd_per_mtok": 0.1, "output_usd_per_mtok": 0.4},
}


def scan_dir(directory: Path, model_dir: Path) -> PartitionScan:
    settings = RouterSettings(str(model_dir))
    return PartitionScan.concat([scan_partition(p, settings) for p in partitions([directory])])


def test_breakdown_adds_up_and_every_kind_is_named(traffic_dir: Path, tiny_model_dir: Path) -> None:
    scan = scan_dir(traffic_dir, tiny_model_dir)
    router = load_router(RouterSettings(str(tiny_model_dir)))
    catalog = PriceCatalog.from_dict(CATALOG)
    result = analyze(scan, router, catalog)

    assert result["requests"] == len(request_records()) and result["bad_lines"] == 1
    assert "part-b.jsonl:12" in result["bad_line_examples"][0]
    assert {row["type"] for row in result["by_type"]} >= {"code", "math", "tool/agent turn"}
    assert sum(row["requests"] for row in result["by_type"]) == result["requests"]
    assert sum(row["bill_share"] for row in result["by_type"]) == pytest.approx(1.0)

    costs = request_costs(
        scan.input_tokens, scan.output_tokens, catalog.tier_price_matrix(router.tiers)
    )
    scenarios = {row["scenario"]: row for row in result["scenarios"]}
    assert scenarios[ALL_PREMIUM]["window_cost_usd"] == pytest.approx(costs[:, -1].sum())
    current = costs[np.arange(len(scan)), scan.tiers].sum()
    assert scenarios[CURRENT]["window_cost_usd"] == pytest.approx(current)
    assert scenarios[CURRENT]["monthly_cost_usd"] == pytest.approx(30 * current)
    for name in router.model.operating_points:
        row = scenarios[f"operating point {name}"]
        assert sum(row["tier_mix"].values()) == pytest.approx(1.0)
        assert row["cost_vs_premium"] <= 1.0 + 1e-12
    # the router's own operating point is the current policy (no rules in the default policy)
    own = scenarios[f"operating point {router.operating_point.name}"]
    assert own["window_cost_usd"] == scenarios[CURRENT]["window_cost_usd"]


def test_decision_log_lines_use_logged_usage_and_price_the_served_model(
    tmp_path: Path, tiny_model_dir: Path
) -> None:
    extractor = FeatureExtractor()
    records = request_records(repeat=1)
    lines = []
    for hour, record in enumerate(records):
        features = extractor.extract(record["request"])
        lines.append(
            {
                "id": f"rtr-{hour}",
                "time": f"2026-01-0{1 + hour // 24}T{hour % 24:02d}:00:00.000+00:00",
                "endpoint": "chat.completions",
                "decision": {"tier": "economy", "source": "rule:cheap", "probabilities": {}},
                "feature_schema": FEATURE_SCHEMA.hash,
                "features": features.tolist(),
                "tier": "economy",
                "model": "served-mini",
                "usage": {"prompt_tokens": 1000, "completion_tokens": 500},
            }
        )
    lines.append({"id": "rtr-rejected", "endpoint": "chat.completions", "status": 400})
    log = write_jsonl(tmp_path / "decisions.jsonl", lines)
    router = load_router(RouterSettings(str(tiny_model_dir)))
    scan = scan_partition(log, RouterSettings(str(tiny_model_dir)))
    result = analyze(scan, router, PriceCatalog.from_dict(CATALOG))

    assert result["requests"] == len(records)  # the rejected line has nothing to measure
    assert result["input_tokens"] == 1000 * len(records)
    assert result["window_basis"] == "span of the logged timestamps"
    assert result["window_days"] == pytest.approx((len(records) - 1) / 24)
    observed = result["observed"]
    assert observed["window_cost_usd"] == pytest.approx(
        len(records) * (1000 * 0.1 + 500 * 0.4) / 1e6
    )
    # a rule decided every line: operating points cannot move them
    assert all(row["tier_mix"]["economy"] == 1.0 for row in result["scenarios"][1:])


def test_log_features_of_another_schema_are_reported_not_used(
    tmp_path: Path, tiny_model_dir: Path
) -> None:
    line = {"id": "x", "endpoint": "route", "decision": {"tier": "economy"}, "features": [0.0]}
    log = write_jsonl(tmp_path / "decisions.jsonl", [{**line, "feature_schema": "other"}, line])
    scan = scan_partition(log, RouterSettings(str(tiny_model_dir)))
    assert len(scan) == 0 and scan.issues.bad == 2
    assert "schema other" in scan.issues.examples[0]
    assert "finite features" in scan.issues.examples[1]


def test_cli_writes_a_self_contained_report(
    traffic_dir: Path, tiny_model_dir: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    catalog = tmp_path / "models.json"
    catalog.write_text(json.dumps(CATALOG))
    out = tmp_path / "report"
    code = run_measure(
        [
            "analyze",
            str(traffic_dir),
            "--catalog",
            str(catalog),
            "--out",
            str(out),
            "--model",
            str(tiny_model_dir),
            "--window-days",
            "7",
        ]
    )
    assert code == 0
    html = (out / "report.html").read_text()
    images = html.count('src="data:image/png;base64,')
    assert images == 2 and "http://" not in html and "https://" not in html
    png = html.split('src="data:image/png;base64,')[1].split('"')[0]
    assert base64.b64decode(png)[:8] == b"\x89PNG\r\n\x1a\n"
    summary = (out / "summary.md").read_text()
    assert "## Spend before and after" in summary and "tool/agent turn" in summary
    assert json.loads((out / "summary.json").read_text())["window_days"] == 7
    assert (out / "traffic_types.png").stat().st_size > 1000
    assert "analyzed 21 requests (1 unusable lines)" in capsys.readouterr().out


def test_cli_reports_bad_inputs_clearly(
    tmp_path: Path, tiny_model_dir: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert run_measure(["analyze", str(tmp_path / "nope*.jsonl")]) == 2
    assert "no such file" in capsys.readouterr().err
    (tmp_path / "notes.txt").write_text("x")
    with pytest.raises(DatasetError, match="unsupported file type"):
        partitions([tmp_path / "notes.txt"])
    bad_catalog = tmp_path / "bad.json"
    bad_catalog.write_text("{}")
    assert run_measure(["analyze", str(tmp_path), "--catalog", str(bad_catalog)]) == 2
    assert "_tiers" in capsys.readouterr().err


def test_sample_of_the_shared_requests_with_the_shipped_model(
    shared_data: Path, tmp_path: Path
) -> None:
    """On real request shapes: agent conversations are tool turns and carry most of the bill,
    and the shipped model routes part of the traffic below premium."""
    sample = tmp_path / "sample"
    sample.mkdir()
    for source in ("arena_hard", "tau_airline"):
        with gzip.open(shared_data / "requests" / f"{source}.jsonl.gz", "rt") as handle:
            lines = list(itertools.islice(handle, 60))
        (sample / f"{source}.jsonl").write_text("".join(lines))
    settings = RouterSettings()
    scan = PartitionScan.concat([scan_partition(p, settings) for p in partitions([sample])])
    result = analyze(scan, load_router(settings), PriceCatalog.load(shared_data / "models.json"))
    types = {row["type"]: row for row in result["by_type"]}
    assert result["requests"] == 120 and result["bad_lines"] == 0
    assert types["tool/agent turn"]["requests"] == 60
    assert types["tool/agent turn"]["bill_share"] > 0.5
    assert result["scenarios"][1]["cost_vs_premium"] < 1.0


def test_operating_points_respect_the_policy_floor(
    traffic_dir: Path, tiny_model_dir: Path, tmp_path: Path
) -> None:
    """A ``min_tier`` rule stays in force at every operating point (the model decides above it)."""
    policy = tmp_path / "policy.yaml"
    policy.write_text(
        "tiers: {economy: e, standard: s, premium: p}\n"
        "rules:\n"
        "  - name: tools-at-least-standard\n"
        "    match: {tools: true}\n"
        "    min_tier: standard\n"
        "default: {tier: auto}\n"
    )
    settings = RouterSettings(str(tiny_model_dir), str(policy))
    scan = PartitionScan.concat([scan_partition(p, settings) for p in partitions([traffic_dir])])
    result = analyze(scan, load_router(settings), PriceCatalog.from_dict(CATALOG))
    tools = next(row for row in result["by_type"] if row["type"] == "tool/agent turn")
    assert tools["tier_mix"]["economy"] == 0.0
    assert scan.auto.all() and scan.floors.max() == 1
    for row in result["scenarios"]:
        floored = scan.floors == 1
        assert row["tier_mix"]["economy"] <= 1 - floored.mean() + 1e-12


def test_parquet_partitions_read_like_jsonl(traffic_dir: Path, tiny_model_dir: Path) -> None:
    pq = pytest.importorskip("pyarrow.parquet")
    pa = pytest.importorskip("pyarrow")
    records = request_records()
    table = pa.table(
        {"id": [r["id"] for r in records], "request": [json.dumps(r["request"]) for r in records]}
    )
    parquet = traffic_dir.parent / "parquet"
    parquet.mkdir()
    pq.write_table(table, parquet / "all.parquet")
    settings = RouterSettings(str(tiny_model_dir))
    from_parquet = scan_partition(parquet / "all.parquet", settings)
    from_jsonl = scan_dir(traffic_dir, tiny_model_dir)
    assert from_parquet.ids == from_jsonl.ids
    assert np.array_equal(from_parquet.features, from_jsonl.features)
    assert np.array_equal(from_parquet.tiers, from_jsonl.tiers)
