"""The same labeled requests delivered as a conversation: material first, the ask as a follow-up.

Real chat seldom arrives as one self-contained prompt: users paste the material (a passage, code,
the problem), the assistant acknowledges, and the ask comes as a short follow-up ("Now find the
circumradius", "Which option is right?"). The labeled traffic has none of that, and a router that
reads the last user turn alone sees only the follow-up. ``router-ml eval --as-follow-up`` splits
each record's last user turn in two at its last paragraph (else its last line, else its last
sentence) and puts an assistant acknowledgement between the parts. The request asks for exactly
what it asked for before, so its label and outcomes stand; a record that cannot be split is kept as
it was (the report counts both).
"""

from __future__ import annotations

import dataclasses
import re
from typing import Any

from router_ml_lab.quality.evidence import Evidence

ACKNOWLEDGEMENTS = (
    "Got it. What would you like me to do with it?",
    "Understood.",
    "Thanks, I have read it. Go ahead.",
    "OK.",
)
"""The assistant turns put between the material and the ask (one per record, in turn)."""
_PARAGRAPHS = re.compile(r"\n[ \t]*\n")
_SENTENCE_END = re.compile(r"(?<=[.!?])\s+(?=\S)")


def split_turn(text: str) -> tuple[str, str] | None:
    """``(material, ask)``: the text before and its last paragraph, line or sentence; None when
    the text has only one (nothing to deliver first)."""
    stripped = text.strip()
    for pattern in (_PARAGRAPHS, re.compile(r"\n"), _SENTENCE_END):
        parts = [part for part in pattern.split(stripped) if part.strip()]
        if len(parts) >= 2:
            ask = parts[-1].strip()
            material = stripped[: stripped.rindex(ask)].strip()
            if material:
                return material, ask
    return None


def as_follow_up(request: dict[str, Any], acknowledgement: str) -> dict[str, Any] | None:
    """``request`` with its last user turn delivered in two (None when it cannot be split: the
    last user turn is not plain text, or it is one sentence)."""
    messages = request.get("messages")
    if not isinstance(messages, list):
        return None
    last = next((i for i in range(len(messages) - 1, -1, -1) if _is_user(messages[i])), None)
    if last is None or not isinstance(messages[last].get("content"), str):
        return None
    parts = split_turn(messages[last]["content"])
    if parts is None:
        return None
    material, ask = parts
    conversation = [
        *messages[:last],
        {"role": "user", "content": material},
        {"role": "assistant", "content": acknowledgement},
        {"role": "user", "content": ask},
        *messages[last + 1 :],
    ]
    return {**request, "messages": conversation}


def follow_up_set(evidence: Evidence) -> tuple[Evidence, int]:
    """``evidence`` with every splittable request delivered as a follow-up, and how many were."""
    requests = []
    converted = 0
    for i, request in enumerate(evidence.requests):
        delivered = as_follow_up(request, ACKNOWLEDGEMENTS[i % len(ACKNOWLEDGEMENTS)])
        converted += delivered is not None
        requests.append(delivered if delivered is not None else request)
    return dataclasses.replace(evidence, requests=tuple(requests)), converted


def _is_user(message: Any) -> bool:
    return isinstance(message, dict) and message.get("role") == "user"
