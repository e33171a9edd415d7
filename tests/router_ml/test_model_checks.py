"""Broken model directories are refused at load with an error naming the file, field and reason.

Each row of the table breaks one thing in a copy of a real (tiny) model directory; everything else
stays valid (a replaced ``model.onnx`` gets its true sha256 recorded), so the row tests exactly its
own check. The ONNX graphs are built here with ``onnx.helper``: a 2-column output, NaN output,
outputs outside [0, 1], rows that do not sum to 1, a wrong input name.
"""

from __future__ import annotations

import hashlib
import json
import random
import shutil
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper

from router_ml import Router
from router_ml.calibration import RiskCalibrator
from router_ml.errors import ModelLoadError
from router_ml.features import N_FEATURES
from router_ml.model import TierModel
from router_ml.model_checks import HASH_KEY

Breakage = Callable[[Path], None]


def tiny_onnx(n_outputs: int = 3, post: str = "softmax", input_name: str = "features") -> bytes:
    """features [N, N_FEATURES] → MatMul → softmax / NaN / raw scores / constants."""
    weights = helper.make_tensor(
        "w", TensorProto.FLOAT, [N_FEATURES, n_outputs], [0.01] * (N_FEATURES * n_outputs)
    )
    nodes = [helper.make_node("MatMul", [input_name, "w"], ["scores"])]
    initializers = [weights]
    if post == "softmax":
        nodes.append(helper.make_node("Softmax", ["scores"], ["probabilities"], axis=1))
    elif post == "nan":
        initializers.append(helper.make_tensor("nan", TensorProto.FLOAT, [], [float("nan")]))
        nodes += [
            helper.make_node("Softmax", ["scores"], ["soft"], axis=1),
            helper.make_node("Mul", ["soft", "nan"], ["probabilities"]),
        ]
    elif post == "shifted":  # softmax + 5: outside [0, 1]
        initializers.append(helper.make_tensor("five", TensorProto.FLOAT, [], [5.0]))
        nodes += [
            helper.make_node("Softmax", ["scores"], ["soft"], axis=1),
            helper.make_node("Add", ["soft", "five"], ["probabilities"]),
        ]
    elif post == "tenth":  # in [0, 1] but rows sum to 0.3
        initializers.append(helper.make_tensor("tenth", TensorProto.FLOAT, [], [0.1]))
        nodes += [
            helper.make_node("Softmax", ["scores"], ["soft"], axis=1),
            helper.make_node("Mul", ["soft", "tenth"], ["scaled"]),
            helper.make_node("Sub", ["soft", "scaled"], ["rest"]),
            helper.make_node("Sub", ["soft", "rest"], ["probabilities"]),
        ]
    graph = helper.make_graph(
        nodes,
        "broken",
        [helper.make_tensor_value_info(input_name, TensorProto.FLOAT, [None, N_FEATURES])],
        [helper.make_tensor_value_info("probabilities", TensorProto.FLOAT, [None, n_outputs])],
        initializers,
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)])
    model.ir_version = 8
    onnx.checker.check_model(model)
    return model.SerializeToString()


def _metadata(model_dir: Path) -> dict[str, Any]:
    return json.loads((model_dir / "metadata.json").read_text())


def _write_metadata(model_dir: Path, metadata: dict[str, Any]) -> None:
    (model_dir / "metadata.json").write_text(json.dumps(metadata))


def replace_onnx(data: bytes) -> Breakage:
    """A valid directory around another graph: the new file's true hash is recorded."""

    def breakage(model_dir: Path) -> None:
        (model_dir / "model.onnx").write_bytes(data)
        metadata = _metadata(model_dir)
        metadata[HASH_KEY] = hashlib.sha256(data).hexdigest()
        _write_metadata(model_dir, metadata)

    return breakage


def flip_bits(seed: int) -> Breakage:
    def breakage(model_dir: Path) -> None:
        data = bytearray((model_dir / "model.onnx").read_bytes())
        rng = random.Random(seed)
        data[rng.randrange(len(data))] ^= 1 << rng.randrange(8)
        (model_dir / "model.onnx").write_bytes(bytes(data))

    return breakage


def edit(**changes: Any) -> Breakage:
    def breakage(model_dir: Path) -> None:
        metadata = _metadata(model_dir)
        metadata.update(changes)
        _write_metadata(model_dir, metadata)

    return breakage


def edit_path(path: tuple[Any, ...], value: Any) -> Breakage:
    """Set one nested metadata field (NaN is written as JSON's non-standard ``NaN``)."""

    def breakage(model_dir: Path) -> None:
        metadata = _metadata(model_dir)
        node = metadata
        for key in path[:-1]:
            node = node[key]
        node[path[-1]] = value
        _write_metadata(model_dir, metadata)

    return breakage


def calibration_y(values: Callable[[list[float]], list[Any]]) -> Breakage:
    def breakage(model_dir: Path) -> None:
        metadata = _metadata(model_dir)
        knots = metadata["calibration"]["risk_above"]["economy"]
        knots["y"] = values(knots["y"])
        _write_metadata(model_dir, metadata)

    return breakage


def without(key: str) -> Breakage:
    def breakage(model_dir: Path) -> None:
        metadata = _metadata(model_dir)
        del metadata[key]
        _write_metadata(model_dir, metadata)

    return breakage


def write_metadata_text(text: str) -> Breakage:
    return lambda model_dir: (model_dir / "metadata.json").write_text(text)


THRESHOLDS = ("operating_points", 0, "thresholds", "economy")
BROKEN: list[tuple[str, Breakage, str]] = [
    *[(f"bit-flip-{seed}", flip_bits(seed), "sha256 .* does not match") for seed in range(12)],
    (
        "truncated-onnx",
        lambda d: (d / "model.onnx").write_bytes((d / "model.onnx").read_bytes()[:1000]),
        "does not match",
    ),
    ("two-column-onnx", replace_onnx(tiny_onnx(n_outputs=2)), r"shape \[\d+, 2\], expected"),
    ("nan-output-onnx", replace_onnx(tiny_onnx(post="nan")), "not finite"),
    ("outputs-above-one", replace_onnx(tiny_onnx(post="shifted")), r"outside \[0, 1\]"),
    ("rows-not-summing-to-one", replace_onnx(tiny_onnx(post="tenth")), "do not sum to 1"),
    ("wrong-input-name", replace_onnx(tiny_onnx(input_name="x")), "expected input 'features'"),
    (
        "nan-calibration",
        calibration_y(lambda y: [float("nan")] * len(y)),
        r"calibration.risk_above.economy.y: expected numbers in \[0, 1\], found nan",
    ),
    ("all-zero-calibration", calibration_y(lambda y: [0.0] * len(y)), "economy.y: is constant"),
    ("calibration-above-one", calibration_y(lambda y: [v + 2 for v in y]), "economy.y: expected"),
    ("decreasing-calibration", calibration_y(lambda y: y[::-1]), "must not decrease"),
    ("calibration-strings", calibration_y(lambda y: [str(v) for v in y]), "economy.y: expected"),
    (
        "calibration-x-y-lengths",
        calibration_y(lambda y: y[:-1]),
        "x and y need the same length",
    ),
    ("calibration-not-object", edit(calibration=[1, 2]), "calibration: expected an object"),
    ("threshold-above-one", edit_path(THRESHOLDS, 1.5), r"thresholds.economy: expected .*1.5"),
    ("threshold-negative", edit_path(THRESHOLDS, -0.1), "thresholds.economy"),
    ("threshold-nan", edit_path(THRESHOLDS, float("nan")), "thresholds.economy"),
    ("threshold-string", edit_path(THRESHOLDS, "0.3"), "thresholds.economy"),
    ("threshold-bool", edit_path(THRESHOLDS, True), "thresholds.economy"),
    ("threshold-missing", edit_path(("operating_points", 0, "thresholds"), {}), "economy"),
    (
        "target-out-of-range",
        edit_path(("operating_points", 0, "target_under_routing"), 7),
        "target_under_routing",
    ),
    ("operating-points-object", edit(operating_points={}), "operating_points: expected a list"),
    ("operating-points-empty", edit(operating_points=[]), "operating_points: expected a list"),
    (
        "duplicate-operating-point",
        lambda d: edit(operating_points=_metadata(d)["operating_points"] * 2)(d),
        "duplicate operating point",
    ),
    ("default-point-number", edit(default_operating_point=3), "default_operating_point"),
    ("tiers-5", edit(tiers=5), "tiers: 5; this runtime routes"),
    ("tiers-reordered", edit(tiers=["premium", "standard", "economy"]), "tiers"),
    ("format-version-true", edit(format_version=True), "format_version: True"),
    ("format-version-string", edit(format_version="1"), "format_version"),
    ("feature-schema-string", edit(feature_schema="v1"), "feature_schema: expected an object"),
    ("feature-names-number", edit_path(("feature_schema", "names"), 7), "feature_schema.names"),
    ("hash-missing", without(HASH_KEY), "model_sha256: missing"),
    ("hash-malformed", edit(model_sha256="abc"), "expected 64 hex digits"),
    ("hash-of-another-file", edit(model_sha256="0" * 64), "does not match"),
    ("metadata-deeply-nested", write_metadata_text("[" * 100_000), "unreadable"),
    ("metadata-5000-digit-int", write_metadata_text('{"a": ' + "9" * 5000 + "}"), "unreadable"),
    ("metadata-huge-value-echo", edit_path(THRESHOLDS, "x" * 1_000_000), "thresholds.economy"),
]


@pytest.mark.parametrize(
    ("breakage", "reason"), [row[1:] for row in BROKEN], ids=[row[0] for row in BROKEN]
)
def test_broken_model_directory_is_refused_at_load(
    tiny_model_dir: Path, tmp_path: Path, breakage: Breakage, reason: str
) -> None:
    model_dir = Path(shutil.copytree(tiny_model_dir, tmp_path / "model"))
    breakage(model_dir)
    with pytest.raises(ModelLoadError, match=reason) as info:
        TierModel.load(model_dir)
    assert str(model_dir) in str(info.value)  # names the file
    assert len(str(info.value)) < 800  # a huge bad value is not echoed whole
    with pytest.raises(ModelLoadError, match=reason):
        Router.load(model_dir)


def test_a_valid_hand_built_graph_loads(tiny_model_dir: Path, tmp_path: Path) -> None:
    """The table's graph builder is sound: its softmax graph loads and routes."""
    model_dir = Path(shutil.copytree(tiny_model_dir, tmp_path / "model"))
    replace_onnx(tiny_onnx())(model_dir)
    model = TierModel.load(model_dir)
    assert model.predict_proba(np.zeros((2, N_FEATURES), dtype=np.float32)).shape == (2, 3)


def test_shipped_and_trained_models_record_their_hash(tiny_model_dir: Path) -> None:
    from router_ml.model import default_model_dir

    for model_dir in (tiny_model_dir, default_model_dir()):
        digest = hashlib.sha256((model_dir / "model.onnx").read_bytes()).hexdigest()
        assert _metadata(model_dir)[HASH_KEY] == digest


def test_a_nan_risk_at_run_time_escalates() -> None:
    """A model that answers NaN on one row only (the probe cannot see it) sends it to premium."""
    nan = float("nan")
    assert RiskCalibrator().risk_row([nan, nan, nan]) == [1.0, 1.0]
    calibrated = RiskCalibrator([([0.0, 1.0], [0.0, 1.0])] * 2)
    assert calibrated.risk_row([nan, nan, nan]) == [1.0, 1.0]
