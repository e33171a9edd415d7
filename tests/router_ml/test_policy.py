"""Policy loading errors carry the rule index; every match key selects what it says."""

from __future__ import annotations

from pathlib import Path

import pytest

from router_ml.errors import PolicyError
from router_ml.policy import Policy
from router_ml.request import parse_request
from router_ml.tokenizer import TokenCounter

TIERS = {"economy": "small", "standard": "medium", "premium": "large"}
COUNT = TokenCounter().count
REPO = Path(__file__).resolve().parents[2]


def rule_tier(match: dict, request: dict) -> bool:
    policy = Policy.from_dict(
        {"tiers": TIERS, "rules": [{"name": "r", "match": match, "tier": "premium"}]}
    )
    return policy.first_match(parse_request(request), COUNT) is not None


def conversation(*roles_and_texts: tuple[str, str], **extra: object) -> dict:
    return {"messages": [{"role": r, "content": t} for r, t in roles_and_texts], **extra}


FIRST = conversation(("system", "You help."), ("user", "Hello there"))
FOLLOWUP = conversation(("user", "Hi"), ("assistant", "Hello!"), ("user", "Tell me more"))


@pytest.mark.parametrize(
    ("match", "request_body", "expected"),
    [
        ({"role": "user", "position": "first"}, FIRST, True),
        ({"role": "user", "position": "first"}, FOLLOWUP, False),
        ({"position": "followup"}, FOLLOWUP, True),
        ({"position": "followup"}, FIRST, False),
        ({"position": 2}, FOLLOWUP, True),
        ({"position": 1}, FOLLOWUP, False),
        ({"role": "system", "length_gt": 5}, FIRST, True),
        ({"role": "system", "length_gt": 100}, FIRST, False),
        ({"role": "system"}, FOLLOWUP, False),  # no system prompt: the subject is absent
        ({"role": "assistant", "length_lt": 10}, FOLLOWUP, True),
        ({"role": "last", "length_gt": 11}, FOLLOWUP, True),
        ({"role": "tool"}, FOLLOWUP, False),
        ({"length_gt": 20}, FOLLOWUP, True),  # whole conversation: 2 + 6 + 12 chars + newlines
        ({"length_lt": 10}, FOLLOWUP, False),
        ({"role": "user", "tokens_gt": 2}, FIRST, False),  # "Hello there" is 2 tokens
        ({"role": "user", "tokens_gt": 1}, FIRST, True),
        ({"tokens_lt": 3}, conversation(("user", "Hi")), True),
        (
            {"tools": True},
            {**FIRST, "tools": [{"type": "function", "function": {"name": "f"}}]},
            True,
        ),
        ({"tools": True}, FIRST, False),
        ({"tools": False}, FIRST, True),
        (
            {"tools": True},
            {
                "messages": [
                    {"role": "user", "content": "x"},
                    {
                        "role": "assistant",
                        "tool_calls": [{"function": {"name": "f", "arguments": "{}"}}],
                    },
                    {"role": "tool", "content": "1"},
                ]
            },
            True,
        ),
        (
            {"has_image": True},
            {
                "messages": [
                    {"role": "user", "content": [{"type": "image_url", "image_url": {"url": "u"}}]}
                ]
            },
            True,
        ),
        ({"has_image": True}, FIRST, False),
        (
            {"json_mode": True},
            {**FIRST, "response_format": {"type": "json_schema", "json_schema": {}}},
            True,
        ),
        ({"json_mode": True}, {**FIRST, "response_format": {"type": "text"}}, False),
        ({"stream": True}, {**FIRST, "stream": True}, True),
        ({"metadata": {"team": "search"}}, {**FIRST, "metadata": {"team": "search"}}, True),
        ({"metadata": {"team": ["ads", "search"]}}, {**FIRST, "metadata": {"team": "ads"}}, True),
        ({"metadata": {"team": "search"}}, {**FIRST, "metadata": {"team": "ads"}}, False),
        ({"metadata": {"vip": True}}, {**FIRST, "metadata": {"vip": True}}, True),
        ({"metadata": {"team": "search"}}, FIRST, False),
        ({"model": "router-best"}, {**FIRST, "model": "router-best"}, True),
        ({"model": ["auto", "router-best"]}, {**FIRST, "model": "gpt-4o"}, False),
    ],
)
def test_match_keys(match: dict, request_body: dict, expected: bool) -> None:
    assert rule_tier(match, request_body) is expected


def test_first_matching_rule_wins() -> None:
    policy = Policy.from_dict(
        {
            "tiers": TIERS,
            "rules": [
                {"name": "a", "match": {"stream": True}, "tier": "economy"},
                {"name": "b", "match": {"position": "first"}, "tier": "premium"},
                {"name": "c", "match": {"position": "first"}, "tier": "standard"},
            ],
        }
    )
    assert policy.first_match(parse_request(FIRST), COUNT).name == "b"
    assert policy.first_match(parse_request({**FIRST, "stream": True}), COUNT).name == "a"
    assert policy.first_match(parse_request(FOLLOWUP), COUNT) is None
    assert policy.default_tier == "auto" and policy.safe_tier == "premium"


@pytest.mark.parametrize(
    ("spec", "rule_index", "fragment"),
    [
        ({"rules": []}, None, "tiers must map"),
        ({"tiers": {"economy": "a", "premium": "c"}}, None, "missing ['standard']"),
        ({"tiers": {**TIERS, "ultra": "x"}}, None, "unknown ['ultra']"),
        ({"tiers": {**TIERS, "economy": ""}}, None, "non-empty model name"),
        ({"tiers": TIERS, "rules": {"a": 1}}, None, "rules must be a list"),
        ({"tiers": TIERS, "rules": ["x"]}, 0, "must be a mapping"),
        ({"tiers": TIERS, "rules": [{"match": {"tools": True}, "tier": "premium"}]}, 0, "name"),
        (
            {"tiers": TIERS, "rules": [{"name": "a", "match": {}, "tier": "premium"}]},
            0,
            "non-empty",
        ),
        (
            {
                "tiers": TIERS,
                "rules": [
                    {"name": "ok", "match": {"tools": True}, "tier": "premium"},
                    {"name": "b", "match": {"colour": "red"}, "tier": "premium"},
                ],
            },
            1,
            "unknown match key 'colour'",
        ),
        (
            {
                "tiers": TIERS,
                "rules": [{"name": "a", "match": {"tools": "yes"}, "tier": "premium"}],
            },
            0,
            "match.tools: expected true or false",
        ),
        (
            {
                "tiers": TIERS,
                "rules": [{"name": "a", "match": {"length_gt": -1}, "tier": "premium"}],
            },
            0,
            "non-negative integer",
        ),
        (
            {
                "tiers": TIERS,
                "rules": [{"name": "a", "match": {"position": "last"}, "tier": "premium"}],
            },
            0,
            "first, followup or a turn number",
        ),
        (
            {"tiers": TIERS, "rules": [{"name": "a", "match": {"role": "bot"}, "tier": "premium"}]},
            0,
            "expected one of",
        ),
        (
            {
                "tiers": TIERS,
                "rules": [{"name": "a", "match": {"metadata": {"k": {"x": 1}}}, "tier": "premium"}],
            },
            0,
            "scalar",
        ),
        (
            {"tiers": TIERS, "rules": [{"name": "a", "match": {"model": 3}, "tier": "premium"}]},
            0,
            "model name",
        ),
        (
            {"tiers": TIERS, "rules": [{"name": "a", "match": {"tools": True}, "tier": "gold"}]},
            0,
            "tier 'gold'",
        ),
        (
            {
                "tiers": TIERS,
                "rules": [{"name": "a", "match": {"tools": True}, "tier": "premium", "x": 1}],
            },
            0,
            "unknown keys",
        ),
        (
            {
                "tiers": TIERS,
                "rules": [
                    {"name": "a", "match": {"tools": True}, "tier": "premium"},
                    {"name": "a", "match": {"stream": True}, "tier": "economy"},
                ],
            },
            1,
            "duplicate rule name",
        ),
        ({"tiers": TIERS, "default": "auto"}, None, "default must be a mapping"),
        ({"tiers": TIERS, "default": {"tier": "cheap"}}, None, "tier 'cheap'"),
        ({"tiers": TIERS, "safe_tier": "auto"}, None, "tier 'auto'"),
        ({"tiers": TIERS, "extra": 1}, None, "unknown top-level keys"),
    ],
)
def test_invalid_policies_are_rejected_with_the_rule_index(
    spec: dict, rule_index: int | None, fragment: str
) -> None:
    with pytest.raises(PolicyError) as info:
        Policy.from_dict(spec)
    assert info.value.rule_index == rule_index
    assert fragment in str(info.value)


def test_yaml_files_load_and_broken_yaml_is_rejected(tmp_path: Path) -> None:
    shipped = Policy.load(None)
    assert shipped.rules == () and shipped.default_tier == "auto"
    example = Policy.load(REPO / "examples" / "policy-rules.yaml")
    assert [r.name for r in example.rules] == ["first-reply", "tools", "long-system-prompt"]
    broken = tmp_path / "broken.yaml"
    broken.write_text("tiers: [unclosed\n")
    with pytest.raises(PolicyError, match="invalid YAML"):
        Policy.load(broken)
    with pytest.raises(PolicyError, match="cannot read"):
        Policy.load(tmp_path / "missing.yaml")
    with pytest.raises(PolicyError, match="expected a mapping"):
        Policy.load("just a string\nover two lines")


def test_example_policy_encodes_the_rule_table() -> None:
    policy = Policy.load(REPO / "examples" / "policy-rules.yaml")
    long_system = conversation(
        ("system", "x" * 4001), ("user", "a"), ("assistant", "b"), ("user", "c")
    )
    tools = {**FOLLOWUP, "tools": [{"type": "function", "function": {"name": "f"}}]}
    assert policy.first_match(parse_request(FIRST), COUNT).tier == "premium"
    assert policy.first_match(parse_request(tools), COUNT).name == "tools"
    assert policy.first_match(parse_request(long_system), COUNT).tier == "economy"
    assert policy.first_match(parse_request(FOLLOWUP), COUNT) is None


AFTER_TOOL_ERROR = {
    "messages": [
        {"role": "user", "content": "Deploy it"},
        {
            "role": "assistant",
            "content": None,
            "tool_calls": [
                {"id": "c", "type": "function", "function": {"name": "deploy", "arguments": "{}"}}
            ],
        },
        {"role": "tool", "tool_call_id": "c", "content": "Error: permission denied"},
    ]
}
REJECTION = conversation(
    ("user", "Sort this list"), ("assistant", "[3, 1, 2]"), ("user", "That's wrong, redo it")
)


@pytest.mark.parametrize(
    ("match", "request_body", "expected"),
    [
        ({"after_error": True}, AFTER_TOOL_ERROR, True),
        ({"after_error": True}, FOLLOWUP, False),
        ({"after_error": False}, FOLLOWUP, True),
        ({"retry": True}, REJECTION, True),
        ({"retry": True}, FOLLOWUP, False),
        ({"text_matches": r"(?i)\btraceback\b"}, conversation(("user", "TRACEBACK (most")), True),
        ({"text_matches": r"\btraceback\b"}, conversation(("user", "no trace here")), False),
        ({"role": "system", "text_matches": "You"}, FIRST, True),
        ({"role": "user", "text_matches": "You"}, FIRST, False),
    ],
)
def test_recovery_and_text_keys_select_what_they_say(
    match: dict, request_body: dict, expected: bool
) -> None:
    assert rule_tier(match, request_body) is expected


def test_retry_also_holds_when_the_caller_saw_the_request_moments_ago() -> None:
    policy = Policy.from_dict(
        {"tiers": TIERS, "rules": [{"name": "r", "match": {"retry": True}, "tier": "premium"}]}
    )
    request = parse_request(FOLLOWUP)
    assert policy.decide(request, COUNT) == ("auto", None)
    assert policy.decide(request, COUNT, repeated=True)[0] == "premium"


def test_text_matches_reads_only_a_bounded_head_of_the_text() -> None:
    from router_ml.policy import TEXT_MATCH_CHARS

    late = conversation(("user", "x" * TEXT_MATCH_CHARS + " needle"))
    early = conversation(("user", "needle " + "x" * TEXT_MATCH_CHARS))
    assert rule_tier({"text_matches": "needle"}, early)
    assert not rule_tier({"text_matches": "needle"}, late)
    spread = conversation(*[("user", "y" * 5000)] * 3, ("user", "needle"))
    assert not rule_tier({"text_matches": "needle"}, spread)


@pytest.mark.parametrize(
    ("pattern", "fragment"),
    [
        ("(a+)+$", "nested inside an unbounded repeat"),
        (r"(\w+\s?)*$", "nested inside an unbounded repeat"),
        ("(a|ab)*c", "alternation inside an unbounded repeat"),
        (r"(x)\1", "backreferences"),
        ("(unclosed", "invalid regular expression"),
        ("a" * 600, "longer than"),
        (3, "regular expression string"),
    ],
)
def test_patterns_that_can_backtrack_exponentially_are_refused_at_load(
    pattern: object, fragment: str
) -> None:
    spec = {
        "tiers": TIERS,
        "rules": [{"name": "a", "match": {"text_matches": pattern}, "tier": "premium"}],
    }
    with pytest.raises(PolicyError, match=fragment) as info:
        Policy.from_dict(spec)
    assert info.value.rule_index == 0


def test_min_tier_and_cascade_rules_and_defaults_load() -> None:
    policy = Policy.from_dict(
        {
            "tiers": TIERS,
            "rules": [
                {"name": "tools", "match": {"tools": True}, "min_tier": "standard"},
                {"name": "json", "match": {"json_mode": True}, "tier": "cascade"},
                {"name": "std", "match": {"stream": True}, "cascade": ["standard", "premium"]},
            ],
            "default": {"cascade": ["economy", "standard", "premium"]},
        }
    )
    tools, json_rule, std = policy.rules
    assert (tools.tier, tools.min_tier, tools.cascade) == ("auto", "standard", ())
    assert (json_rule.tier, json_rule.cascade) == ("economy", ("economy", "premium"))
    assert (std.tier, std.cascade) == ("standard", ("standard", "premium"))
    assert policy.default_tier == "economy"
    assert policy.cascade_of(None) == ("economy", "standard", "premium")
    assert policy.floor_of(tools) == "standard" and policy.floor_of(None) is None
    floored = Policy.from_dict({"tiers": TIERS, "default": {"min_tier": "standard"}})
    assert floored.default_tier == "auto" and floored.floor_of(None) == "standard"


@pytest.mark.parametrize(
    ("rule", "fragment"),
    [
        ({"min_tier": "auto"}, "tier 'auto'"),
        ({"cascade": ["premium", "economy"]}, "cheapest first"),
        ({"cascade": ["economy"]}, "two or more"),
        ({"cascade": ["economy", "economy"]}, "distinct"),
        ({"tier": "premium", "min_tier": "standard"}, "exactly one"),
        ({}, "exactly one"),
    ],
)
def test_bad_actions_are_refused(rule: dict, fragment: str) -> None:
    spec = {"tiers": TIERS, "rules": [{"name": "a", "match": {"tools": True}, **rule}]}
    with pytest.raises(PolicyError, match=fragment):
        Policy.from_dict(spec)
