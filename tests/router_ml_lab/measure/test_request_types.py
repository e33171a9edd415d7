"""Request types read from the feature vector name the traffic a team recognises."""

from __future__ import annotations

import numpy as np
import pytest
from measure_fixtures import KINDS

from router_ml.features import N_FEATURES, FeatureExtractor
from router_ml_lab.measure.request_types import REQUEST_TYPES, request_types


def test_each_fixture_kind_gets_its_type() -> None:
    features = FeatureExtractor().extract_many(KINDS.values())
    named = [REQUEST_TYPES[i] for i in request_types(features)]
    assert named == list(KINDS)


def test_structure_wins_over_topic() -> None:
    """An agent turn that asks for code is an agent turn: the tools decide its cost profile."""
    body = {**KINDS["code"], "tools": KINDS["tool/agent turn"]["tools"]}
    features = FeatureExtractor().extract_many([body])
    assert REQUEST_TYPES[request_types(features)[0]] == "tool/agent turn"


def test_all_zero_features_are_open_chat_and_width_is_checked() -> None:
    assert REQUEST_TYPES[request_types(np.zeros((1, N_FEATURES)))[0]] == "open chat"
    with pytest.raises(ValueError, match="feature columns"):
        request_types(np.zeros((1, 3)))
