"""The forwarded body: the client's bytes with only the model (and router metadata) changed."""

from __future__ import annotations

import json
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from router_ml.gateway.answers import Rejected
from router_ml.gateway.body import decode_object, splice
from router_ml.gateway.intake import Intake


def forwarded(raw: bytes, model: str = "tier-model", drop: tuple[str, ...] = ()) -> bytes:
    decoded = decode_object(raw)
    assert decoded.payload == json.loads(raw) and decoded.members is not None
    body = splice(decoded.members, len(raw), {"model": None}, drop)
    assert body is not None
    return body.render(raw, model)


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        # escaped quotes and a "model" key inside a string
        (
            b'{"note": "say \\"model\\": \\"x\\"", "model": "auto"}',
            b'{"note": "say \\"model\\": \\"x\\"", "model": "tier-model"}',
        ),
        # "model" keys in nested objects and arrays are the client's, not the top-level one
        (
            b'{"tools": [{"model": "keep"}], "model": "auto", "x": {"model": {"model": 1}}}',
            b'{"tools": [{"model": "keep"}], "model": "tier-model", "x": {"model": {"model": 1}}}',
        ),
        # whitespace everywhere, kept as sent
        (
            b' \n{ "model"\t:\r\n "auto" ,\n  "stream" : true }\n ',
            b' \n{ "model"\t:\r\n "tier-model" ,\n  "stream" : true }\n ',
        ),
        # non-ASCII text before and after the value: byte offsets, not character indices
        (
            '{"a": "héllo ☃ 🙂", "model": "auto", "b": "ü"}'.encode(),
            '{"a": "héllo ☃ 🙂", "model": "tier-model", "b": "ü"}'.encode(),
        ),
        # escapes of the client (\u, \/) stay escapes; a model value that is not a string too
        (
            b'{"a": "\\u00e9\\/\\ud83d\\ude42", "model": "au\\u0074o"}',
            b'{"a": "\\u00e9\\/\\ud83d\\ude42", "model": "tier-model"}',
        ),
        # duplicate keys: json.loads keeps the last "model"; the earlier one is dropped, so an
        # upstream that keeps the first duplicate cannot see the client's model either
        (
            b'{"model": "first", "messages": [], "model": "auto"}',
            b'{"messages": [], "model": "tier-model"}',
        ),
        (
            b'{"messages": [], "model": "auto", "model": "last"}',
            b'{"messages": [], "model": "tier-model"}',
        ),
    ],
)
def test_only_the_model_value_changes(raw: bytes, expected: bytes) -> None:
    assert forwarded(raw) == expected


def test_the_model_name_is_encoded_as_a_json_string() -> None:
    body = forwarded(b'{"model":"auto"}', model='we"ird\\name')
    assert json.loads(body) == {"model": 'we"ird\\name'}


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        (b'{"metadata": {"router_tier": "x"}, "model": "a"}', b'{"model": "tier-model"}'),
        (b'{"model": "a", "metadata": {"router_tier": "x"}}', b'{"model": "tier-model"}'),
        (
            b'{"a": 1 , "metadata": {}, "model": "a" , "b": 2}',
            b'{"a": 1 , "model": "tier-model" , "b": 2}',
        ),
        (b'{"metadata": 1, "model": "a", "metadata": 2}', b'{"model": "tier-model"}'),
    ],
)
def test_dropped_members_leave_valid_json_and_the_other_bytes(raw: bytes, expected: bytes) -> None:
    assert forwarded(raw, drop=("metadata",)) == expected


def test_a_key_that_is_not_in_the_body_cannot_be_spliced() -> None:
    raw = b'{"messages": []}'
    decoded = decode_object(raw)
    assert decoded.members is not None
    assert splice(decoded.members, len(raw), {"model": None}) is None


@pytest.mark.parametrize(
    "raw",
    [
        b"[1, 2]",
        b'"text"',
        b"",
        b"{",
        b'{"a": 1,}',
        b'{"a" 1}',
        b'{"a": 1} trailing',
        b'{"a": NaN}',
        b'{"a": -Infinity}',
        b'{"a": "\x01"}',
        b'{"a": "\xff"}',
        b"\xef\xbb\xbf{}",
        b'{"a": ' + b"9" * 5000 + b"}",
        b'{"a": ' + b"[" * 100_000 + b"]" * 100_000 + b"}",
    ],
)
def test_invalid_bodies_are_refused_as_the_reference_decoder_refuses_them(raw: bytes) -> None:
    with pytest.raises(Rejected) as reference:
        Intake.json_object(raw)
    with pytest.raises(Rejected) as ours:
        decode_object(raw)
    assert ours.value.status == 400
    assert ours.value.body == reference.value.body


SCALARS = (
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False, allow_infinity=False)
)
JSON_VALUES = st.recursive(
    SCALARS | st.text(),
    lambda children: (
        st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=8), children, max_size=4)
    ),
    max_leaves=20,
)
SPACES = st.text(alphabet=" \t\r\n", max_size=3)


@settings(max_examples=300, deadline=None)
@given(
    members=st.lists(st.tuples(st.sampled_from(["model", "messages", "x", "é"]), JSON_VALUES)),
    spaces=st.lists(SPACES, min_size=64, max_size=64),
    ascii_only=st.booleans(),
)
def test_any_object_decodes_as_json_loads_and_splices_to_valid_json(
    members: list[tuple[str, Any]], spaces: list[str], ascii_only: bool
) -> None:
    """Random objects written with random whitespace and either escaping: the payload is
    json.loads's, and the forwarded body decodes to it with the model replaced."""
    gaps = iter(spaces * 8)
    items = [
        f"{next(gaps)}{json.dumps(k, ensure_ascii=ascii_only)}{next(gaps)}:{next(gaps)}"
        f"{json.dumps(v, ensure_ascii=ascii_only)}{next(gaps)}"
        for k, v in members
    ]
    raw = f"{next(gaps)}{{{next(gaps)}{','.join(items)}}}{next(gaps)}".encode(
        "utf-8", "surrogatepass"
    )
    try:
        expected = json.loads(raw.decode("utf-8"))
    except UnicodeDecodeError:  # a lone surrogate written unescaped: not UTF-8, refused alike
        with pytest.raises(Rejected):
            decode_object(raw)
        return
    decoded = decode_object(raw)
    assert decoded.payload == expected and decoded.members is not None
    body = splice(decoded.members, len(raw), {"model": None})
    if "model" not in expected:
        assert body is None
        return
    assert body is not None
    assert json.loads(body.render(raw, "m")) == {**expected, "model": "m"}
