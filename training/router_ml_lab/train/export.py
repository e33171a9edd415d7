"""Export the fitted LightGBM to the ONNX graph the runtime loads, and prove they agree.

The runtime feeds ``features`` (float32, [N, n_features]) and reads ``probabilities`` (float32,
[N, 3], TIERS order). The converter's other output (the argmax label) is dropped: the runtime
decides with calibrated thresholds, never the argmax. The export fails unless onnxruntime
reproduces LightGBM's ``predict_proba`` within ``tolerance`` on the given rows (the validation
split), so a converter bug can never ship silently.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import onnx
import onnxruntime as ort
from lightgbm import LGBMClassifier
from onnxmltools import convert_lightgbm
from onnxmltools.convert.common.data_types import FloatTensorType

INPUT_NAME = "features"
OUTPUT_NAME = "probabilities"


class ExportError(RuntimeError):
    """The ONNX graph does not reproduce the fitted model."""


def to_onnx(model: LGBMClassifier, n_features: int, target_opset: int) -> onnx.ModelProto:
    """ONNX graph of ``model`` with one input ``features`` and one output ``probabilities``."""
    graph_model = convert_lightgbm(
        model,
        initial_types=[(INPUT_NAME, FloatTensorType([None, n_features]))],
        zipmap=False,
        target_opset=target_opset,
    )
    graph = graph_model.graph
    outputs = list(graph.output)
    probability_outputs = [o for o in outputs if "prob" in o.name]
    if len(probability_outputs) != 1:
        raise ExportError(f"expected one probability output, got {[o.name for o in outputs]}")
    old_name = probability_outputs[0].name
    for node in graph.node:
        node.output[:] = [OUTPUT_NAME if name == old_name else name for name in node.output]
    probability_outputs[0].name = OUTPUT_NAME
    del graph.output[:]
    graph.output.append(probability_outputs[0])
    graph_model.doc_string = "router-ml tier classifier: features -> tier probabilities"
    graph.name = "router_ml_tier_model"  # the converter names it with a random uuid
    # ...and lists opset imports in set order, which varies between processes.
    opsets = sorted((o.domain, o.version) for o in graph_model.opset_import)
    del graph_model.opset_import[:]
    for domain, version in opsets:
        graph_model.opset_import.add(domain=domain, version=version)

    onnx.checker.check_model(graph_model)
    return graph_model


def onnx_probabilities(graph_model: onnx.ModelProto, features: np.ndarray) -> np.ndarray:
    """Run the graph on ``features`` with onnxruntime (single thread, like the runtime)."""
    options = ort.SessionOptions()
    options.intra_op_num_threads = 1
    options.inter_op_num_threads = 1
    session = ort.InferenceSession(
        graph_model.SerializeToString(), sess_options=options, providers=["CPUExecutionProvider"]
    )
    return session.run([OUTPUT_NAME], {INPUT_NAME: np.asarray(features, dtype=np.float32)})[0]


def check_parity(
    model: LGBMClassifier, graph_model: onnx.ModelProto, features: np.ndarray, tolerance: float
) -> float:
    """Max |ONNX − LightGBM| probability on ``features``; raises ``ExportError`` above tolerance."""
    if len(features) == 0:
        raise ExportError("parity check needs at least one row")
    expected = model.predict_proba(np.asarray(features, dtype=np.float32))
    actual = onnx_probabilities(graph_model, features)
    if actual.shape != expected.shape:
        raise ExportError(f"ONNX output shape {actual.shape}, LightGBM {expected.shape}")
    max_diff = float(np.max(np.abs(actual.astype(np.float64) - expected)))
    if not max_diff <= tolerance:
        raise ExportError(
            f"ONNX export differs from LightGBM by {max_diff:.3g} (> {tolerance:g}) on "
            f"{len(features)} rows; refusing to write the model"
        )
    return max_diff


def save_onnx(graph_model: onnx.ModelProto, path: str | os.PathLike[str]) -> Path:
    path = Path(path)
    path.write_bytes(graph_model.SerializeToString())
    return path
