"""Load-time checks of a model directory: every metadata field, the file hash, a probe prediction.

A model directory is input from outside the code (copied between machines, edited by hand,
written by another version). A broken one must fail at load, where an operator sees it, and not
per request, or worse, not at all: NaN or constant calibration maps, thresholds outside [0, 1] or a
model answering NaN all load "fine" and then route every request to one tier. So each field the
runtime reads is checked for type and range here, ``model.onnx`` is verified against the sha256
that training wrote into ``metadata.json``, and a probe batch through the ONNX session must give
``[N, 3]`` finite probabilities in [0, 1] that sum to 1. Every failure is a ``ModelLoadError``
naming the file, the field and the reason, with any quoted value cut (``errors.shown``).
"""

from __future__ import annotations

import hashlib
import itertools
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np

from router_ml.errors import ModelLoadError, shown
from router_ml.features import FLOAT32_EXACT_MAX, N_FEATURES
from router_ml.tiers import TIERS

FORMAT_VERSION = 1
HASH_KEY = "model_sha256"
"""The metadata field holding the sha256 (hex) of ``model.onnx``."""
MAX_KNOTS = 100_000
MAX_OPERATING_POINTS = 1_000
PROBABILITY_SUM_TOLERANCE = 1e-3
RANGE_TOLERANCE = 1e-6


def sha256_hex(data: bytes) -> str:
    """The hex sha256 that ``metadata.json`` stores for ``model.onnx``."""
    return hashlib.sha256(data).hexdigest()


def check_metadata(metadata: Mapping[str, Any], path: Path) -> None:
    """Type and range of every field the runtime reads; raises ``ModelLoadError`` naming it."""

    def fail(field: str, problem: str) -> ModelLoadError:
        return ModelLoadError(f"{path}: {field}: {problem}")

    version = metadata["format_version"]
    if type(version) is not int or version != FORMAT_VERSION:
        raise fail("format_version", f"{shown(version)}; this runtime reads {FORMAT_VERSION}")
    tiers = metadata["tiers"]
    if not isinstance(tiers, list) or tiers != list(TIERS):
        raise fail("tiers", f"{shown(tiers)}; this runtime routes {list(TIERS)}")
    schema = metadata["feature_schema"]
    if not isinstance(schema, Mapping):
        raise fail("feature_schema", f"expected an object, got {shown(schema)}")
    for key, kind in (("version", str), ("hash", str), ("names", list)):
        if not isinstance(schema.get(key), kind):
            raise fail(f"feature_schema.{key}", f"expected a {kind.__name__}")
    _check_calibration(metadata["calibration"], fail)
    names = _check_operating_points(metadata["operating_points"], fail)
    default = metadata["default_operating_point"]
    if not isinstance(default, str) or default not in names:
        raise fail(
            "default_operating_point", f"{shown(default)} is not defined; defined: {names[:10]}"
        )
    digest = metadata.get(HASH_KEY)
    if digest is None:
        raise fail(
            HASH_KEY,
            "missing, so model.onnx cannot be verified; re-export the model with `router-ml "
            'train`, or add "model_sha256": the sha256 hex digest of model.onnx',
        )
    if not isinstance(digest, str) or len(digest) != 64 or not _is_hex(digest):
        raise fail(HASH_KEY, f"expected 64 hex digits, got {shown(digest)}")


def check_model_bytes(data: bytes, metadata: Mapping[str, Any], path: Path) -> None:
    """``model.onnx`` is the file training wrote: its sha256 matches the metadata."""
    actual = sha256_hex(data)
    if actual != metadata[HASH_KEY].lower():
        raise ModelLoadError(
            f"{path}: sha256 {actual} does not match {HASH_KEY} {metadata[HASH_KEY]} in "
            "metadata.json: the file is corrupt, truncated or from another model"
        )


def probe_rows(metadata: Mapping[str, Any]) -> np.ndarray:
    """Feature rows the model must answer sanely: zeros, the cap, and the trained range's ends."""
    rows = [np.zeros(N_FEATURES), np.ones(N_FEATURES), np.full(N_FEATURES, FLOAT32_EXACT_MAX)]
    ranges = metadata.get("feature_ranges")
    if isinstance(ranges, Mapping):
        for key in ("min", "max"):
            values = ranges.get(key)
            if isinstance(values, list) and len(values) == N_FEATURES:
                try:
                    row = np.asarray(values, dtype=np.float64)
                except (TypeError, ValueError):
                    continue
                if np.all(np.isfinite(row)):
                    rows.append(np.clip(row, 0.0, FLOAT32_EXACT_MAX))
    return np.vstack(rows).astype(np.float32)


def check_probe(probabilities: Any, n_rows: int, path: Path) -> None:
    """The probe output is ``[n_rows, 3]`` probabilities: finite, in [0, 1], summing to 1."""
    output = np.asarray(probabilities)
    expected = (n_rows, len(TIERS))
    if output.shape != expected:
        raise ModelLoadError(
            f"{path}: probe prediction has shape {list(output.shape)}, expected "
            f"{list(expected)} (one probability per tier: {list(TIERS)})"
        )
    if not np.issubdtype(output.dtype, np.floating):
        raise ModelLoadError(f"{path}: probe prediction has dtype {output.dtype}, expected float")
    if not np.all(np.isfinite(output)):
        raise ModelLoadError(f"{path}: probe prediction is not finite (NaN or infinity)")
    low, high = float(output.min()), float(output.max())
    if low < -RANGE_TOLERANCE or high > 1 + RANGE_TOLERANCE:
        raise ModelLoadError(
            f"{path}: probe prediction outside [0, 1] (from {low:.6g} to {high:.6g})"
        )
    sums = output.astype(np.float64).sum(axis=1)
    worst = float(np.max(np.abs(sums - 1.0)))
    if worst > PROBABILITY_SUM_TOLERANCE:
        raise ModelLoadError(
            f"{path}: probe prediction rows do not sum to 1 (off by up to {worst:.6g})"
        )


def _check_calibration(spec: Any, fail: Any) -> None:
    if not isinstance(spec, Mapping):
        raise fail("calibration", f"expected an object, got {shown(spec)}")
    method = spec.get("method", "none")
    if method == "none":
        return
    if method != "isotonic":
        raise fail("calibration.method", f"{shown(method)}; expected 'isotonic' or 'none'")
    maps = spec.get("risk_above")
    if not isinstance(maps, Mapping):
        raise fail("calibration.risk_above", f"expected an object, got {shown(maps)}")
    for tier in TIERS[:-1]:
        where = f"calibration.risk_above.{tier}"
        knots = maps.get(tier)
        if not isinstance(knots, Mapping):
            raise fail(where, f"expected an object with x and y, got {shown(knots)}")
        x = _unit_numbers(knots.get("x"), f"{where}.x", fail)
        y = _unit_numbers(knots.get("y"), f"{where}.y", fail)
        if len(x) != len(y) or len(x) < 2:
            raise fail(where, f"x and y need the same length >= 2, got {len(x)} and {len(y)}")
        if any(b < a for a, b in itertools.pairwise(x)) or x[-1] <= x[0]:
            raise fail(f"{where}.x", "must increase (non-decreasing, last above first)")
        if any(b < a for a, b in itertools.pairwise(y)):
            raise fail(f"{where}.y", "must not decrease (an isotonic map)")
        if y[-1] == y[0]:
            raise fail(
                f"{where}.y",
                f"is constant ({y[0]:g}): every request would get the same risk, so one tier "
                "would serve all traffic",
            )


def _unit_numbers(values: Any, field: str, fail: Any) -> list[float]:
    if not isinstance(values, list) or not values or len(values) > MAX_KNOTS:
        raise fail(field, f"expected a list of 1 to {MAX_KNOTS} numbers, got {shown(values)}")
    for value in values:
        if not _is_unit_number(value):
            raise fail(field, f"expected numbers in [0, 1], found {shown(value)}")
    return [float(v) for v in values]


def _check_operating_points(points: Any, fail: Any) -> list[str]:
    if not isinstance(points, list) or not points or len(points) > MAX_OPERATING_POINTS:
        raise fail(
            "operating_points",
            f"expected a list of 1 to {MAX_OPERATING_POINTS} objects, got {shown(points)}",
        )
    names: list[str] = []
    for i, point in enumerate(points):
        where = f"operating_points[{i}]"
        if not isinstance(point, Mapping):
            raise fail(where, f"expected an object, got {shown(point)}")
        name = point.get("name")
        if not isinstance(name, str) or not name or len(name) > 200:
            raise fail(f"{where}.name", f"expected a non-empty name, got {shown(name)}")
        if name in names:
            raise fail(f"{where}.name", f"duplicate operating point {shown(name)}")
        names.append(name)
        thresholds = point.get("thresholds")
        if not isinstance(thresholds, Mapping):
            raise fail(f"{where}.thresholds", f"expected an object, got {shown(thresholds)}")
        for tier in TIERS[:-1]:
            if not _is_unit_number(thresholds.get(tier)):
                raise fail(
                    f"{where}.thresholds.{tier}",
                    f"expected a number in [0, 1], got {shown(thresholds.get(tier))}",
                )
        target = point.get("target_under_routing")
        if target is not None and not _is_unit_number(target):
            raise fail(
                f"{where}.target_under_routing",
                f"expected null or a number in [0, 1], got {shown(target)}",
            )
        validation = point.get("validation", {})
        if not isinstance(validation, Mapping):
            raise fail(f"{where}.validation", f"expected an object, got {shown(validation)}")
    return names


def _is_unit_number(value: Any) -> bool:
    # The comparison is False for NaN and infinities, and exact for integers of any size.
    return isinstance(value, int | float) and not isinstance(value, bool) and 0.0 <= value <= 1.0


def _is_hex(text: str) -> bool:
    return all(c in "0123456789abcdefABCDEF" for c in text)
