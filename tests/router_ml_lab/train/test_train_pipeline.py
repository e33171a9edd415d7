"""End to end: `router-ml train` on the synthetic fixture, and on a sample of the real data."""

from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np
import pytest
from fixtures import generate_records, tiny_config, write_fixture

from router_ml.calibration import choose_tiers
from router_ml.features import FEATURE_SCHEMA, FeatureExtractor
from router_ml.model import TierModel
from router_ml.tiers import TIERS
from router_ml_lab.train.cli import register
from router_ml_lab.train.pipeline import train


def test_model_directory_has_every_artifact(tiny_model_dir: Path) -> None:
    names = {p.name for p in tiny_model_dir.iterdir()}
    assert {"model.onnx", "metadata.json", "estimator.joblib", "MODEL_CARD.md"} <= names
    metadata = json.loads((tiny_model_dir / "metadata.json").read_text())
    assert metadata["format_version"] == 1 and metadata["tiers"] == list(TIERS)
    assert metadata["feature_schema"] == FEATURE_SCHEMA.to_dict()
    for key in (
        "calibration",
        "operating_points",
        "default_operating_point",
        "metrics",
        "data_fingerprint",
        "library_versions",
        "training_config",
        "feature_ranges",
    ):
        assert key in metadata
    assert len(metadata["feature_ranges"]["max"]) == len(FEATURE_SCHEMA.names)
    assert metadata["metrics"]["onnx_parity_max_abs_diff"] <= 1e-5
    assert sum(p.stat().st_size for p in tiny_model_dir.iterdir()) < 5_000_000
    card = (tiny_model_dir / "MODEL_CARD.md").read_text()
    assert "## Known weaknesses" in card and "pooled" in card


def test_operating_points_meet_their_targets_on_validation(tiny_model_dir: Path) -> None:
    metadata = json.loads((tiny_model_dir / "metadata.json").read_text())
    targets = [op["target_under_routing"] for op in metadata["operating_points"]]
    assert targets == [0.02, 0.05, 0.1, 0.2]
    assert metadata["default_operating_point"] == "under_routing_0.05"
    for op in metadata["operating_points"]:
        assert op["validation"]["under_routing"] <= op["target_under_routing"] + 1e-12


def test_the_model_learns_the_fixture_signal(tiny_model_dir: Path) -> None:
    metadata = json.loads((tiny_model_dir / "metadata.json").read_text())
    pooled = metadata["metrics"]["test"][metadata["default_operating_point"]]["pooled"]
    assert pooled["accuracy"] > pooled["majority_accuracy"] + 0.1
    assert pooled["tier_shares"]["economy"] > 0.3


def test_runtime_loads_the_model_and_reproduces_the_decisions(tiny_model_dir: Path) -> None:
    model = TierModel.load(tiny_model_dir)
    requests = [r["request"] for r in generate_records(60, seed=9)]
    features = FeatureExtractor().extract_many(requests)
    risks = model.risks(features)
    op = model.default_operating_point
    chosen = choose_tiers(risks, op.thresholds)
    kinds = np.array(["tools" in r for r in requests]) + 2 * np.array(
        ["Prove" in r["messages"][-1]["content"] for r in requests]
    )
    assert chosen[kinds == 0].mean() < chosen[kinds == 2].mean()  # proofs escalate


def test_training_is_deterministic_for_a_seed(
    fixture_data: tuple[Path, Path], tmp_path: Path
) -> None:
    traffic, catalog = fixture_data
    config = tiny_config(tmp_path)
    for out in ("a", "b"):
        train([traffic], catalog, tmp_path / out, config_path=config, seed=5, progress=False)
    for name in ("model.onnx", "metadata.json", "MODEL_CARD.md"):
        assert (tmp_path / "a" / name).read_bytes() == (tmp_path / "b" / name).read_bytes()


def test_bad_lines_are_reported_and_too_many_refused(tmp_path: Path) -> None:
    bad = ["{broken", json.dumps({"id": "x", "request": {}, "outcomes": {"eco-a": 1}})]
    traffic, catalog = write_fixture(tmp_path / "some", n=300, extra_lines=bad)
    config = tiny_config(tmp_path)
    result = train([traffic], catalog, tmp_path / "m", config_path=config, progress=False)
    assert [line for _, line, _ in result.report.bad] == [301, 302]
    traffic, catalog = write_fixture(tmp_path / "many", n=300, extra_lines=bad * 10)
    with pytest.raises(ValueError, match="of the lines are bad"):
        train([traffic], catalog, tmp_path / "m2", config_path=config, progress=False)


def test_cli_trains_with_a_target_and_a_sample(
    fixture_data: tuple[Path, Path], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    import argparse

    traffic, catalog = fixture_data
    parser = argparse.ArgumentParser(prog="router-ml")
    register(parser.add_subparsers())
    args = parser.parse_args(
        [
            "train",
            "--data",
            str(traffic),
            "--catalog",
            str(catalog),
            "--out",
            str(tmp_path / "m"),
            "--config",
            str(tiny_config(tmp_path)),
            "--target-under-routing",
            "0.08",
            "--sample",
            "500",
            "--no-progress",
        ]
    )
    assert args.func(args) == 0
    headline = json.loads(capsys.readouterr().out)
    assert headline["operating_point"] == "under_routing_0.08"
    metadata = json.loads((tmp_path / "m" / "metadata.json").read_text())
    assert metadata["data_fingerprint"]["sample"] == 500
    assert metadata["metrics"]["split_sizes"]["train"] < 500


def test_quick_model_on_a_sample_of_the_real_traffic(shared_data: Path, tmp_path: Path) -> None:
    result = train(
        [shared_data / "traffic"],
        shared_data / "models.json",
        tmp_path / "real",
        config_path=tiny_config(tmp_path),
        sample=3000,
        progress=False,
    )
    pooled = result.metadata["metrics"]["test"]["under_routing_0.05"]["pooled"]
    assert result.report.n_bad == 0
    # Better than random at ranking who needs more than economy. Not the pooled APGR: on the
    # ~440 test records of a 3,000 sample its denominator (mean premium-minus-economy gain,
    # 0.01-0.03) is tiny next to the per-record spread, and it swings from -0.36 to 0.49 over
    # seeds 0-4 (0.6-1.15 before arena_bench joined the data, which only re-drew the sample);
    # the AUC of the same risk is 0.55-0.59 over those seeds.
    assert pooled["auc_needs_above_economy"] > 0.53
    assert pooled["under_routing"] < 0.10  # the 5% point holds roughly on unseen records
    TierModel.load(result.out_dir)


def test_model_file_is_identical_across_processes(tmp_path: Path) -> None:
    """String hashing differs per process; nothing in the artifacts may depend on it."""
    import subprocess
    import sys

    repo = Path(__file__).resolve().parents[3]
    search_path = os.pathsep.join(
        [str(repo / "tests"), str(repo), str(repo / "training"), os.environ.get("PYTHONPATH", "")]
    )
    for hash_seed in ("1", "2"):
        out = str(tmp_path / hash_seed)
        code = f"from fixtures import build_tiny_model; build_tiny_model({out!r})"
        subprocess.run(
            [sys.executable, "-c", code],
            cwd=repo,
            check=True,
            env={**os.environ, "PYTHONHASHSEED": hash_seed, "PYTHONPATH": search_path},
        )
    for name in ("model.onnx", "metadata.json", "MODEL_CARD.md"):
        assert (tmp_path / "1" / name).read_bytes() == (tmp_path / "2" / name).read_bytes()
