"""Deterministic train / validation / test splits grouped by normalised question text.

The same question reaches us through several sources (an MMLU question appears in RouteLLM's MMLU
set and, with more options, in MMLU-Pro) and with different answer-format instructions. If one copy
trained the model and another scored it, the test numbers would measure memory, not routing. So
each record is keyed by its question *stem* (the last user turn without option lines and answer
instructions, lower-cased, punctuation and spacing removed) and the split is a pure function of
``hash(seed, stem)``: reproducible without storing assignments, and stable when records are added.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Sequence
from typing import Any

import numpy as np

TRAIN, VALIDATION, TEST = 0, 1, 2
SPLIT_NAMES = ("train", "validation", "test")
_OPTION_LINE = re.compile(r"^\s*\(?[A-Ja-j][.):]\s")
_INSTRUCTION_LINE = re.compile(r"^\s*(answer|print only|choose|select)\b", re.IGNORECASE)
_LEADING_MARKER = re.compile(r"^(q|question)\s+")
_NON_ALNUM = re.compile(r"[^0-9a-z]+")


def question_stem(request: dict[str, Any]) -> str:
    """The normalised question of a request: what two copies of one question share."""
    text = _last_user_text(request)
    kept = [
        line
        for line in text.splitlines()
        if not _OPTION_LINE.match(line) and not _INSTRUCTION_LINE.match(line)
    ]
    stem = _LEADING_MARKER.sub("", _normalise(" ".join(kept)))
    # A prompt that is all options/instructions keeps its whole text rather than collapse to "".
    return stem or _normalise(text)


def _normalise(text: str) -> str:
    return _NON_ALNUM.sub(" ", text.lower()).strip()


def _last_user_text(request: dict[str, Any]) -> str:
    for message in reversed(request.get("messages") or []):
        if isinstance(message, dict) and message.get("role") == "user":
            content = message.get("content")
            if isinstance(content, str):
                return content
            if isinstance(content, list):
                return "\n".join(
                    part.get("text", "")
                    for part in content
                    if isinstance(part, dict) and isinstance(part.get("text"), str)
                )
    return ""


def assign_splits(
    requests: Sequence[dict[str, Any]],
    fractions: tuple[float, float, float],
    seed: int,
) -> np.ndarray:
    """Split index (TRAIN / VALIDATION / TEST) of each request, grouped by question stem.

    ``fractions`` and ``seed`` have no defaults here: training takes them from its config and
    records them in the model (``EvaluationContract``); evaluation takes them from the model.
    """
    if len(fractions) != 3 or min(fractions) < 0 or abs(sum(fractions) - 1.0) > 1e-9:
        raise ValueError(f"fractions must be three non-negative shares summing to 1: {fractions}")
    cut_train, cut_validation = fractions[0], fractions[0] + fractions[1]
    splits = np.empty(len(requests), dtype=np.int8)
    for i, request in enumerate(requests):
        u = _unit_hash(f"{seed}\x00{question_stem(request)}")
        splits[i] = TRAIN if u < cut_train else VALIDATION if u < cut_validation else TEST
    return splits


def _unit_hash(text: str) -> float:
    digest = hashlib.blake2b(text.encode("utf-8"), digest_size=8).digest()
    return int.from_bytes(digest, "big") / 2.0**64
