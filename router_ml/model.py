"""Load a trained tier model (ONNX + metadata) and turn feature rows into escalation risks.

A model directory holds ``model.onnx`` and ``metadata.json``. The metadata carries the feature
schema the model was trained on; loading refuses a model whose schema differs from the one this
runtime computes (:class:`SchemaMismatch`), because feeding it shifted columns would route
silently wrong. Every other field, the sha256 of ``model.onnx`` and a probe prediction are checked
at load too (``model_checks``), so a broken directory fails there, not per request. onnxruntime
runs with one intra-op thread: on a 2-core box a second thread loses more to contention than it
gains on a ~30 µs tree ensemble.
"""

from __future__ import annotations

import json
import os
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import onnxruntime as ort

from router_ml.calibration import RiskCalibrator
from router_ml.coverage import Coverage
from router_ml.errors import ModelLoadError, SchemaMismatch, shown
from router_ml.features import FEATURE_SCHEMA, N_FEATURES
from router_ml.model_checks import check_metadata, check_model_bytes, check_probe, probe_rows
from router_ml.text_embedding import TextEmbedding, file_sha256
from router_ml.tiers import TIERS

MAX_METADATA_BYTES = 64 << 20
MODEL_ENV_VAR = "ROUTER_ML_MODEL"
INPUT_NAME = "features"
OUTPUT_NAME = "probabilities"
_REQUIRED_KEYS = (
    "format_version",
    "feature_schema",
    "tiers",
    "calibration",
    "operating_points",
    "default_operating_point",
)


@dataclass(frozen=True)
class OperatingPoint:
    """Thresholds on the calibrated risks, with what they achieved on the validation split."""

    name: str
    target_under_routing: float | None
    thresholds: tuple[float, float]
    validation: Mapping[str, float]

    @classmethod
    def from_dict(cls, spec: Mapping[str, Any]) -> OperatingPoint:
        thresholds = spec["thresholds"]
        return cls(
            name=str(spec["name"]),
            target_under_routing=spec.get("target_under_routing"),
            thresholds=(float(thresholds["economy"]), float(thresholds["standard"])),
            validation=dict(spec.get("validation", {})),
        )


@dataclass(frozen=True)
class EvaluationContract:
    """How the model's labels, costs and split were defined: what an evaluation must reproduce.

    Training writes it into ``metadata.json`` (``contract``); evaluation reads it from the model
    it evaluates and never from its own defaults, so a model trained with another label rule,
    output-token assumption or split is measured by its own. The training config is the one
    place the defaults live.
    """

    label_per_tier: int
    """Representative models per tier and source in the reference label rule."""
    label_tolerance: float | None
    """Label tolerance; None: 0 on pass/fail sources, 0.1 on graded ones."""
    output_tokens_default: int
    """Output tokens priced for a request without ``max_tokens``."""
    split_fractions: tuple[float, float, float]
    """Train / validation / test shares of the grouped split."""
    split_seed: int

    def to_dict(self) -> dict[str, Any]:
        return {
            "labels": {"per_tier": self.label_per_tier, "tolerance": self.label_tolerance},
            "cost": {"output_tokens_default": self.output_tokens_default},
            "split": {"fractions": list(self.split_fractions), "seed": self.split_seed},
        }

    @classmethod
    def from_metadata(cls, metadata: Mapping[str, Any]) -> EvaluationContract:
        """The contract of a model's metadata.

        Models written before the ``contract`` key carry the same values in their
        ``training_config``; both are read, so older model directories still evaluate by their
        own rules.
        """
        contract = metadata.get("contract")
        if contract is not None:
            labels, cost, split = contract["labels"], contract["cost"], contract["split"]
            per_tier, tolerance = labels["per_tier"], labels["tolerance"]
            output_tokens, fractions, seed = (
                cost["output_tokens_default"],
                split["fractions"],
                split["seed"],
            )
        else:
            config = metadata["training_config"]
            per_tier, tolerance = config["labels"]["per_tier"], config["labels"]["tolerance"]
            output_tokens = config["cost"]["assumed_output_tokens"]
            fractions, seed = config["split"]["fractions"], config["seed"]
        train, validation, test = (float(f) for f in fractions)
        return cls(
            label_per_tier=int(per_tier),
            label_tolerance=None if tolerance is None else float(tolerance),
            output_tokens_default=int(output_tokens),
            split_fractions=(train, validation, test),
            split_seed=int(seed),
        )


def parse_operating_point(value: str | None) -> str | float | None:
    """A command-line operating point: a number is a target under-routing rate, else a name."""
    if value is None:
        return None
    try:
        return float(value)
    except ValueError:
        return value


def default_model_dir() -> Path:
    """Where the shipped model lives: ``$ROUTER_ML_MODEL``, the wheel's copy, or the repo's."""
    from_env = os.environ.get(MODEL_ENV_VAR)
    if from_env:
        return Path(from_env)
    package_dir = Path(__file__).resolve().parent
    for candidate in (package_dir / "_shipped_model", package_dir.parent / "models" / "default"):
        if (candidate / "metadata.json").is_file():
            return candidate
    raise ModelLoadError(
        f"no shipped model found (looked in {package_dir / '_shipped_model'} and "
        f"{package_dir.parent / 'models' / 'default'}); pass model_dir or set {MODEL_ENV_VAR}"
    )


class TierModel:
    """An ONNX tier classifier with its calibration and operating points."""

    def __init__(
        self,
        session: ort.InferenceSession,
        metadata: Mapping[str, Any],
        source: str = "",
        text_embedding: TextEmbedding | None = None,
    ) -> None:
        self._session = session
        self._outputs = [OUTPUT_NAME]
        # Passing run options explicitly skips onnxruntime's per-call default construction.
        self._run_options = ort.RunOptions()
        self.metadata = metadata
        self.source = source
        self.text_embedding = text_embedding
        """The token-embedding table the model's ``text_emb_*`` features need (None: not used)."""
        self.calibrator = RiskCalibrator.from_dict(metadata["calibration"], TIERS)
        self.operating_points = {
            op.name: op for op in map(OperatingPoint.from_dict, metadata["operating_points"])
        }
        default = metadata["default_operating_point"]
        if default not in self.operating_points:
            raise ModelLoadError(
                f"{source}: default operating point {shown(default)} is not defined"
            )
        self.default_operating_point = self.operating_points[default]
        # Models trained before coverage was stored have none: their requests get no ood score.
        spec = metadata.get("coverage")
        self.coverage = Coverage.from_dict(spec) if spec is not None else None
        if self.coverage is not None and list(self.coverage.names) != list(FEATURE_SCHEMA.names):
            raise ModelLoadError(f"{source}: coverage ranges name other features than the schema")
        self.contract = EvaluationContract.from_metadata(metadata)
        """How this model's labels, costs and split were defined (``metadata.json`` contract)."""

    @classmethod
    def load(cls, model_dir: str | os.PathLike[str] | None = None) -> TierModel:
        """Load, validate and warm up the model in ``model_dir`` (None: the shipped model)."""
        directory = Path(model_dir) if model_dir is not None else default_model_dir()
        metadata = _read_metadata(directory)
        _check_schema(metadata, directory)
        onnx_path = directory / "model.onnx"
        try:
            onnx_bytes = onnx_path.read_bytes()
        except OSError as exc:
            raise ModelLoadError(f"{onnx_path}: not a loadable ONNX model: {exc}") from exc
        check_model_bytes(onnx_bytes, metadata, onnx_path)
        options = ort.SessionOptions()
        options.intra_op_num_threads = 1
        options.inter_op_num_threads = 1
        options.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
        options.log_severity_level = 3
        try:
            session = ort.InferenceSession(
                onnx_bytes, sess_options=options, providers=["CPUExecutionProvider"]
            )
        except Exception as exc:  # onnxruntime raises its own untyped errors for bad files
            raise ModelLoadError(f"{onnx_path}: not a loadable ONNX model: {exc}") from exc
        _check_signature(session, onnx_path)
        embedding = _load_text_embedding(metadata, directory)
        try:
            model = cls(session, metadata, source=str(directory), text_embedding=embedding)
        except (KeyError, TypeError, ValueError) as exc:
            raise ModelLoadError(
                f"{directory / 'metadata.json'}: invalid field: {shown(exc)}"
            ) from exc
        # The probe also warms the session up, so the first client does not pay for it.
        probe = probe_rows(metadata)
        try:
            output = model.predict_proba(probe)
        except Exception as exc:  # onnxruntime's untyped errors: a graph that cannot run
            raise ModelLoadError(f"{onnx_path}: probe prediction failed: {shown(exc)}") from exc
        check_probe(output, len(probe), onnx_path)
        return model

    def predict_proba(self, features: np.ndarray) -> np.ndarray:
        """Raw class probabilities ``(n, 3)`` in TIERS order."""
        return self._session.run(self._outputs, {INPUT_NAME: features}, self._run_options)[0]

    def risks(self, features: np.ndarray) -> np.ndarray:
        """Calibrated P(needs more than economy), P(needs more than standard): ``(n, 2)``."""
        return self.calibrator.risks(self.predict_proba(features))

    def operating_point(self, choice: str | float | None = None) -> OperatingPoint:
        """The operating point by name, by target under-routing rate, or the default.

        A numeric target picks the stored point with the largest target not above it, so asking
        for 3% never silently gives 5%.
        """
        if choice is None:
            return self.default_operating_point
        if isinstance(choice, str):
            try:
                return self.operating_points[choice]
            except KeyError:
                raise ValueError(
                    f"unknown operating point {shown(choice)}; "
                    f"known: {sorted(self.operating_points)}"
                ) from None
        targets = {
            name: op.target_under_routing
            for name, op in self.operating_points.items()
            if op.target_under_routing is not None
        }
        eligible = {name: t for name, t in targets.items() if t <= choice + 1e-12}
        if not eligible:
            raise ValueError(
                f"no stored operating point has a target under-routing <= {choice}; "
                f"stored: {sorted(targets.values())}"
            )
        return self.operating_points[max(eligible, key=eligible.__getitem__)]


def read_metadata(directory: str | os.PathLike[str]) -> dict[str, Any]:
    """The validated ``metadata.json`` of a model directory (raises ``ModelLoadError``)."""
    return _read_metadata(Path(directory))


def write_metadata(directory: str | os.PathLike[str], metadata: Mapping[str, Any]) -> Path:
    """Write ``metadata.json`` atomically (temporary file, then rename); returns its path.

    A reader (a gateway reloading the model) never sees half a file. Values become plain JSON:
    numpy scalars their Python twins, NaN and infinity null, so the file stays strict JSON.
    """
    path = Path(directory) / "metadata.json"
    partial = path.with_name(path.name + ".partial")
    partial.write_text(json.dumps(_jsonable(metadata), indent=1) + "\n", encoding="utf-8")
    partial.replace(path)
    return path


def _jsonable(value: Any) -> Any:
    if isinstance(value, Mapping):
        return {str(k): _jsonable(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_jsonable(v) for v in value]
    if isinstance(value, np.generic):
        value = value.item()
    if isinstance(value, float) and not np.isfinite(value):
        return None
    return value


def _read_metadata(directory: Path) -> dict[str, Any]:
    path = directory / "metadata.json"
    try:
        if path.stat().st_size > MAX_METADATA_BYTES:
            raise ModelLoadError(f"{path}: larger than {MAX_METADATA_BYTES} bytes")
        metadata = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise ModelLoadError(
            f"{path}: missing; is {directory} a router-ml model directory?"
        ) from None
    except (OSError, UnicodeDecodeError, ValueError, RecursionError) as exc:
        # ValueError covers malformed JSON and integers over Python's 4,300-digit limit.
        raise ModelLoadError(f"{path}: unreadable: {str(exc)[:300]}") from exc
    if not isinstance(metadata, dict):
        raise ModelLoadError(f"{path}: expected a JSON object")
    missing = [key for key in _REQUIRED_KEYS if key not in metadata]
    if missing:
        raise ModelLoadError(f"{path}: missing keys {missing}")
    check_metadata(metadata, path)
    return metadata


def _load_text_embedding(metadata: Mapping[str, Any], directory: Path) -> TextEmbedding | None:
    """The table named in the metadata, checked against its recorded sha256."""
    spec = metadata.get("text_embedding")
    if spec is None:
        return None
    path = directory / str(spec.get("file", ""))
    if not path.is_file():
        raise ModelLoadError(f"{path}: text embedding named in metadata.json is missing")
    if file_sha256(path) != spec.get("sha256"):
        raise ModelLoadError(f"{path}: sha256 differs from metadata.json; the file was changed")
    try:
        return TextEmbedding.load(path)
    except (OSError, ValueError, KeyError) as exc:
        raise ModelLoadError(f"{path}: not a text embedding table: {exc}") from exc


def _check_schema(metadata: Mapping[str, Any], directory: Path) -> None:
    schema = metadata["feature_schema"]
    if not isinstance(schema, dict):
        raise ModelLoadError(f"{directory}: feature_schema must be an object")
    if schema.get("hash") == FEATURE_SCHEMA.hash and schema.get("names") == list(
        FEATURE_SCHEMA.names
    ):
        return
    theirs = schema.get("names") or []
    ours = list(FEATURE_SCHEMA.names)
    missing = [n for n in ours if n not in theirs][:5]
    extra = [n for n in theirs if n not in ours][:5]
    raise SchemaMismatch(
        f"{directory}: model was trained on feature schema v{schema.get('version')} "
        f"(hash {schema.get('hash')}), this runtime computes v{FEATURE_SCHEMA.version} "
        f"(hash {FEATURE_SCHEMA.hash}); features missing from the model: {missing}, unknown: "
        f"{extra}. Retrain with `router-ml train` or install the router-ml version that built it."
    )


def _check_signature(session: ort.InferenceSession, path: Path) -> None:
    inputs = {i.name: i for i in session.get_inputs()}
    outputs = {o.name for o in session.get_outputs()}
    if INPUT_NAME not in inputs or OUTPUT_NAME not in outputs:
        raise ModelLoadError(
            f"{path}: expected input {INPUT_NAME!r} and output {OUTPUT_NAME!r}, found inputs "
            f"{sorted(inputs)} and outputs {sorted(outputs)}"
        )
    width = inputs[INPUT_NAME].shape[-1]
    if isinstance(width, int) and width != N_FEATURES:
        raise SchemaMismatch(
            f"{path}: ONNX input has {width} features, the schema has {N_FEATURES}"
        )
