"""Model loading: validation of the directory, schema refusal, operating points."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest

from router_ml.errors import ModelLoadError, SchemaMismatch
from router_ml.features import FEATURE_SCHEMA, N_FEATURES
from router_ml.model import TierModel, default_model_dir


def copy_model(source: Path, destination: Path) -> Path:
    shutil.copytree(source, destination)
    return destination


def edit_metadata(model_dir: Path, **changes: object) -> None:
    path = model_dir / "metadata.json"
    metadata = json.loads(path.read_text())
    metadata.update(changes)
    path.write_text(json.dumps(metadata))


def test_loads_and_predicts_probabilities(tiny_model_dir: Path) -> None:
    model = TierModel.load(tiny_model_dir)
    probs = model.predict_proba(np.zeros((4, N_FEATURES), dtype=np.float32))
    assert probs.shape == (4, 3)
    np.testing.assert_allclose(probs.sum(axis=1), 1.0, atol=1e-5)
    risks = model.risks(np.zeros((2, N_FEATURES), dtype=np.float32))
    assert risks.shape == (2, 2) and np.all(risks[:, 0] >= risks[:, 1])


def test_other_feature_schema_is_refused(tiny_model_dir: Path, tmp_path: Path) -> None:
    model_dir = copy_model(tiny_model_dir, tmp_path / "m")
    names = list(FEATURE_SCHEMA.names)
    names[3] = "n_emojis"
    edit_metadata(
        model_dir, feature_schema={"version": "0", "names": names, "hash": "0123456789abcdef"}
    )
    with pytest.raises(SchemaMismatch) as info:
        TierModel.load(model_dir)
    message = str(info.value)
    assert "0123456789abcdef" in message and FEATURE_SCHEMA.hash in message
    assert "n_emojis" in message and names[3] != FEATURE_SCHEMA.names[3]


def test_same_names_other_hash_is_refused(tiny_model_dir: Path, tmp_path: Path) -> None:
    model_dir = copy_model(tiny_model_dir, tmp_path / "m")
    edit_metadata(
        model_dir, feature_schema={**FEATURE_SCHEMA.to_dict(), "hash": "ffffffffffffffff"}
    )
    with pytest.raises(SchemaMismatch):
        TierModel.load(model_dir)


@pytest.mark.parametrize(
    ("breakage", "fragment"),
    [
        (lambda d: (d / "metadata.json").unlink(), "missing"),
        (lambda d: (d / "metadata.json").write_text("{oops"), "unreadable"),
        (lambda d: (d / "metadata.json").write_text("[]"), "JSON object"),
        (lambda d: edit_metadata(d, format_version=99), "format_version"),
        (lambda d: edit_metadata(d, tiers=["cheap", "dear"]), "tiers"),
        (lambda d: edit_metadata(d, default_operating_point="nope"), "default_operating_point"),
        (lambda d: edit_metadata(d, calibration={"method": "magic"}), "calibration.method"),
        (lambda d: (d / "model.onnx").write_bytes(b"not an onnx file"), "sha256"),
        (lambda d: (d / "model.onnx").unlink(), "not a loadable ONNX"),
    ],
)
def test_broken_model_directories_fail_clearly(
    tiny_model_dir: Path, tmp_path: Path, breakage, fragment: str
) -> None:
    model_dir = copy_model(tiny_model_dir, tmp_path / "m")
    breakage(model_dir)
    with pytest.raises(ModelLoadError, match=fragment):
        TierModel.load(model_dir)


def test_missing_keys_are_listed(tiny_model_dir: Path, tmp_path: Path) -> None:
    model_dir = copy_model(tiny_model_dir, tmp_path / "m")
    metadata = json.loads((model_dir / "metadata.json").read_text())
    del metadata["operating_points"]
    (model_dir / "metadata.json").write_text(json.dumps(metadata))
    with pytest.raises(ModelLoadError, match="operating_points"):
        TierModel.load(model_dir)


def test_operating_points_by_name_target_and_default(tiny_model_dir: Path) -> None:
    model = TierModel.load(tiny_model_dir)
    assert model.operating_point(None) is model.default_operating_point
    targets = sorted(
        op.target_under_routing
        for op in model.operating_points.values()
        if op.target_under_routing is not None
    )
    assert len(targets) >= 2
    chosen = model.operating_point(targets[1] + 1e-4)
    assert chosen.target_under_routing == targets[1]  # the largest target not above the request
    assert model.operating_point(chosen.name) is chosen
    with pytest.raises(ValueError, match="unknown operating point"):
        model.operating_point("no-such-point")
    with pytest.raises(ValueError, match="no stored operating point"):
        model.operating_point(targets[0] / 2)


def test_model_env_var_picks_the_default_directory(
    tiny_model_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("ROUTER_ML_MODEL", str(tiny_model_dir))
    assert default_model_dir() == tiny_model_dir


def test_command_line_operating_points_are_rates_or_names() -> None:
    from router_ml.model import parse_operating_point

    assert parse_operating_point(None) is None
    assert parse_operating_point("0.02") == 0.02
    assert parse_operating_point("under_routing_0.05") == "under_routing_0.05"
