"""The notebooks run headless end to end on a small sample of the real data."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[3]
DATA = REPO.parent / "shared" / "data"

pytestmark = [
    pytest.mark.skipif(not (DATA / "traffic").is_dir(), reason=f"no shared data at {DATA}"),
    pytest.mark.skipif(importlib.util.find_spec("nbclient") is None, reason="nbclient missing"),
]


@pytest.mark.parametrize(
    "name", ["01-traffic.ipynb", "02-train.ipynb", "03-benchmark.ipynb", "04-savings.ipynb"]
)
def test_notebook_runs_on_a_sample(name: str, tmp_path: Path, monkeypatch) -> None:
    sys.path.insert(0, str(REPO / "notebooks"))
    try:
        from run_notebooks import main
    finally:
        sys.path.remove(str(REPO / "notebooks"))
    monkeypatch.setenv("ROUTER_ML_DATA", str(DATA))
    assert main(["--sample", "300", "--out", str(tmp_path), "--timeout", "900", name]) == 0
    import nbformat

    executed = nbformat.read(tmp_path / name, as_version=4)
    code_cells = [c for c in executed.cells if c.cell_type == "code"]
    assert all(c.execution_count is not None for c in code_cells)
    assert not any(o.get("output_type") == "error" for c in code_cells for o in c.outputs)
    assert "sample: 300" in code_cells[0].outputs[0]["text"]
