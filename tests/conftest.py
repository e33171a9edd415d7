"""Shared fixtures: a tiny but real model trained by the real pipeline on generated data."""

from __future__ import annotations

from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
SHARED_DATA = REPO.parent / "shared" / "data"


@pytest.fixture(scope="session")
def tiny_model_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A model directory (ONNX + metadata) fitted in seconds on a learnable synthetic fixture."""
    from fixtures import build_tiny_model

    return build_tiny_model(tmp_path_factory.mktemp("tiny-model"))


@pytest.fixture(scope="session")
def shared_data() -> Path:
    """The real labeled traffic beside the repo; tests that need it skip where it is absent."""
    if not (SHARED_DATA / "traffic").is_dir():
        pytest.skip(f"real data not found at {SHARED_DATA}")
    return SHARED_DATA
