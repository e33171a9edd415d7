"""Exceptions raised by router-ml.

Every error a caller can cause carries enough context to fix the input without reading our code:
the request field, the policy rule index, or the model file and what it expected.
"""

from __future__ import annotations

import reprlib
from typing import Any

SHOWN_CHARS = 80
"""Longest echo of a caller's value in an error message: a 3 MB field must not come back whole."""

_repr = reprlib.Repr()
_repr.maxstring = _repr.maxother = SHOWN_CHARS
_repr.maxlevel = 2
_repr.maxlist = _repr.maxtuple = _repr.maxdict = _repr.maxset = 4


def shown(value: Any) -> str:
    """A ``repr`` of ``value`` bounded in size and cost, for error messages that quote input.

    Bounded whatever the value: long strings and containers are cut, nesting stops at two levels,
    and integers too long for ``repr`` (Python refuses more than 4,300 digits) are described.
    """
    if isinstance(value, int) and not isinstance(value, bool) and value.bit_length() > 256:
        return f"<integer of {value.bit_length()} bits>"
    try:
        text = _repr.repr(value)
    except Exception:  # a caller's object whose __repr__ fails
        text = f"<{type(value).__name__}>"
    return text if len(text) <= SHOWN_CHARS + 8 else text[:SHOWN_CHARS] + "..."


class RouterError(Exception):
    """Base class of every error router-ml raises on purpose."""


class InvalidRequest(RouterError, ValueError):
    """The chat request is malformed; ``field`` names where (e.g. ``messages[2].content``)."""

    def __init__(self, field: str, problem: str) -> None:
        self.field = field
        self.problem = problem
        super().__init__(f"{field}: {problem}")


class PolicyError(RouterError, ValueError):
    """The routing policy is invalid; ``rule_index`` is the offending rule (None: top level)."""

    def __init__(self, problem: str, rule_index: int | None = None, source: str = "") -> None:
        self.problem = problem
        self.rule_index = rule_index
        self.source = source
        where = f"rule {rule_index}" if rule_index is not None else "policy"
        prefix = f"{source}: " if source else ""
        super().__init__(f"{prefix}{where}: {problem}")


class ModelLoadError(RouterError):
    """The model directory is missing, corrupt, or incompatible with this runtime."""


class SchemaMismatch(ModelLoadError):
    """The model was trained on another feature schema than the one this runtime computes."""


class TokenizerError(RouterError):
    """The offline tokenizer vocabulary is missing or fails its integrity check."""
