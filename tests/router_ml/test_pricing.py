"""The price catalog and the one cost formula shared by gateway, route --batch and analyze."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from router_ml.features import FEATURE_NAMES, N_FEATURES
from router_ml.pricing import (
    ASSUMED_OUTPUT_TOKENS,
    CatalogError,
    Price,
    PriceCatalog,
    SpendSummary,
    estimated_tokens,
    request_costs,
)

CATALOG = {
    "_tiers": {
        "economy": {"input_usd_per_mtok": 1.0, "output_usd_per_mtok": 5.0},
        "standard": {"input_usd_per_mtok": 3.0, "output_usd_per_mtok": 15.0},
        "premium": {"input_usd_per_mtok": 15.0, "output_usd_per_mtok": 75.0},
    },
    "mini": {"tier": "economy", "input_usd_per_mtok": 0.15, "output_usd_per_mtok": 0.6},
    "unpriced": {"tier": None},
}


def test_model_price_then_tier_price_then_unknown() -> None:
    catalog = PriceCatalog.from_dict(CATALOG)
    assert catalog.cost("mini", "economy", 1e6, 1e6) == pytest.approx(0.75)
    assert catalog.cost("not-listed", "standard", 1e6, 0) == pytest.approx(3.0)
    assert catalog.cost("not-listed", None, 1e6, 0) is None
    assert catalog.tier_of("mini") == "economy" and catalog.tier_of("unpriced") is None
    assert catalog.premium_cost(1000, 100) == pytest.approx((1000 * 15 + 100 * 75) / 1e6)


def test_tier_price_matrix_uses_the_tier_model_when_listed() -> None:
    catalog = PriceCatalog.from_dict(CATALOG)
    matrix = catalog.tier_price_matrix({"economy": "mini", "standard": "x", "premium": "y"})
    assert matrix.tolist() == [[0.15, 0.6], [3.0, 15.0], [15.0, 75.0]]


@pytest.mark.parametrize(
    "spec, message",
    [
        ({}, "_tiers"),
        ({"_tiers": {"economy": {}}}, "_tiers"),
        ({**CATALOG, "m": {"tier": "gold"}}, "unknown tier"),
        ({**CATALOG, "m": {"input_usd_per_mtok": "x", "output_usd_per_mtok": 1}}, "numeric"),
        ({**CATALOG, "m": {"input_usd_per_mtok": -1, "output_usd_per_mtok": 1}}, "non-negative"),
        ([], "JSON object"),
    ],
)
def test_bad_catalogs_are_refused_with_the_reason(spec: object, message: str) -> None:
    with pytest.raises(CatalogError, match=message):
        PriceCatalog.from_dict(spec)


def test_load_reads_the_shared_format_and_reports_bad_files(tmp_path: Path) -> None:
    path = tmp_path / "models.json"
    path.write_text(json.dumps(CATALOG))
    assert PriceCatalog.load(path).price("mini") == Price(0.15, 0.6)
    path.write_text("{")
    with pytest.raises(CatalogError, match="invalid JSON"):
        PriceCatalog.load(path)
    with pytest.raises(CatalogError, match="cannot read"):
        PriceCatalog.load(tmp_path / "missing.json")
    assert PriceCatalog.load_default().tier_prices["premium"] == Price(15.0, 75.0)


def test_request_costs_and_validation() -> None:
    costs = request_costs(np.array([1e6, 0]), np.array([0, 1e6]), np.array([[1, 5], [15, 75]]))
    assert costs.tolist() == [[1.0, 15.0], [5.0, 75.0]]
    with pytest.raises(ValueError, match="non-negative"):
        request_costs(np.array([-1]), np.array([0]), np.array([[1, 5]]))


def test_estimated_tokens_from_features() -> None:
    features = np.zeros((2, N_FEATURES), dtype=np.float32)
    features[:, FEATURE_NAMES.index("tokens_total")] = [100, 200]
    features[1, FEATURE_NAMES.index("max_tokens")] = 50
    features[1, FEATURE_NAMES.index("has_max_tokens")] = 1
    input_tokens, output_tokens = estimated_tokens(features)
    assert input_tokens.tolist() == [100, 200]
    assert output_tokens.tolist() == [ASSUMED_OUTPUT_TOKENS, 50]


def test_spend_summary_counts_and_compares_with_all_premium() -> None:
    catalog = PriceCatalog.from_dict(CATALOG)
    summary = SpendSummary.of(
        ["economy", "premium"], np.array([1e6, 1e6]), np.array([0.0, 0.0]), catalog
    )
    assert summary.counts == {"economy": 1, "standard": 0, "premium": 1}
    assert summary.cost_usd == pytest.approx(16.0) and summary.premium_cost_usd == 30.0
    assert "53.3% of premium" in summary.lines()[1]


def test_billed_tokens_count_tool_schemas_and_follow_max_tokens() -> None:
    from router_ml.pricing import billed_input_tokens, expected_output_tokens
    from router_ml.request import parse_request
    from router_ml.tokenizer import TokenCounter

    counter = TokenCounter()
    tool = {"type": "function", "function": {"name": "lookup", "parameters": {"type": "object"}}}
    bare = parse_request({"messages": [{"role": "user", "content": "Find order 42"}]})
    with_tools = parse_request({**_body(bare_text="Find order 42"), "tools": [tool]})
    assert billed_input_tokens(with_tools, counter) > billed_input_tokens(bare, counter) > 0
    assert expected_output_tokens(bare) == ASSUMED_OUTPUT_TOKENS
    assert expected_output_tokens(bare, default=100) == 100
    limited = parse_request({**_body(bare_text="hi"), "max_tokens": 4000})
    assert expected_output_tokens(limited) == 4000  # a limit is priced as given, never capped


def _body(bare_text: str) -> dict:
    return {"messages": [{"role": "user", "content": bare_text}]}
