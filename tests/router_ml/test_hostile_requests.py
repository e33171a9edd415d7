"""The API promise under hostile input: every body either routes or raises ``InvalidRequest``.

Three layers: the named crash triggers of issues 11 and 12 (each with the field it must name),
property-based bodies from hypothesis (bounded examples, no deadline: CI stays fast and timing
does not decide a test), and the deterministic mutation fuzzer over real request shapes
(``request_fuzzer.py``; run it offline at 20,000 bodies). The time bounds asserted are hang guards
only: the unbounded code took seconds to minutes on these bodies.
"""

from __future__ import annotations

import contextlib
import json
import time
from pathlib import Path
from typing import Any

import pytest
import request_fuzzer
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from router_ml import Router
from router_ml.errors import SHOWN_CHARS, InvalidRequest
from router_ml.features import FEATURE_NAMES, SCHEMA_NODE_CAP, FeatureExtractor
from router_ml.request import (
    MAX_CONTENT_PARTS,
    MAX_MESSAGES,
    MAX_METADATA_KEYS,
    MAX_SCHEMA_LIST,
    ROLES,
    parse_request,
)

REPO = Path(__file__).resolve().parents[2]
HANG_GUARD_S = 5.0


@pytest.fixture(scope="module")
def shared_data_or_none() -> Path | None:
    """Real request shapes when ../shared/data is beside the repo; the examples alone otherwise."""
    data = request_fuzzer.DEFAULT_DATA
    return data if (data / "requests").is_dir() else None


@pytest.fixture(scope="module")
def routers(tiny_model_dir: Path) -> list[Router]:
    """The model decides (default: auto) and a rule-heavy policy decides first."""
    return [
        Router.load(tiny_model_dir),
        Router.load(tiny_model_dir, policy=REPO / "examples" / "policy-rules.yaml"),
    ]


def _route_or_invalid(routers: list[Router], body: Any) -> None:
    for router in routers:
        start = time.perf_counter()
        with contextlib.suppress(InvalidRequest):
            router.route(body)
        assert time.perf_counter() - start < HANG_GUARD_S


def user(content: Any, **extra: Any) -> dict[str, Any]:
    return {"messages": [{"role": "user", "content": content}], **extra}


def tool(parameters: Any) -> dict[str, Any]:
    return {"type": "function", "function": {"name": "f", "parameters": parameters}}


def _deep(depth: int) -> list[Any]:
    value: list[Any] = []
    for _ in range(depth):
        value = [value]
    return value


HOSTILE = [
    ("part-type-list", user([{"type": ["text"], "text": "x"}]), "messages[0].content[0].type"),
    ("part-type-dict", user([{"type": {"a": 1}, "text": "x"}]), "messages[0].content[0].type"),
    ("max-tokens-10e400", user("hi", max_tokens=10**400), "max_tokens"),
    ("max-tokens-10e309", user("hi", max_completion_tokens=10**309), "max_completion_tokens"),
    (
        "max-tokens-1e400-json",
        '{"messages":[{"role":"user","content":"x"}],"max_tokens":1e400}',
        "max_tokens",
    ),
    ("max-tokens-inf", user("hi", max_tokens=float("inf")), "max_tokens"),
    ("max-tokens-bool", user("hi", max_tokens=True), "max_tokens"),
    (
        "max-tokens-both-checked",
        user("hi", max_completion_tokens=5, max_tokens=-(10**50)),
        "max_tokens",
    ),
    (
        "5000-digit-int-json",
        '{"messages":[{"role":"user","content":"x"}],"seed":' + "9" * 5000 + "}",
        "body",
    ),
    ("nan-json", '{"messages":[{"role":"user","content":"x"}],"temperature":NaN}', "body"),
    ("infinity-json", '{"messages":[{"role":"user","content":"x"}],"top_p":-Infinity}', "body"),
    ("deep-json", "[" * 100_000, "body"),
    ("metadata-huge-int", user("x", metadata={"k": 10**5000}), "metadata.k"),
    ("metadata-nan", user("x", metadata={"k": float("nan")}), "metadata.k"),
    ("metadata-non-str-key", user("x", metadata={(1, 2): "v"}), "metadata"),
    ("metadata-391k-keys", user("x", metadata={str(i): "v" for i in range(391_000)}), "metadata"),
    ("messages-100k", {"messages": [{"role": "user", "content": "x"}] * 100_000}, "messages"),
    (
        "parts-over-cap",
        user([{"type": "image_url"}] * (MAX_CONTENT_PARTS + 1)),
        "messages[0].content",
    ),
    ("role-list", {"messages": [{"role": ["user"], "content": "x"}]}, "messages[0].role"),
    ("tool-type-deep-list", user("x", tools=[{"type": _deep(100_000)}]), "tools[0].type"),
    (
        "response-format-list",
        user("x", response_format={"type": ["x"] * 10**6}),
        "response_format.type",
    ),
]


@pytest.mark.parametrize(
    ("body", "field"), [case[1:] for case in HOSTILE], ids=[case[0] for case in HOSTILE]
)
def test_named_crash_triggers_are_invalid_requests(body: Any, field: str) -> None:
    start = time.perf_counter()
    with pytest.raises(InvalidRequest) as info:
        parse_request(body)
    assert info.value.field == field
    assert len(str(info.value)) < 400  # the bad value is quoted cut, not echoed whole
    assert time.perf_counter() - start < HANG_GUARD_S


def test_an_enum_over_the_cap_is_invalid_and_a_huge_schema_routes(routers: list[Router]) -> None:
    """The feature walk (the one reader of tool schemas) refuses an over-long list and stops
    at its node budget; before, a 2-million-element enum cost 200 ms in its leaf loop."""
    auto = routers[0]
    start = time.perf_counter()
    with pytest.raises(InvalidRequest, match="exceeds the limit") as info:
        auto.route(user("x", tools=[tool({"enum": list(range(2_000_000))})]))
    assert info.value.field == "tools"
    huge = user("x", tools=[tool({"p": [list(range(9_000)) for _ in range(100)]})])
    assert auto.route(huge).tier in auto.tiers
    assert time.perf_counter() - start < HANG_GUARD_S


def test_errors_quote_a_huge_value_cut() -> None:
    with pytest.raises(InvalidRequest) as info:
        parse_request(user("x", tool_choice="y" * 3_000_000))
    assert "yyy" in str(info.value) and len(info.value.problem) < SHOWN_CHARS + 100


@pytest.mark.parametrize(
    "text",
    [
        "lone \ud800 high and \udfff low surrogates",
        "\x00\x01 NUL and controls \r\n",
        "\u202e right-to-left override, combining e\u0301, BOM \ufeff, \uffff, \U0010ffff",
        "emoji 😀👩‍👩‍👧‍👦 and <|endoftext|> <|im_start|> special-token text",
        "中文 日本語 한국어 العربية हिन्दी",
    ],
    ids=["surrogates", "controls", "odd-unicode", "emoji-special-tokens", "scripts"],
)
def test_odd_unicode_routes(routers: list[Router], text: str) -> None:
    for router in routers:
        assert router.route(user(text)).tier in router.tiers
        assert router.route(json.dumps(user(text))).tier in router.tiers


def test_valid_bodies_at_the_caps_route(routers: list[Router]) -> None:
    at_caps = {
        "messages": [{"role": "user", "content": "x"}] * (MAX_MESSAGES - 1)
        + [{"role": "user", "content": [{"type": "image_url"}] * 10}],
        "metadata": {f"k{i}": i for i in range(MAX_METADATA_KEYS)},
        "tools": [tool({"type": "string", "enum": list(range(MAX_SCHEMA_LIST))})],
        "max_tokens": 2**31 - 1,
    }
    for router in routers:
        assert router.route(at_caps).tier in router.tiers


def test_schema_walk_honours_its_budget_in_the_leaf_loop() -> None:
    """Leaves beyond ``SCHEMA_NODE_CAP`` are not read: a schema that big measures as the cap."""
    extractor = FeatureExtractor()
    under = extractor.extract(user("x", tools=[tool({"a": ["ab"] * 9_000, "b": ["ab"] * 9_000})]))
    over = extractor.extract(user("x", tools=[tool({"enum": ["ab"] * MAX_SCHEMA_LIST})] * 5))
    chars = FEATURE_NAMES.index("tools_schema_chars")
    # Under the cap every leaf counts (2 characters each, plus the keys); over it, no more than
    # the cap's worth of leaves is read (before the fix, all 50,000 were).
    assert under[chars] > 2 * 18_000
    assert over[chars] <= 2 * SCHEMA_NODE_CAP + 100


# --- property-based bodies -------------------------------------------------------------------

_scalars = (
    st.none()
    | st.booleans()
    | st.integers()
    | st.integers(min_value=-(10**500), max_value=10**500)
    | st.floats(allow_nan=True, allow_infinity=True)
    | st.text(max_size=30)
    | st.sampled_from(["text", "image_url", "function", "auto", "user", "tool", "json_schema"])
)
_json = st.recursive(
    _scalars,
    lambda children: (
        st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=8), children, max_size=4)
    ),
    max_leaves=12,
)
_text = st.text(alphabet=st.characters(codec=None), max_size=200)  # surrogates included
_part = st.fixed_dictionaries(
    {"type": st.sampled_from(["text", "image_url", "input_audio", "refusal", "video"]) | _json},
    optional={"text": _text | _json, "refusal": _text | _json},
)
_message = st.fixed_dictionaries(
    {"role": st.sampled_from(ROLES) | _json},
    optional={
        "content": _text | st.lists(_part, max_size=4) | _json,
        "tool_calls": st.lists(
            st.fixed_dictionaries(
                {
                    "function": st.fixed_dictionaries(
                        {"name": _text | _json}, optional={"arguments": _text | _json}
                    )
                }
            )
            | _json,
            max_size=3,
        )
        | _json,
    },
)
_tool = st.fixed_dictionaries(
    {"type": st.just("function") | _json},
    optional={
        "function": st.fixed_dictionaries(
            {"name": st.text(min_size=1, max_size=20) | _json},
            optional={"parameters": _json, "description": _text | _json},
        )
    },
)
_numbers = (
    st.integers(min_value=-(10**500), max_value=10**500)
    | st.floats(allow_nan=True, allow_infinity=True)
    | st.booleans()
    | _json
)
request_bodies = st.fixed_dictionaries(
    {"messages": st.lists(_message, min_size=0, max_size=5) | _json},
    optional={
        "tools": st.lists(_tool, max_size=3) | _json,
        "tool_choice": st.sampled_from(["auto", "none", "required", "any"]) | _json,
        "max_tokens": _numbers,
        "max_completion_tokens": _numbers,
        "response_format": st.fixed_dictionaries(
            {"type": st.sampled_from(["text", "json_object", "json_schema", "yaml"]) | _json}
        )
        | _json,
        "stream": _json,
        "metadata": st.dictionaries(st.text(max_size=10), _json, max_size=5) | _json,
        "model": _text | _json,
    },
)
_SETTINGS = settings(
    max_examples=300,
    deadline=None,
    derandomize=True,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture],
)


@_SETTINGS
@given(body=request_bodies)
def test_every_structured_body_routes_or_is_invalid(routers: list[Router], body: Any) -> None:
    _route_or_invalid(routers, body)


@_SETTINGS
@given(body=request_bodies)
def test_every_body_as_json_text_routes_or_is_invalid(routers: list[Router], body: Any) -> None:
    try:
        text = json.dumps(body)  # NaN and Infinity become the non-standard tokens
    except ValueError:  # an integer over Python's conversion limit
        text = '{"messages": [], "max_tokens": ' + "9" * 5000 + "}"
    _route_or_invalid(routers, text)
    _route_or_invalid(routers, text.encode("utf-8", "surrogatepass"))


@settings(
    max_examples=200,
    deadline=None,
    derandomize=True,
    suppress_health_check=[HealthCheck.function_scoped_fixture],
)
@given(body=st.binary(max_size=300) | st.text(max_size=300) | _json)
def test_any_bytes_text_or_value_routes_or_is_invalid(routers: list[Router], body: Any) -> None:
    _route_or_invalid(routers, body)


# --- the mutation fuzzer over real request shapes --------------------------------------------

FUZZ_BODIES = 300


def test_mutation_fuzzer_finds_no_exception_but_invalid_request(
    routers: list[Router], shared_data_or_none: Path | None
) -> None:
    seeds = request_fuzzer.load_seeds(shared_data_or_none, per_file=100)
    result = request_fuzzer.run(routers, request_fuzzer.fuzzed_bodies(seeds, FUZZ_BODIES, seed=1))
    assert result.n == FUZZ_BODIES
    assert not result.failures, result.failures
    # The fuzzer is not vacuous: a fair share of bodies stays valid and routes.
    assert result.routed > FUZZ_BODIES * len(routers) // 5
    assert result.invalid > FUZZ_BODIES * len(routers) // 5
    assert result.max_seconds < HANG_GUARD_S


def test_shared_strings_cannot_amplify_a_python_body() -> None:
    """One 1 MB string referenced 10,000 times would join to 10 GB; it is refused first."""
    text = "x" * 1_000_000
    with pytest.raises(InvalidRequest, match="characters of text"):
        parse_request(user([{"type": "text", "text": text}] * 10_000))
    with pytest.raises(InvalidRequest, match="characters of text"):
        parse_request({"messages": [{"role": "user", "content": text}] * 10_000})
