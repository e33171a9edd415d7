"""``router-ml drift``: PSI, tier-mix shift and OOD share against thresholds, with exit codes."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from measure_cli import run_measure
from measure_fixtures import KINDS, request_records, write_jsonl

from router_ml_lab.measure.drift import outside_training_ranges, psi
from router_ml_lab.measure.scan import RouterSettings, load_router


def test_psi_is_zero_on_the_same_sample_and_large_on_a_shift() -> None:
    rng = np.random.default_rng(0)
    sample = rng.normal(size=2000)
    assert psi(sample, sample) == 0.0
    assert psi(sample, rng.normal(size=2000)) < 0.05
    assert psi(sample, rng.normal(loc=2.0, size=2000)) > 1.0


def test_psi_gives_a_binary_feature_two_bins() -> None:
    """Bins close on the right, so 0 and 1 never share a bin even when the baseline is all 0."""
    zeros = np.zeros(100)
    assert psi(zeros, zeros) == 0.0
    assert psi(zeros, np.ones(100)) > 5.0
    half = np.array([0.0, 1.0] * 50)
    assert psi(half, half[::-1]) == 0.0
    with pytest.raises(ValueError, match="non-empty"):
        psi(np.zeros(0), zeros)


def test_outside_training_ranges_uses_the_model_metadata(tiny_model_dir: Path) -> None:
    router = load_router(RouterSettings(str(tiny_model_dir)))
    ranges = router.model.metadata["feature_ranges"]
    low, high = np.asarray(ranges["min"]), np.asarray(ranges["max"])
    inside = ((low + high) / 2)[None, :]
    outside = inside.copy()
    outside[0, 0] = high[0] + 10
    assert outside_training_ranges(np.vstack([inside, outside]), router).tolist() == [False, True]


def _window(path: Path, kinds: list[str], repeat: int) -> Path:
    records = [r for r in request_records(repeat) if r["kind"] in kinds]
    return write_jsonl(path, records)


def test_same_traffic_passes_and_a_new_mix_fails(
    tmp_path: Path, tiny_model_dir: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    model = ["--model", str(tiny_model_dir)]
    baseline = _window(tmp_path / "baseline.jsonl", list(KINDS), 6)
    same = _window(tmp_path / "same.jsonl", list(KINDS), 6)
    assert run_measure(["drift", "--baseline", str(baseline), "--current", str(same), *model]) == 0
    assert "# Drift check: no drift" in capsys.readouterr().out

    shifted = _window(tmp_path / "shifted.jsonl", ["long document", "tool/agent turn"], 20)
    out = tmp_path / "out"
    code = run_measure(
        ["drift", "--baseline", str(baseline), "--current", str(shifted), "--out", str(out), *model]
    )
    assert code == 1
    result = json.loads((out / "drift.json").read_text())
    breached = {c["check"] for c in result["checks"] if c["breached"]}
    assert "psi feature tokens_total" in breached and "psi feature n_tools" in breached
    assert result["text_representation"] == {"available": False}
    assert result["ood"]["source"].startswith("router ood score")  # Decision.ood exists
    assert "# Drift check: DRIFT" in (out / "drift.md").read_text()


def test_thresholds_are_flags(tmp_path: Path, tiny_model_dir: Path) -> None:
    baseline = _window(tmp_path / "baseline.jsonl", list(KINDS), 6)
    shifted = _window(tmp_path / "shifted.jsonl", ["long document", "tool/agent turn"], 20)
    loose = ["--feature-psi", "1e9", "--tier-share-change", "1", "--ood-share-increase", "1"]
    argv = ["drift", "--baseline", str(baseline), "--current", str(shifted), *loose]
    assert run_measure([*argv, "--model", str(tiny_model_dir)]) == 0


def test_unreadable_input_is_exit_code_2(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    empty = write_jsonl(tmp_path / "empty.jsonl", [])
    assert run_measure(["drift", "--baseline", str(empty), "--current", str(empty)]) == 2
    assert "usable requests" in capsys.readouterr().err
