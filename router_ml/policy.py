"""Routing policy: ordered YAML rules matched before the learned model.

Operators know things the model cannot (the first reply of a session sets the user's opinion of
the product; agents with tools fail expensively). Rules encode that; ``default: {tier: auto}``
sends the rest to the model. A policy is validated completely at load, so a typo fails the deploy
with the rule index and reason instead of misrouting traffic later.

Match keys (all given keys must hold):

- ``role``: the subject message the size keys look at and that must exist: ``system`` (all
  system/developer messages), ``user`` (the last user message), ``assistant`` (the last assistant
  message), ``tool`` (the last tool result) or ``last`` (the last message).
- ``length_gt`` / ``length_lt``: characters of the subject (of the whole conversation without
  ``role``); ``tokens_gt`` / ``tokens_lt``: the same in o200k tokens.
- ``position``: ``first`` (one user turn, no assistant turn yet), ``followup``, or an integer N
  (the N-th user turn).
- ``tools``: true when the request defines tools or its history has tool calls or results.
- ``has_image``, ``json_mode``, ``stream``: booleans.
- ``metadata``: a mapping of key to a value or list of accepted values.
- ``model``: the requested model name, or a list of names (aliases such as ``router-fast``).
"""

from __future__ import annotations

import os
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from importlib import resources
from typing import Any

from router_ml.errors import PolicyError
from router_ml.request import ChatRequest
from router_ml.safe_yaml import YamlError, load_yaml, load_yaml_file
from router_ml.tiers import TIERS

AUTO = "auto"
SUBJECT_ROLES = ("system", "user", "assistant", "tool", "last")
MATCH_KEYS = (
    "role",
    "position",
    "tools",
    "length_gt",
    "length_lt",
    "tokens_gt",
    "tokens_lt",
    "has_image",
    "json_mode",
    "stream",
    "metadata",
    "model",
)
_ROLE_GROUPS = {
    "system": ("system", "developer"),
    "user": ("user",),
    "assistant": ("assistant",),
    "tool": ("tool", "function"),
}

TokenCount = Callable[[str], int]


@dataclass(frozen=True)
class Rule:
    """One named rule: when every condition in ``match`` holds, route to ``tier``."""

    name: str
    match: Mapping[str, Any]
    tier: str

    def matches(self, request: ChatRequest, count_tokens: TokenCount) -> bool:
        subject: str | None = None
        if "role" in self.match:
            subject = _subject_text(request, self.match["role"])
            if subject is None:
                return False
        for key, expected in self.match.items():
            if key != "role" and not _CONDITIONS[key](request, expected, subject, count_tokens):
                return False
        return True

    def describe(self) -> str:
        conditions = ", ".join(f"{k}: {v}" for k, v in self.match.items()) or "always"
        return f"rule '{self.name}' matched ({conditions})"


@dataclass(frozen=True)
class Policy:
    """Tier → model map, ordered rules, and what the rest gets (``auto`` = the learned model)."""

    tiers: Mapping[str, str]
    rules: tuple[Rule, ...] = ()
    default_tier: str = AUTO
    safe_tier: str = "premium"
    source: str = field(default="", compare=False)

    @classmethod
    def load(cls, policy: str | os.PathLike[str] | Mapping[str, Any] | None = None) -> Policy:
        """Load a policy from a YAML path, YAML text, a mapping, or None (the shipped default)."""
        if policy is None:
            text = resources.files("router_ml").joinpath("default_policy.yaml").read_text("utf-8")
            return cls.from_dict(
                _parse_yaml(text, "default_policy.yaml"), source="default_policy.yaml"
            )
        if isinstance(policy, Mapping):
            return cls.from_dict(policy, source="<dict>")
        path = os.fspath(policy)
        if "\n" not in path and (path.endswith((".yaml", ".yml")) or os.path.exists(path)):
            try:
                spec = load_yaml_file(path)
            except YamlError as exc:
                raise PolicyError(exc.problem, source=path) from exc
            return cls.from_dict(spec, source=path)
        return cls.from_dict(_parse_yaml(path, "<text>"), source="<text>")

    @classmethod
    def from_dict(cls, spec: Mapping[str, Any], source: str = "") -> Policy:
        if not isinstance(spec, Mapping):
            raise PolicyError("expected a mapping with tiers, rules and default", source=source)
        unknown = set(spec) - {"tiers", "rules", "default", "safe_tier"}
        if unknown:
            raise PolicyError(f"unknown top-level keys {sorted(unknown)}", source=source)
        tiers = _check_tiers(spec.get("tiers"), source)
        rules_spec = spec.get("rules") or []
        if not isinstance(rules_spec, list):
            raise PolicyError("rules must be a list", source=source)
        rules = tuple(_check_rule(raw, i, source) for i, raw in enumerate(rules_spec))
        names = [rule.name for rule in rules]
        for i, name in enumerate(names):
            if name in names[:i]:
                raise PolicyError(f"duplicate rule name {name!r}", rule_index=i, source=source)
        default = spec.get("default", {"tier": AUTO})
        if not isinstance(default, Mapping) or set(default) != {"tier"}:
            raise PolicyError("default must be a mapping {tier: <tier or auto>}", source=source)
        default_tier = _check_tier_name(default["tier"], None, source, allow_auto=True)
        safe_tier = _check_tier_name(
            spec.get("safe_tier", "premium"), None, source, allow_auto=False
        )
        return cls(tiers, rules, default_tier, safe_tier, source)

    def first_match(self, request: ChatRequest, count_tokens: TokenCount) -> Rule | None:
        for rule in self.rules:
            if rule.matches(request, count_tokens):
                return rule
        return None

    def decide(self, request: ChatRequest, count_tokens: TokenCount) -> tuple[str, Rule | None]:
        """The tier (or ``auto``) for a request, and the rule that chose it (None: the default)."""
        rule = self.first_match(request, count_tokens)
        return (rule.tier, rule) if rule is not None else (self.default_tier, None)


def _parse_yaml(text: str, source: str) -> Any:
    try:
        return load_yaml(text, source)
    except YamlError as exc:
        raise PolicyError(exc.problem, source=source) from exc


def _check_tiers(raw: Any, source: str) -> dict[str, str]:
    if not isinstance(raw, Mapping):
        raise PolicyError(f"tiers must map each of {list(TIERS)} to a model name", source=source)
    missing = [tier for tier in TIERS if tier not in raw]
    unknown = [tier for tier in raw if tier not in TIERS]
    if missing or unknown:
        raise PolicyError(f"tiers: missing {missing}, unknown {unknown}", source=source)
    for tier, model in raw.items():
        if not isinstance(model, str) or not model:
            raise PolicyError(f"tiers.{tier} must be a non-empty model name", source=source)
    return {tier: raw[tier] for tier in TIERS}


def _check_tier_name(value: Any, index: int | None, source: str, allow_auto: bool) -> str:
    allowed = (*TIERS, AUTO) if allow_auto else TIERS
    if value not in allowed:
        raise PolicyError(
            f"tier {value!r} is not one of {list(allowed)}", rule_index=index, source=source
        )
    return value


def _check_rule(raw: Any, index: int, source: str) -> Rule:
    if not isinstance(raw, Mapping):
        raise PolicyError("a rule must be a mapping with name, match and tier", index, source)
    unknown = set(raw) - {"name", "match", "tier"}
    if unknown:
        raise PolicyError(f"unknown keys {sorted(unknown)}", index, source)
    name = raw.get("name")
    if not isinstance(name, str) or not name:
        raise PolicyError("name must be a non-empty string", index, source)
    match = raw.get("match")
    if not isinstance(match, Mapping) or not match:
        raise PolicyError(f"rule {name!r}: match must be a non-empty mapping", index, source)
    for key, value in match.items():
        if key not in MATCH_KEYS:
            raise PolicyError(
                f"rule {name!r}: unknown match key {key!r}; known: {list(MATCH_KEYS)}",
                index,
                source,
            )
        problem = _VALIDATORS[key](value)
        if problem:
            raise PolicyError(f"rule {name!r}: match.{key}: {problem}", index, source)
    tier = _check_tier_name(raw.get("tier"), index, source, allow_auto=True)
    return Rule(name, dict(match), tier)


def _is_bool(value: Any) -> str | None:
    return None if isinstance(value, bool) else f"expected true or false, got {value!r}"


def _is_count(value: Any) -> str | None:
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        return f"expected a non-negative integer, got {value!r}"
    return None


def _is_role(value: Any) -> str | None:
    return (
        None if value in SUBJECT_ROLES else f"expected one of {list(SUBJECT_ROLES)}, got {value!r}"
    )


def _is_position(value: Any) -> str | None:
    if value in ("first", "followup") or (_is_count(value) is None and value >= 1):
        return None
    return f"expected first, followup or a turn number >= 1, got {value!r}"


def _is_metadata(value: Any) -> str | None:
    if not isinstance(value, Mapping) or not value:
        return "expected a non-empty mapping of key to value(s)"
    for key, accepted in value.items():
        options = accepted if isinstance(accepted, list) else [accepted]
        if not options or any(isinstance(o, Mapping | list) for o in options):
            return f"{key}: expected a scalar or a list of scalars"
    return None


def _is_model(value: Any) -> str | None:
    names = value if isinstance(value, list) else [value]
    if not names or not all(isinstance(n, str) and n for n in names):
        return "expected a model name or a list of names"
    return None


_VALIDATORS: dict[str, Callable[[Any], str | None]] = {
    "role": _is_role,
    "position": _is_position,
    "tools": _is_bool,
    "length_gt": _is_count,
    "length_lt": _is_count,
    "tokens_gt": _is_count,
    "tokens_lt": _is_count,
    "has_image": _is_bool,
    "json_mode": _is_bool,
    "stream": _is_bool,
    "metadata": _is_metadata,
    "model": _is_model,
}


def _subject_text(request: ChatRequest, role: str) -> str | None:
    messages = request.messages
    if role == "last":
        message = messages[-1]
        return message.text + message.tool_call_text
    group = _ROLE_GROUPS[role]
    if role == "system":
        texts = [m.text for m in messages if m.role in group]
        return "\n".join(texts) if texts else None
    for message in reversed(messages):
        if message.role in group:
            return message.text + message.tool_call_text
    return None


def _whole_text(request: ChatRequest, subject: str | None) -> str:
    if subject is not None:
        return subject
    return "\n".join(m.text + m.tool_call_text for m in request.messages)


def _position(request: ChatRequest, expected: Any, *_: Any) -> bool:
    n_user = sum(1 for m in request.messages if m.role == "user")
    first = n_user == 1 and not any(m.role == "assistant" for m in request.messages)
    if expected == "first":
        return first
    if expected == "followup":
        return n_user >= 1 and not first
    return n_user == expected


def _uses_tools(request: ChatRequest, expected: bool, *_: Any) -> bool:
    used = bool(request.tools) or any(
        m.n_tool_calls or m.role in ("tool", "function") for m in request.messages
    )
    return used == expected


def _metadata(request: ChatRequest, expected: Mapping[str, Any], *_: Any) -> bool:
    for key, accepted in expected.items():
        options = accepted if isinstance(accepted, list) else [accepted]
        normalised = {str(o).lower() if isinstance(o, bool) else str(o) for o in options}
        if request.metadata.get(str(key)) not in normalised:
            return False
    return True


def _model(request: ChatRequest, expected: str | list[str], *_: Any) -> bool:
    names = expected if isinstance(expected, list) else [expected]
    return request.model in names


_CONDITIONS: dict[str, Callable[[ChatRequest, Any, str | None, TokenCount], bool]] = {
    "position": _position,
    "tools": _uses_tools,
    "length_gt": lambda r, n, s, _: len(_whole_text(r, s)) > n,
    "length_lt": lambda r, n, s, _: len(_whole_text(r, s)) < n,
    "tokens_gt": lambda r, n, s, count: count(_whole_text(r, s)) > n,
    "tokens_lt": lambda r, n, s, count: count(_whole_text(r, s)) < n,
    "has_image": lambda r, b, *_: any(m.n_images for m in r.messages) == b,
    "json_mode": lambda r, b, *_: (r.response_format in ("json_object", "json_schema")) == b,
    "stream": lambda r, b, *_: r.stream == b,
    "metadata": _metadata,
    "model": _model,
}
