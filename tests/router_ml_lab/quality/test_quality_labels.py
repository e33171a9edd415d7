"""The reference label rule: representatives, tolerance, partial tiers, every-tier-fails."""

from __future__ import annotations

import pytest

from router_ml_lab.quality.data import TrafficRecord
from router_ml_lab.quality.labels import (
    Catalog,
    TierRepresentatives,
    label_from_scores,
    label_records,
)

CATALOG = Catalog.from_dict(
    {
        "_tiers": {
            t: {"input_usd_per_mtok": p, "output_usd_per_mtok": 2 * p}
            for t, p in (("economy", 1), ("standard", 3), ("premium", 15))
        },
        "e1": {"tier": "economy", "input_usd_per_mtok": 0.1, "output_usd_per_mtok": 0.2},
        "e2": {"tier": "economy", "input_usd_per_mtok": 0.2, "output_usd_per_mtok": 0.4},
        "e3": {"tier": "economy", "input_usd_per_mtok": 0.3, "output_usd_per_mtok": 0.6},
        "s1": {"tier": "standard", "input_usd_per_mtok": 3, "output_usd_per_mtok": 15},
        "p1": {"tier": "premium", "input_usd_per_mtok": 15, "output_usd_per_mtok": 75},
        "x": {"tier": None},
    }
)
CATALOG_SPEC_TIERS = {
    t: {"input_usd_per_mtok": 1, "output_usd_per_mtok": 1}
    for t in ("economy", "standard", "premium")
}


def rec(
    outcomes: dict[str, float], source: str = "src", tier: str | None = None, rid: str = "r"
) -> TrafficRecord:
    return TrafficRecord(
        rid, source, "", {"messages": [{"role": "user", "content": "q"}]}, outcomes, tier
    )


def test_catalog_maps_models_to_tiers_and_prices() -> None:
    assert CATALOG.tier_of("s1") == "standard" and CATALOG.tier_of("x") is None
    assert CATALOG.tier_prices["premium"] == (15.0, 30.0)
    assert "e1" in CATALOG and "nope" not in CATALOG
    with pytest.raises(ValueError, match="_tiers"):
        Catalog.from_dict({"m": {"tier": "economy"}})
    with pytest.raises(ValueError, match="unknown tier"):
        Catalog.from_dict({"_tiers": CATALOG_SPEC_TIERS, "m": {"tier": "gold"}})


def test_representatives_are_the_best_models_of_each_tier_per_source() -> None:
    records = [
        rec({"e1": 1, "e2": 0, "e3": 1, "s1": 1, "p1": 1, "x": 1}, rid="1"),
        rec({"e1": 1, "e2": 0, "e3": 0, "s1": 0, "p1": 1, "x": 0}, rid="2"),
    ]
    reps = TierRepresentatives.fit(records, CATALOG, per_tier=2)
    assert reps.models["src"]["economy"] == ("e1", "e3")  # e2 is the economy tier's worst
    assert reps.models["src"]["standard"] == ("s1",)  # fewer when the tier has fewer
    assert reps.tolerance["src"] == 0.0  # pass/fail source
    assert reps.tier_scores(records[1]) == {"economy": 0.5, "standard": 0.0, "premium": 1.0}
    assert reps.label(records[0]) == 0
    assert reps.label(records[1]) == 2


def test_graded_sources_get_a_tolerance() -> None:
    records = [rec({"e1": 0.75, "p1": 0.8}, rid="1"), rec({"e1": 0.5, "p1": 0.9}, rid="2")]
    reps = TierRepresentatives.fit(records, CATALOG, per_tier=3)
    assert reps.tolerance["src"] == pytest.approx(0.1)
    assert label_records(records, reps) == [0, 2]  # 0.75 is within 0.1 of 0.8; 0.5 is not


def test_every_tier_failing_labels_the_cheapest_present_tier() -> None:
    assert label_from_scores({"economy": 0, "standard": 0, "premium": 0}, 0.0) == 0
    assert label_from_scores({"standard": 0, "premium": 0}, 0.0) == 1


def test_partial_tiers_use_what_they_say_and_never_invent_the_missing_tier() -> None:
    # Only economy and premium were run: economy failing means premium, not standard.
    assert label_from_scores({"economy": 0, "premium": 1}, 0.0) == 2
    assert label_from_scores({"economy": 1, "premium": 1}, 0.0) == 0
    # Only economy and standard: standard passing is the best evidence, premium is unknown.
    assert label_from_scores({"economy": 0, "standard": 1}, 0.0) == 1
    reps = TierRepresentatives(
        {"src": {"economy": ("e1",), "standard": ("s1",), "premium": ("p1",)}}, {"src": 0.0}
    )
    assert reps.tier_scores(rec({"e1": 0, "p1": 1})) == {"economy": 0.0, "premium": 1.0}


def test_single_tier_records_have_no_label_except_passing_economy() -> None:
    assert label_from_scores({"economy": 0.5}, 0.0) == 0
    assert label_from_scores({"economy": 0.4}, 0.0) is None
    assert label_from_scores({"premium": 1.0}, 0.0) is None
    assert label_from_scores({}, 0.0) is None


def test_direct_tier_label_wins_and_deployed_models_can_be_named() -> None:
    reps = TierRepresentatives.from_deployed({"economy": "e2", "premium": "p1"})
    assert reps.label(rec({"e2": 0, "p1": 1}, source="any")) == 2
    assert reps.label(rec({"e2": 0, "p1": 1}, tier="economy")) == 0
    assert reps.tier_scores(rec({"e1": 1, "p1": 1})) == {"premium": 1.0}
    with pytest.raises(ValueError, match="unknown tiers"):
        TierRepresentatives.from_deployed({"gold": "p1"})


def own(tier_outcomes: dict[str, float], rid: str = "own") -> TrafficRecord:
    request = {"messages": [{"role": "user", "content": "q"}]}
    return TrafficRecord(rid, "gateway", "", request, {}, None, tier_outcomes)


@pytest.mark.parametrize(
    ("tier_outcomes", "label", "bound"),
    [
        ({"economy": 0.0}, None, 1),  # economy was not enough: needs standard or premium
        ({"economy": 0.0, "standard": 1.0}, 1, None),  # escalated and passed: exact
        ({"economy": 0.0, "standard": 0.0}, 2, None),  # needs more than standard: premium
        ({"standard": 0.2}, 2, None),
        ({"economy": 0.0, "premium": 0.0}, 0, None),  # the top tier failed too: reference rule
        ({"economy": 1.0}, 0, None),
        ({"standard": 1.0}, None, None),  # one tier passing says nothing about economy
    ],
)
def test_own_traffic_failures_on_every_tier_tried_are_censored_labels(
    tier_outcomes: dict[str, float], label: int | None, bound: int | None
) -> None:
    reps = TierRepresentatives.from_deployed({})
    assert reps.label(own(tier_outcomes)) == label
    assert reps.lower_bound(own(tier_outcomes)) == bound


def test_public_records_keep_the_reference_rule_when_every_tier_fails() -> None:
    reps = TierRepresentatives.fit([rec({"e1": 0.0})], CATALOG, per_tier=3)
    assert reps.label(rec({"e1": 0.0})) is None and reps.lower_bound(rec({"e1": 0.0})) is None
