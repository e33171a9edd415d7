"""Exceptions raised by router-ml.

Every error a caller can cause carries enough context to fix the input without reading our code:
the request field, the policy rule index, or the model file and what it expected.
"""

from __future__ import annotations


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
