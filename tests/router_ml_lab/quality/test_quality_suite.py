"""The sense suite: its file, its scoring, and the shipped model's result on it."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from router_ml import Router
from router_ml_lab.quality.suite import load_suite, run_suite, summarize

REPO = Path(__file__).resolve().parents[3]
SENSE = REPO / "examples" / "sense.jsonl"
SENSE_CHECK = REPO / "examples" / "sense-check.jsonl"
SHIPPED = REPO / "models" / "default"


@pytest.mark.parametrize("path", [SENSE, SENSE_CHECK], ids=lambda p: p.name)
def test_the_suite_covers_every_task_table_row(path: Path) -> None:
    items = load_suite(path)
    assert len(items) >= 40 and len({i.id for i in items}) == len(items)
    assert {i.expected for i in items} == {"economy", "standard", "premium", "capable"}
    assert sum(i.hard for i in items) >= 20 and sum(not i.hard for i in items) >= 20


def test_bad_suite_lines_name_their_line(tmp_path: Path) -> None:
    bad = tmp_path / "bad.jsonl"
    bad.write_text(json.dumps({"id": "a", "kind": "k", "expected": "gold", "request": {}}) + "\n")
    with pytest.raises(ValueError, match=r"bad.jsonl:1: expected must be one of"):
        load_suite(bad)


def test_scoring_counts_hard_above_economy_and_easy_at_economy(tiny_model_dir: Path) -> None:
    items = load_suite(SENSE)

    def fixed(tier: str) -> Router:
        tiers = {"economy": "e", "standard": "s", "premium": "p"}
        return Router.load(tiny_model_dir, {"tiers": tiers, "default": {"tier": tier}})

    always_premium = summarize(run_suite(fixed("premium"), items))
    assert always_premium["hard_above_economy"] == 1.0 and always_premium["easy_at_economy"] == 0
    always_economy = summarize(run_suite(fixed("economy"), items))
    assert always_economy["hard_above_economy"] == 0 and always_economy["easy_at_economy"] == 1.0
    assert always_economy["per_kind"]["code generation"]["passed"] == 0


@pytest.mark.parametrize(
    ("path", "hard_floor", "easy_floor"),
    [(SENSE, 0.96, 0.92), (SENSE_CHECK, 0.94, 0.8)],
    ids=lambda value: getattr(value, "name", str(value)),
)
def test_shipped_model_keeps_its_suite_result(
    path: Path, hard_floor: float, easy_floor: float
) -> None:
    """The shipped model routes each suite as recorded at training, and no worse than the floors
    (this release's result: sense 29 of 29 hard, 25 of 26 easy; sense-check 54 of 56, 40 of
    48)."""
    metrics = json.loads((SHIPPED / "metadata.json").read_text())["metrics"]
    recorded = metrics["sense_suites"][path.name]
    now = summarize(run_suite(Router.load(), load_suite(path)))
    assert now["hard_above_economy"] >= recorded["hard_above_economy"]
    assert now["easy_at_economy"] >= recorded["easy_at_economy"]
    assert now["hard_above_economy"] >= hard_floor and now["easy_at_economy"] >= easy_floor
