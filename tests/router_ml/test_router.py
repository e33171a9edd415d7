"""Router behaviour: rules before the model, escalation-biased thresholds, batch, threads."""

from __future__ import annotations

import json
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
import pytest

from router_ml import Decision, InvalidRequest, Router
from router_ml.tiers import TIERS

REPO = Path(__file__).resolve().parents[2]
EXAMPLES = [json.loads(line)["request"] for line in (REPO / "examples" / "requests.jsonl").open()]


@pytest.fixture(scope="module")
def router(tiny_model_dir: Path) -> Router:
    return Router.load(tiny_model_dir)


def test_auto_decision_has_everything_a_gateway_logs(router: Router) -> None:
    decision = router.route(EXAMPLES[0])
    assert isinstance(decision, Decision)
    assert decision.source == "auto"
    assert decision.tier in TIERS and decision.model == router.tiers[decision.tier]
    assert set(decision.probabilities) == set(TIERS)
    assert abs(sum(decision.probabilities.values()) - 1.0) < 1e-6
    assert decision.latency_us > 0
    assert f"→ {decision.tier}" in decision.reason
    json.dumps(decision.to_dict())


def test_decision_follows_the_thresholds(tiny_model_dir: Path) -> None:
    request = EXAMPLES[2]
    model_only = {"enabled": False}  # the thresholds alone; coverage is tested below
    risks = Router.load(tiny_model_dir, coverage=model_only).risks([request])[0]

    def with_thresholds(thresholds: tuple[float, float]) -> Router:
        return Router.load(tiny_model_dir, thresholds=thresholds, coverage=model_only)

    assert with_thresholds((1.0, 1.0)).route(request).tier == "economy"
    assert with_thresholds((0.0, 0.0)).route(request).tier == "premium"
    assert with_thresholds((risks[0] + 1e-6, 1.0)).route(request).tier == "economy"
    # escalates exactly at the threshold
    assert with_thresholds((risks[0], risks[1] + 1e-6)).route(request).tier == "standard"


def test_stricter_operating_point_never_routes_cheaper(tiny_model_dir: Path) -> None:
    model_router = Router.load(tiny_model_dir)
    points = sorted(
        (op for op in model_router.model.operating_points.values() if op.target_under_routing),
        key=lambda op: op.target_under_routing,
    )
    strict = Router.load(tiny_model_dir, operating_point=points[0].name)
    loose = Router.load(tiny_model_dir, operating_point=points[-1].name)
    rank = {tier: i for i, tier in enumerate(TIERS)}
    for request in EXAMPLES:
        assert rank[strict.route(request).tier] >= rank[loose.route(request).tier]


def test_rules_decide_before_the_model(tiny_model_dir: Path) -> None:
    router = Router.load(tiny_model_dir, policy=REPO / "examples" / "policy-rules.yaml")
    first = router.route(EXAMPLES[0])
    assert (first.tier, first.source, first.probabilities) == ("premium", "rule:first-reply", {})
    assert "first-reply" in first.reason
    agent = next(r for r in EXAMPLES if r.get("tools"))
    assert router.route(agent).source == "rule:tools"
    followup = next(r for r in EXAMPLES if len(r["messages"]) == 3 and not r.get("tools"))
    assert router.route(followup).source == "auto"


def test_a_rule_can_send_to_auto(tiny_model_dir: Path) -> None:
    policy = {
        "tiers": {"economy": "e", "standard": "s", "premium": "p"},
        "rules": [{"name": "beta", "match": {"metadata": {"beta": "1"}}, "tier": "auto"}],
        "default": {"tier": "premium"},
    }
    router = Router.load(tiny_model_dir, policy=policy)
    plain = router.route(EXAMPLES[0])
    assert (plain.tier, plain.source, plain.probabilities) == ("premium", "default", {})
    beta = router.route({**EXAMPLES[0], "metadata": {"beta": "1"}})
    assert beta.source == "rule:beta" and set(beta.probabilities) == set(TIERS)


def test_default_tier_without_model_call(tiny_model_dir: Path) -> None:
    policy = {
        "tiers": {"economy": "e", "standard": "s", "premium": "p"},
        "default": {"tier": "standard"},
    }
    decision = Router.load(tiny_model_dir, policy=policy).route(EXAMPLES[0])
    assert (decision.tier, decision.model, decision.source) == ("standard", "s", "default")


def test_batch_equals_one_by_one(tiny_model_dir: Path) -> None:
    router = Router.load(tiny_model_dir, policy=REPO / "examples" / "policy-rules.yaml")
    batch = router.route_batch(EXAMPLES)
    single = [router.route(r) for r in EXAMPLES]
    assert [(d.tier, d.source) for d in batch] == [(d.tier, d.source) for d in single]
    for b, s in zip(batch, single, strict=True):
        for tier in b.probabilities:
            assert b.probabilities[tier] == pytest.approx(s.probabilities[tier], abs=1e-6)
    assert router.route_batch([]) == []


def test_invalid_requests_raise_with_the_field(router: Router) -> None:
    with pytest.raises(InvalidRequest, match=r"messages\[0\]\.role"):
        router.route({"messages": [{"role": "robot", "content": "x"}]})
    with pytest.raises(InvalidRequest, match="body"):
        router.route(b"{")
    with pytest.raises(InvalidRequest):
        router.route_batch([EXAMPLES[0], {"messages": []}])


def test_bad_thresholds_are_refused(tiny_model_dir: Path) -> None:
    with pytest.raises(ValueError, match="thresholds"):
        Router.load(tiny_model_dir, thresholds=(0.5,))
    with pytest.raises(ValueError, match="thresholds"):
        Router.load(tiny_model_dir, thresholds=(0.5, 1.5))


def test_concurrent_callers_get_the_sequential_answers(router: Router) -> None:
    requests = [
        *EXAMPLES,
        *({"messages": [{"role": "user", "content": f"case {i} " * i}]} for i in range(1, 60)),
    ]
    expected = [(d.tier, d.probabilities) for d in map(router.route, requests)]
    with ThreadPoolExecutor(max_workers=8) as pool:
        for _ in range(5):
            got = list(
                pool.map(lambda r: (lambda d: (d.tier, d.probabilities))(router.route(r)), requests)
            )
            assert [g[0] for g in got] == [e[0] for e in expected]
            for (_, p_got), (_, p_expected) in zip(got, expected, strict=True):
                assert np.allclose([p_got[t] for t in TIERS], [p_expected[t] for t in TIERS])
        batches = list(pool.map(router.route_batch, [requests] * 4))
    assert all([d.tier for d in batch] == [e[0] for e in expected] for batch in batches)


def test_auto_decisions_carry_the_features_the_model_saw(tiny_model_dir: Path) -> None:
    from router_ml.features import FeatureExtractor

    router = Router.load(tiny_model_dir, policy=REPO / "examples" / "policy-rules.yaml")
    followup = next(r for r in EXAMPLES if len(r["messages"]) == 3 and not r.get("tools"))
    expected = FeatureExtractor().extract(followup)
    for decision in (router.route(followup), router.route_batch([EXAMPLES[0], followup])[1]):
        assert decision.source == "auto"
        np.testing.assert_array_equal(decision.features, expected)
        assert "features" not in decision.to_dict()
    assert router.route(EXAMPLES[0]).features is None  # a rule decided; the model never ran


def test_min_tier_floors_the_models_choice_and_says_so(tiny_model_dir: Path) -> None:
    policy = {
        "tiers": {"economy": "e", "standard": "s", "premium": "p"},
        "rules": [{"name": "tools", "match": {"tools": True}, "min_tier": "standard"}],
    }
    # The model says economy (the coverage rule, off here, is tested on its own below).
    cheap = Router.load(tiny_model_dir, policy, thresholds=(1.0, 1.0), coverage={"enabled": False})
    with_tools = {**EXAMPLES[0], "tools": [{"type": "function", "function": {"name": "f"}}]}
    floored = cheap.route(with_tools)
    assert (floored.tier, floored.model, floored.source) == ("standard", "s", "rule:tools")
    assert "raised to standard" in floored.reason and floored.probabilities
    assert cheap.route(EXAMPLES[0]).tier == "economy"  # the rule does not match: no floor
    dear = Router.load(tiny_model_dir, policy, thresholds=(0.0, 0.0), coverage={"enabled": False})
    assert dear.route(with_tools).tier == "premium"  # above the floor the model decides
    assert cheap.route_batch([with_tools, EXAMPLES[0]])[0].tier == "standard"


def test_a_cascade_decision_starts_at_its_cheapest_tier(tiny_model_dir: Path) -> None:
    policy = {
        "tiers": {"economy": "e", "standard": "s", "premium": "p"},
        "rules": [{"name": "json", "match": {"json_mode": True}, "tier": "cascade"}],
    }
    router = Router.load(tiny_model_dir, policy)
    decision = router.route({**EXAMPLES[0], "response_format": {"type": "json_object"}})
    assert (decision.tier, decision.cascade) == ("economy", ("economy", "premium"))
    assert decision.to_dict()["cascade"] == ["economy", "premium"]
    assert "cascade economy → premium" in decision.reason
    assert "cascade" not in router.route(EXAMPLES[0]).to_dict()


def test_a_request_may_use_another_stored_operating_point(tiny_model_dir: Path) -> None:
    router = Router.load(tiny_model_dir)
    names = sorted(router.model.operating_points)
    assert router.thresholds_for(None) == router.thresholds
    for name in names:
        expected = tuple(router.model.operating_point(name).thresholds)
        assert router.thresholds_for(name) == expected
        decision = router.route(EXAMPLES[2], operating_point=name)
        assert (
            decision.tier
            == Router.load(tiny_model_dir, operating_point=name).route(EXAMPLES[2]).tier
        )
    with pytest.raises(ValueError, match="unknown operating point"):
        router.route(EXAMPLES[2], operating_point="no-such-point")


def test_route_or_safe_refuses_input_that_breaks_routing(
    tiny_model_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    router = Router.load(tiny_model_dir)
    real_route = router.route

    def breaks_on_one_request(request, *args):  # type: ignore[no-untyped-def]
        if request is EXAMPLES[0]:
            raise OverflowError("int too large")
        return real_route(request, *args)

    monkeypatch.setattr(router, "route", breaks_on_one_request)
    with pytest.raises(InvalidRequest) as info:
        router.route_or_safe(EXAMPLES[0])  # the probe routes, so the request is at fault
    assert info.value.field == "body" and "OverflowError" in str(info.value)
    assert router.route_or_safe(EXAMPLES[1]).source != "fallback"


def test_route_or_safe_serves_the_safe_tier_when_the_router_is_broken(
    tiny_model_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    router = Router.load(tiny_model_dir)

    def broken(*_args):  # type: ignore[no-untyped-def]
        raise RuntimeError("model exploded")

    monkeypatch.setattr(router, "route", broken)
    decision = router.route_or_safe(EXAMPLES[0])
    assert decision.source == "fallback" and decision.tier == router.policy.safe_tier
    assert "model exploded" in decision.reason
    with pytest.raises(InvalidRequest):
        Router.load(tiny_model_dir).route_or_safe({"messages": []})


@pytest.mark.parametrize(
    ("risk", "threshold", "below"),
    [
        (0.1496, 0.14961511906887506, True),
        (0.1502, 0.1496, False),
        (0.07055, 0.07055801, True),
        (0.5, 0.5, False),
        (1e-7, 2e-7, True),
        (0.3, 0.1, False),
    ],
)
def test_reason_prints_enough_digits_for_the_comparison_to_hold(
    risk: float, threshold: float, below: bool
) -> None:
    """Issue 11.16: never 'P(needs > economy)=0.15 < 0.15'."""
    from router_ml.router import _comparison

    text = _comparison(risk, below, threshold)
    left, op, right = text.split()
    assert op == ("<" if below else ">=")
    assert (float(left) < float(right)) if below else (float(left) >= float(right))
    assert len(left.split(".")[1]) >= 2


def test_reason_comparisons_hold_as_printed_on_real_decisions(router: Router) -> None:
    import re

    for content in ("hi", "Prove Fermat's little theorem.", "Write a haiku" * 50, "2+2?"):
        reason = router.route({"messages": [{"role": "user", "content": content}]}).reason
        for left, op, right in re.findall(r"=([\d.e-]+) (<|>=) ([\d.e-]+)", reason):
            assert (float(left) < float(right)) if op == "<" else (float(left) >= float(right))


_AFTER_TOOL_ERROR = {
    "messages": [
        {"role": "user", "content": "What is the capital of country number 3?"},
        {
            "role": "assistant",
            "content": None,
            "tool_calls": [
                {"id": "1", "type": "function", "function": {"name": "f", "arguments": "{}"}}
            ],
        },
        {"role": "tool", "tool_call_id": "1", "content": "Error: upstream timed out"},
    ]
}


def test_out_of_distribution_requests_escalate_and_say_why(tiny_model_dir: Path) -> None:
    trusting = Router.load(tiny_model_dir, thresholds=(1.0, 1.0))  # the model alone: economy
    decision = trusting.route(_AFTER_TOOL_ERROR)
    assert decision.ood is not None and decision.ood > 0.99
    assert decision.tier == "premium"
    assert "out of training range" in decision.reason and "after_error=1" in decision.reason
    assert decision.to_dict()["ood"] == round(decision.ood, 4)
    question = {
        "messages": [{"role": "user", "content": "What is the capital of country number 345?"}]
    }
    inside = trusting.route(question)  # shaped like the fixture's training questions
    assert inside.ood is not None and inside.ood < trusting.model.coverage.threshold
    assert inside.tier == "economy"


def test_coverage_rule_is_configurable(tiny_model_dir: Path) -> None:
    off = Router.load(tiny_model_dir, thresholds=(1.0, 1.0), coverage={"enabled": False})
    decision = off.route(_AFTER_TOOL_ERROR)
    assert decision.tier == "economy" and decision.ood is not None and decision.ood > 0.99
    to_standard = Router.load(
        tiny_model_dir, thresholds=(1.0, 1.0), coverage={"escalate_to": "standard"}
    )
    assert to_standard.route(_AFTER_TOOL_ERROR).tier == "standard"
    policy = {
        "tiers": {"economy": "e", "standard": "s", "premium": "p"},
        "coverage": {"escalate_to": "standard", "threshold": 1.0},
    }
    from_policy = Router.load(tiny_model_dir, policy=policy, thresholds=(1.0, 1.0))
    assert from_policy.coverage_rule.escalate_to == "standard"


def test_exposed_risks_rank_as_the_router_routes(router: Router) -> None:
    from router_ml.calibration import choose_tiers

    requests = [*EXAMPLES, _AFTER_TOOL_ERROR]
    chosen = choose_tiers(router.risks(requests), router.thresholds)
    assert [TIERS[k] for k in chosen] == [d.tier for d in router.route_batch(requests)]
    assert chosen[-1] == 2


def _router_reading_kinds(model_dir: Path, thresholds: tuple[float, float]) -> Router:
    """The tiny model with a reader that knows two words: 'poem' (creative writing) and
    'recap' (summarization); the model itself routes as ``thresholds`` say."""
    from router_ml.model import TierModel
    from router_ml.policy import Policy
    from router_ml.task_kinds import TASK_KINDS
    from router_ml.text_embedding import N_DIMS, TextEmbedding
    from router_ml.tokenizer import TokenCounter

    counter = TokenCounter()
    cues = {"creative_writing": " poem", "summarization": " recap"}
    ids = {kind: counter.encode(word)[0] for kind, word in cues.items()}
    vocabulary = np.array(sorted(ids.values()))
    weights = np.zeros((len(vocabulary), len(TASK_KINDS)))
    for kind, token in ids.items():
        weights[list(vocabulary).index(token), TASK_KINDS.index(kind)] = 60.0
    model = TierModel.load(model_dir)
    model.text_embedding = TextEmbedding(
        vocabulary, np.zeros((len(vocabulary), N_DIMS)), weights, np.zeros(len(TASK_KINDS))
    )
    return Router(model, Policy.load(), thresholds=thresholds)


def _user(text: str, **extra: object) -> dict[str, object]:
    return {"messages": [{"role": "user", "content": text}], **extra}


def test_the_task_table_raises_kinds_the_product_sends_up(tiny_model_dir: Path) -> None:
    trusting = _router_reading_kinds(tiny_model_dir, (1.0, 1.0))  # the model alone: economy
    decision = trusting.route(_user("please write a poem about the sea"))
    assert decision.tier == "premium" and decision.task_kind == "creative_writing"
    assert (
        "task kind creative_writing" in decision.reason and "raised to premium" in decision.reason
    )
    plain = trusting.route(_user("what is the capital of country number 12?"))
    assert plain.tier == "economy" and plain.task_kind is None


def test_the_task_table_caps_value_kinds_only_in_covered_ground(tiny_model_dir: Path) -> None:
    cautious = _router_reading_kinds(tiny_model_dir, (1e-9, 1e-9))  # the model alone: premium
    summary = cautious.route(_user("What is the capital of country number 5? recap recap"))
    assert summary.tier == "economy" and summary.task_kind == "summarization"
    assert "capped at economy" in summary.reason
    tool = {"type": "function", "function": {"name": "f", "parameters": {"type": "object"}}}
    with_tools = cautious.route(
        _user("What is the capital of country number 5? recap recap", tools=[tool])
    )
    assert with_tools.tier == "premium" and with_tools.task_kind is None
    after_error = {
        "messages": [
            *_AFTER_TOOL_ERROR["messages"][:-1],
            {"role": "user", "content": "recap recap what failed"},
        ]
    }
    assert cautious.route(after_error).tier == "premium"


def test_risks_and_tier_bounds_agree_with_the_task_table(tiny_model_dir: Path) -> None:
    from router_ml.calibration import choose_tiers

    for thresholds in ((1.0, 1.0), (1e-9, 1e-9)):
        router = _router_reading_kinds(tiny_model_dir, thresholds)
        requests = [
            _user("please write a poem about rain"),
            _user("What is the capital of country number 8? recap recap"),
            _user("What is the capital of country number 345?"),
            _AFTER_TOOL_ERROR,
        ]
        chosen = choose_tiers(router.risks(requests), router.thresholds)
        assert [TIERS[k] for k in chosen] == [router.route(r).tier for r in requests]
        bounds = router.tier_bounds(np.vstack([router.features(r) for r in requests]))
        assert bounds.tolist() == [[2, 2], [0, 0], [0, 2], [2, 2]]
