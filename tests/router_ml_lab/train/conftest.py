"""Fixtures of the training tests; the tiny model is ``tiny_model_dir`` in tests/conftest.py."""

from __future__ import annotations

from pathlib import Path

import pytest
from fixtures import write_fixture


@pytest.fixture(scope="session")
def fixture_data(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """Synthetic traffic and catalog (600 records with a learnable tier signal)."""
    return write_fixture(tmp_path_factory.mktemp("fixture_data"))
