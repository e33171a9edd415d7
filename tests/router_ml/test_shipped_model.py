"""The shipped default model: loads with the shipped policy, and its ONNX graph reproduces the
fitted LightGBM on real request shapes (the examples, and the real traffic beside the repo)."""

from __future__ import annotations

import gzip
import itertools
import json
from pathlib import Path

import numpy as np
import pytest

from router_ml import Router
from router_ml.features import FEATURE_SCHEMA, FeatureExtractor
from router_ml.model import TierModel, default_model_dir
from router_ml.tiers import TIERS

REPO = Path(__file__).resolve().parents[2]
SHIPPED = REPO / "models" / "default"


def real_requests(shared_root: Path | None, per_file: int = 150) -> list[dict]:
    requests = [
        json.loads(line)["request"] for line in (REPO / "examples" / "requests.jsonl").open()
    ]
    if shared_root is not None:
        for path in sorted((shared_root / "traffic").glob("*.jsonl.gz")) + sorted(
            (shared_root / "requests").glob("*.jsonl.gz")
        ):
            with gzip.open(path, "rt", encoding="utf-8") as handle:
                requests += [
                    json.loads(line)["request"] for line in itertools.islice(handle, per_file)
                ]
    return requests


def test_shipped_model_is_the_default_and_small() -> None:
    assert default_model_dir().resolve() == SHIPPED.resolve()
    size = sum(p.stat().st_size for p in SHIPPED.iterdir() if p.is_file())
    assert size < 5 * 1024 * 1024
    metadata = json.loads((SHIPPED / "metadata.json").read_text())
    assert metadata["feature_schema"] == FEATURE_SCHEMA.to_dict()
    assert (SHIPPED / "MODEL_CARD.md").read_text().strip()


def test_shipped_router_routes_the_examples() -> None:
    router = Router.load()
    decisions = router.route_batch(real_requests(None))
    assert all(d.tier in TIERS and d.source == "auto" for d in decisions)


def test_onnx_matches_lightgbm_on_real_requests() -> None:
    joblib = pytest.importorskip("joblib")
    pytest.importorskip("lightgbm")
    shared = REPO.parent / "shared" / "data"
    requests = real_requests(shared if (shared / "traffic").is_dir() else None)
    features = FeatureExtractor(embedding=TierModel.load(SHIPPED).text_embedding).extract_many(
        requests
    )
    estimator = joblib.load(SHIPPED / "estimator.joblib")
    expected = estimator.predict_proba(features)
    actual = TierModel.load(SHIPPED).predict_proba(features)
    assert actual.shape == expected.shape == (len(requests), 3)
    assert np.max(np.abs(actual - expected)) <= 1e-5


def test_a_follow_up_is_routed_with_the_material_it_refers_to() -> None:
    """The risk of a conversation is the higher of its two readings, and the trees never read the
    thread columns themselves (they are zero in training)."""
    from router_ml.features import FEATURE_INDEX, THREAD_FEATURES, thread_reading

    router = Router.load()
    material = (
        "Let f be a continuous function on [0, 1] with f(0) = f(1). Prove that for every "
        "positive integer n there is x in [0, 1 - 1/n] with f(x) = f(x + 1/n).\n"
        "Then show by an example that the claim fails for every h in (0, 1) that is not 1/n."
    )
    conversation = {
        "messages": [
            {"role": "user", "content": material},
            {"role": "assistant", "content": "Understood."},
            {"role": "user", "content": "Go on, write it up."},
        ]
    }
    features = router.features(conversation)[None, :]
    rows, read = thread_reading(features)
    expected = np.maximum(router.model.risks(features), router.model.risks(read))
    np.testing.assert_allclose(router.model_risks(features), expected)
    assert rows.tolist() == [0] and router.model_risks(features)[0, 0] >= 0.0
    blind = features.copy()
    blind[:, [FEATURE_INDEX[name] for name in THREAD_FEATURES]] = 0.0
    np.testing.assert_array_equal(router.model.risks(blind), router.model.risks(features))
    assert router.route(conversation).tier != "economy"
