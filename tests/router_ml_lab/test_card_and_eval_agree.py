"""The model card and ``router-ml eval`` measure a model by one definition of routing quality.

Training writes the card's test-split figures; evaluation rebuilds the test split, labels and
costs from the contract the model records. For the same model and split both must print the same
APGR and cost vs premium, also when the model was trained with a non-default label rule, output
token assumption and split, which only the model's metadata can tell the evaluation.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from fixtures import tiny_config, write_fixture

from router_ml_lab.evaluate.pipeline import EvalOptions, run_evaluation
from router_ml_lab.train.pipeline import train

AGREEING_KEYS = (
    "n",
    "accuracy",
    "under_routing",
    "over_routing",
    "cost_vs_premium",
    "quality_kept",
    "apgr",
)


@pytest.mark.parametrize(
    ("overrides", "seed"),
    [
        ({}, 0),
        (
            {
                "labels": {"per_tier": 1},
                "cost": {"assumed_output_tokens": 40},
                "split": {"fractions": [0.5, 0.2, 0.3]},
            },
            3,
        ),
    ],
    ids=["default-contract", "non-default-contract"],
)
def test_card_and_eval_print_the_same_figures_on_the_test_split(
    tmp_path: Path, overrides: dict, seed: int
) -> None:
    traffic, catalog = write_fixture(tmp_path / "data", n=500, seed=seed)
    config = tiny_config(tmp_path / "data", **overrides)
    model_dir = tmp_path / "model"
    result = train([traffic], catalog, model_dir, config_path=config, seed=seed, progress=False)
    default = result.metadata["default_operating_point"]
    card = result.metadata["metrics"]["test"][default]["pooled"]

    evaluation = run_evaluation(
        EvalOptions(
            data=[str(traffic)],
            catalog=str(catalog),
            split="test",
            model=str(model_dir),
            baselines=(),
        )
    )
    (ours,) = evaluation.report["routers"]
    assert ours["name"] == "router-ml"
    for key in AGREEING_KEYS:
        assert ours["pooled"][key] == pytest.approx(card[key], abs=1e-12), key
    assert ours["routellm"]["apgr"] == pytest.approx(card["apgr"], abs=1e-12)
    # The card's own file says the same.
    saved = json.loads((model_dir / "metadata.json").read_text())
    assert saved["metrics"]["test"][default]["pooled"]["apgr"] == pytest.approx(card["apgr"])
    assert saved["contract"]["cost"]["output_tokens_default"] == (
        overrides.get("cost", {}).get("assumed_output_tokens", 256)
    )
