"""Shared fixtures: a tiny real model and a synthetic labeled-traffic folder (tests only)."""

from __future__ import annotations

from pathlib import Path

import pytest


@pytest.fixture(scope="session")
def tiny_model(tmp_path_factory: pytest.TempPathFactory) -> Path:
    from fixtures import build_tiny_model

    return build_tiny_model(tmp_path_factory.mktemp("model") / "model", n=600)


@pytest.fixture(scope="session")
def fixture_traffic(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """``(traffic file, catalog)`` of 400 synthetic records drawn with another seed."""
    from fixtures import write_fixture

    return write_fixture(tmp_path_factory.mktemp("data"), n=400, seed=1)
