"""Figures: one style per router, and every plot draws from a minimal report without error."""

from __future__ import annotations

import matplotlib.image
import pytest

from router_ml_lab.evaluate import plots
from router_ml_lab.evaluate.savings import Savings


def _summary(under: float, quality: float, cost: float) -> dict:
    return {"n": 10, "under_routing": under, "quality_kept": quality, "cost_vs_premium": cost}


def _router(name: str, kind: str, point: tuple[float, float], hull: bool = False) -> dict:
    curve = {"strong_share": [0.0, 0.5, 1.0], "pgr": [0.0, 1.6 if kind == "reference" else 0.7, 1]}
    return {
        "name": name,
        "kind": kind,
        "pooled": _summary(0.05, point[1], point[0]),
        "per_source": {"a": _summary(0.1, float("nan"), 0.4), "b": _summary(0.0, 1.0, 1.0)},
        "routellm": {"n": 10, "apgr": 0.6, "curve": curve},
        "routellm_score": "continuous",
        "cost_quality": {
            "point": list(point),
            "hull": {"cost": [0.1, 0.5], "quality": [0.95, 0.99]} if hull else None,
            "aiq": 0.98 if hull else None,
        },
    }


REPORT = {
    "n_records": 10,
    "context": {"split": "test", "operating_point": "under_routing_0.05"},
    "routers": [
        _router("router-ml", "ours", (0.5, 0.99), hull=True),
        _router("always-economy", "baseline", (0.1, 0.95)),
        _router("oracle (label)", "reference", (0.3, 1.11)),
        _router("always-premium", "baseline", (1.0, 1.0)),
        _router("rules", "baseline", (1.0, 1.0)),
    ],
}


def test_every_router_gets_its_own_colour_and_the_oracle_a_black_star() -> None:
    styles = plots.router_styles(REPORT["routers"])
    real = [styles[r["name"]]["color"] for r in REPORT["routers"] if r["kind"] != "reference"]
    assert len(set(real)) == len(real)
    assert styles["oracle (label)"] == {"color": "black", "marker": "*"}
    assert styles["router-ml"]["marker"] == "o"
    assert "*" not in {styles[r["name"]]["marker"] for r in REPORT["routers"][:2]}


@pytest.mark.parametrize(
    "draw", [plots.cost_quality_plot, plots.routellm_plot, plots.per_source_plot]
)
def test_report_figures_are_written(draw, tmp_path) -> None:
    path = draw(REPORT, tmp_path / "figure.png")
    assert matplotlib.image.imread(path).shape[0] > 300


def test_savings_figure_is_written(tmp_path) -> None:
    shares = {"economy": 0.5, "standard": 0.2, "premium": 0.3}
    rows = [
        Savings("under_routing_0.02", False, 10, shares, 0.8, 8.0, 10.0, 1.0, 0.02),
        Savings("under_routing_0.05", True, 10, shares, 0.5, 5.0, 10.0, 0.99, 0.05),
    ]
    path = plots.savings_plot(rows, tmp_path / "s.png", 0.05, 0.99, "under_routing_0.05", "t")
    assert matplotlib.image.imread(path).shape[0] > 300
