"""A client's body as forwarded: its own bytes, with only what the gateway must change spliced in.

Re-encoding a routed body for the upstream (``json.dumps`` of the decoded request with the
tier's ``model``) costs about as much as decoding it and holds the GIL: for a 4 MB body, ~56 ms
during which no other request of the gateway's process moves. So the body is decoded once by
:func:`decode_object`, which also records where each top-level member lies in the client's
bytes, and :func:`splice` describes the forwarded body as ranges of those bytes plus the few
parts the gateway writes itself (:class:`ForwardedBody`); rendering it for one tier is a copy.

The top level is walked here, each member's value is decoded by the ``json`` module's own C
scanner (the one ``json.loads`` uses, with the same strictness), so the result is exactly what
``json.loads`` returns, spans included: strings with escapes, nested objects and ``"model"``
inside strings or nested objects need no scanner of ours. Duplicate keys: the last one wins, as
in ``json.loads``; an edited key's earlier duplicates are dropped from the forwarded body, so an
upstream that keeps the first duplicate sees the gateway's value too. Any input this walk does
not accept is decoded by the reference decoder (``Intake.json_object``), which gives the 400
(the same message as ever) or, for a body it does accept, the payload without spans: then the
caller re-encodes.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Collection, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from router_ml.gateway.intake import Intake


def _refuse_constant(name: str) -> Any:
    """``NaN`` and the infinities are not JSON: the reference decoder gives their 400."""
    raise ValueError(f"{name} is not valid JSON")


_scan_value: Callable[[str, int], tuple[Any, int]] = json.JSONDecoder(
    parse_constant=_refuse_constant
).scan_once  # type: ignore[attr-defined]  # set by JSONDecoder.__init__, not in typeshed
"""The ``json.loads`` value scanner: ``(value, end)`` of the value at an index (strict:
control characters in strings are refused); raises ``StopIteration`` where none starts."""
_WHITESPACE = re.compile(r"[ \t\n\r]*")
"""JSON's insignificant whitespace (``json.decoder.WHITESPACE``)."""


@dataclass(frozen=True, slots=True)
class Member:
    """One top-level ``"name": value`` of a body, as byte offsets into the body."""

    name: str
    start: int
    """The key's opening quote."""
    value_start: int
    end: int
    """Just past the value."""


@dataclass(frozen=True)
class DecodedBody:
    """A decoded JSON object and its top-level members in order (None: spans unknown)."""

    payload: dict[str, Any]
    members: tuple[Member, ...] | None


def decode_object(raw: bytes) -> DecodedBody:
    """``Intake.json_object(raw)`` (the same payload, the same 400s) with the member spans."""
    try:
        text = raw.decode("utf-8")
        payload, members = _walk_object(text)
    except (ValueError, StopIteration, RecursionError):
        return DecodedBody(Intake.json_object(raw), None)
    return DecodedBody(payload, _in_bytes(text, members))


def _skip(text: str, at: int) -> int:
    match = _WHITESPACE.match(text, at)
    return at if match is None else match.end()


def _walk_object(text: str) -> tuple[dict[str, Any], list[Member]]:
    """Decode a top-level object member by member; offsets are character indices."""
    at = _skip(text, 0)
    if text[at : at + 1] != "{":
        raise ValueError("not a JSON object")
    payload: dict[str, Any] = {}
    members: list[Member] = []
    at = _skip(text, at + 1)
    if text[at : at + 1] == "}":
        at += 1
    else:
        while True:
            if text[at : at + 1] != '"':
                raise ValueError("expected a key")
            name, after_key = _scan_value(text, at)  # a string: the opening quote is checked
            colon = _skip(text, after_key)
            if text[colon : colon + 1] != ":":
                raise ValueError("expected ':'")
            value_start = _skip(text, colon + 1)
            value, end = _scan_value(text, value_start)
            payload[name] = value  # a duplicate key: the last value, as json.loads keeps
            members.append(Member(name, at, value_start, end))
            at = _skip(text, end)
            separator = text[at : at + 1]
            if separator == "}":
                at += 1
                break
            if separator != ",":
                raise ValueError("expected ',' or '}'")
            at = _skip(text, at + 1)
    if _skip(text, at) != len(text):
        raise ValueError("extra data after the object")
    return payload, members


def _in_bytes(text: str, members: list[Member]) -> tuple[Member, ...]:
    """The members with byte offsets (the same as character indices for an ASCII body)."""
    if text.isascii():
        return tuple(members)
    offsets: dict[int, int] = {}
    last_char, last_byte = 0, 0
    for char in sorted({p for m in members for p in (m.start, m.value_start, m.end)}):
        last_byte += len(text[last_char:char].encode("utf-8"))
        offsets[char], last_char = last_byte, char
    return tuple(
        Member(m.name, offsets[m.start], offsets[m.value_start], offsets[m.end]) for m in members
    )


Part = tuple[int, int] | bytes | None
"""A range of the client's bytes, bytes written by the gateway, or None: the model name."""


@dataclass(frozen=True)
class ForwardedBody:
    """The body sent upstream, for any tier's model: see :func:`splice`."""

    parts: tuple[Part, ...]

    def render(self, raw: bytes, model: str) -> bytes:
        """The body for ``model``: the client's bytes ``raw`` with the parts spliced in."""
        view, name = memoryview(raw), json.dumps(model).encode()
        return b"".join(
            name if part is None else part if isinstance(part, bytes) else view[part[0] : part[1]]
            for part in self.parts
        )


def splice(
    members: Sequence[Member],
    size: int,
    values: Mapping[str, bytes | None],
    drop: Collection[str] = (),
) -> ForwardedBody | None:
    """The client's body of ``size`` bytes with top-level ``values`` replaced and ``drop`` removed.

    ``values`` maps a key to its new JSON value (None: the model name, given when rendering); it
    replaces the key's last occurrence and its earlier duplicates are removed, as are all
    occurrences of a ``drop`` key. Everything else (other members, whitespace, escapes, key
    order) stays as the client sent it. None when a key of ``values`` is not in the body.
    """
    last = {member.name: index for index, member in enumerate(members)}
    if any(name not in last for name in values):
        return None
    edited = set(values) | set(drop)
    kept = [
        index
        for index, member in enumerate(members)
        if member.name not in edited or (member.name in values and last[member.name] == index)
    ]
    parts: list[Part] = []

    def copy(start: int, end: int) -> None:
        previous = parts[-1] if parts else None
        if isinstance(previous, tuple) and previous[1] == start:
            parts[-1] = (previous[0], end)
        elif start < end:
            parts.append((start, end))

    copy(0, members[0].start if members else size)
    for position, index in enumerate(kept):
        if position:  # the separator the client wrote after the previous kept member
            before = kept[position - 1]
            copy(members[before].end, members[before + 1].start)
        member = members[index]
        if member.name in values:
            copy(member.start, member.value_start)
            parts.append(values[member.name])
        else:
            copy(member.start, member.end)
    if members:
        copy(members[-1].end, size)
    return ForwardedBody(tuple(parts))
