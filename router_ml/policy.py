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
- ``text_matches``: a regular expression searched in the subject (the whole conversation without
  ``role``), within its first :data:`TEXT_MATCH_CHARS` characters. Patterns are checked at load
  for constructs that can backtrack exponentially (a repeat nested in an unbounded repeat, an
  alternation under an unbounded repeat, backreferences) and refused, so matching time is bounded
  by the text bound.
- ``after_error``: the newest tool result reads like an error (:mod:`router_ml.recovery`).
- ``retry``: the user rejects the previous answer ("that's wrong", "redo"), or the caller says the
  same request was seen moments ago (the gateway's request-hash cache passes ``repeated=True``).

What a rule does (exactly one):

- ``tier: <tier>``: that tier; ``tier: auto``: the learned model decides.
- ``min_tier: <tier>``: the learned model decides, but never below that tier.
- ``cascade: [economy, premium]`` (or ``tier: cascade``, short for that list): try the first
  tier; a gateway with answer gates steps to the next when the answer fails a gate.

The ``default`` takes the same forms.

A top-level ``coverage`` section (``{enabled, threshold, escalate_to}``,
``router_ml.coverage.CoverageRule``) sets what the router does with requests outside the model's
training traffic; without it they escalate to the top tier at the model's calibrated threshold.
A top-level ``task_table`` section (``{enabled, raise_at, cap_at, tiers}``,
``router_ml.task_kinds.TaskTable``) maps task kinds to tiers for the model's decisions; without it
the product's task tables apply.
"""

from __future__ import annotations

import os
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from importlib import resources
from typing import Any

from router_ml.coverage import CoverageRule
from router_ml.errors import PolicyError, shown
from router_ml.recovery import RecoverySignals, recovery_signals
from router_ml.request import ChatRequest
from router_ml.safe_yaml import YamlError, load_yaml, load_yaml_file
from router_ml.task_kinds import TaskTable
from router_ml.tiers import TIERS, at_least, tier_rank

AUTO = "auto"
CASCADE = "cascade"
DEFAULT_CASCADE = (TIERS[0], TIERS[-1])
"""What ``tier: cascade`` means: the cheapest tier, then the most capable one."""
TEXT_MATCH_CHARS = 8192
"""Characters of the subject searched by ``text_matches``."""
MAX_PATTERN_CHARS = 512
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
    "text_matches",
    "after_error",
    "retry",
)
ACTION_KEYS = ("tier", "min_tier", "cascade")
_ROLE_GROUPS = {
    "system": ("system", "developer"),
    "user": ("user",),
    "assistant": ("assistant",),
    "tool": ("tool", "function"),
}

TokenCount = Callable[[str], int]


class _Context:
    """What the conditions of one decision share: the token counter, the caller's repeat hint,
    and the recovery signals (read once, on first use)."""

    __slots__ = ("_signals", "count_tokens", "repeated", "request")

    def __init__(self, request: ChatRequest, count_tokens: TokenCount, repeated: bool) -> None:
        self.request, self.count_tokens, self.repeated = request, count_tokens, repeated
        self._signals: RecoverySignals | None = None

    @property
    def signals(self) -> RecoverySignals:
        if self._signals is None:
            self._signals = recovery_signals(self.request)
        return self._signals


@dataclass(frozen=True)
class Rule:
    """One named rule: when every condition in ``match`` holds, route as it says.

    ``tier`` is a tier or ``auto``; ``min_tier`` (with ``tier: auto``) floors the model's choice;
    a non-empty ``cascade`` lists the tiers to try in order (``tier`` is then its first).
    """

    name: str
    match: Mapping[str, Any]
    tier: str
    min_tier: str | None = None
    cascade: tuple[str, ...] = ()

    def matches(
        self, request: ChatRequest, count_tokens: TokenCount, repeated: bool = False
    ) -> bool:
        return self._matches(_Context(request, count_tokens, repeated))

    def _matches(self, context: _Context) -> bool:
        request = context.request
        subject: str | None = None
        if "role" in self.match:
            subject = _subject_text(request, self.match["role"])
            if subject is None:
                return False
        for key, expected in self.match.items():
            if key != "role" and not _CONDITIONS[key](request, expected, subject, context):
                return False
        return True

    def describe(self) -> str:
        conditions = (
            ", ".join(
                f"{k}: {v.pattern if isinstance(v, re.Pattern) else v}"
                for k, v in self.match.items()
            )
            or "always"
        )
        return f"rule '{self.name}' matched ({conditions})"

    def floor(self, tier: str) -> str:
        """``tier`` raised to this rule's ``min_tier`` (unchanged without one)."""
        return tier if self.min_tier is None else at_least(tier, self.min_tier)


@dataclass(frozen=True)
class Policy:
    """Tier → model map, ordered rules, and what the rest gets (``auto`` = the learned model)."""

    tiers: Mapping[str, str]
    rules: tuple[Rule, ...] = ()
    default_tier: str = AUTO
    safe_tier: str = "premium"
    source: str = field(default="", compare=False)
    default_min_tier: str | None = None
    default_cascade: tuple[str, ...] = ()
    coverage: CoverageRule = field(default_factory=CoverageRule)
    """What the router does with requests outside the model's training traffic."""
    task_table: TaskTable = field(default_factory=TaskTable)
    """Task kind → tier for the model's decisions (the product's task tables by default)."""

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
        unknown = set(spec) - {"tiers", "rules", "default", "safe_tier", "coverage", "task_table"}
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
                raise PolicyError(f"duplicate rule name {shown(name)}", rule_index=i, source=source)
        default = spec.get("default", {"tier": AUTO})
        if not isinstance(default, Mapping) or len(default) != 1 or set(default) - set(ACTION_KEYS):
            raise PolicyError(
                "default must be a mapping: {tier: <tier, auto or cascade>}, "
                "{min_tier: <tier>} or {cascade: [tiers]}",
                source=source,
            )
        default_tier, default_min, default_cascade = _check_action(default, None, source)
        safe_tier = _check_tier_name(
            spec.get("safe_tier", "premium"), None, source, allow_auto=False
        )
        try:
            coverage = CoverageRule.from_config(spec.get("coverage"))
            task_table = TaskTable.from_config(spec.get("task_table"))
        except ValueError as exc:
            raise PolicyError(str(exc), source=source) from None
        return cls(
            tiers,
            rules,
            default_tier,
            safe_tier,
            source,
            default_min,
            default_cascade,
            coverage,
            task_table,
        )

    def first_match(
        self, request: ChatRequest, count_tokens: TokenCount, repeated: bool = False
    ) -> Rule | None:
        context = _Context(request, count_tokens, repeated)
        for rule in self.rules:
            if rule._matches(context):
                return rule
        return None

    def decide(
        self, request: ChatRequest, count_tokens: TokenCount, repeated: bool = False
    ) -> tuple[str, Rule | None]:
        """The tier (``auto``: the model decides) and the rule that chose it (None: the default).

        For a cascade the tier is the cascade's first; ``cascade_of`` and ``floor_of`` tell the
        rest. ``repeated`` says the caller saw this same request moments ago (``retry``).
        """
        rule = self.first_match(request, count_tokens, repeated)
        return (rule.tier, rule) if rule is not None else (self.default_tier, None)

    def cascade_of(self, rule: Rule | None) -> tuple[str, ...]:
        """The cascade the rule (None: the default) asks for; empty when it asks for none."""
        return rule.cascade if rule is not None else self.default_cascade

    def floor_of(self, rule: Rule | None) -> str | None:
        """The minimum tier the rule (None: the default) puts under the model's choice."""
        return rule.min_tier if rule is not None else self.default_min_tier


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
            f"tier {shown(value)} is not one of {list(allowed)}", rule_index=index, source=source
        )
    return value


def _check_action(
    raw: Mapping[str, Any], index: int | None, source: str
) -> tuple[str, str | None, tuple[str, ...]]:
    """(tier or auto, min_tier, cascade) from exactly one of ``tier``/``min_tier``/``cascade``."""
    given = [key for key in ACTION_KEYS if key in raw]
    if len(given) != 1:
        raise PolicyError(
            f"give exactly one of {list(ACTION_KEYS)}, got {given or 'none'}", index, source
        )
    if "min_tier" in raw:
        return AUTO, _check_tier_name(raw["min_tier"], index, source, allow_auto=False), ()
    if "cascade" in raw or raw["tier"] == CASCADE:
        cascade = raw.get("cascade", list(DEFAULT_CASCADE))
        if (
            not isinstance(cascade, list)
            or len(cascade) < 2
            or not all(isinstance(t, str) and t in TIERS for t in cascade)
            or [tier_rank(t) for t in cascade] != sorted({tier_rank(t) for t in cascade})
        ):
            raise PolicyError(
                f"cascade: expected two or more distinct tiers from {list(TIERS)}, cheapest "
                f"first, got {shown(cascade)}",
                index,
                source,
            )
        return cascade[0], None, tuple(cascade)
    return _check_tier_name(raw["tier"], index, source, allow_auto=True), None, ()


def _check_rule(raw: Any, index: int, source: str) -> Rule:
    if not isinstance(raw, Mapping):
        raise PolicyError("a rule must be a mapping with name, match and tier", index, source)
    unknown = set(raw) - {"name", "match", *ACTION_KEYS}
    if unknown:
        raise PolicyError(f"unknown keys {sorted(unknown)}", index, source)
    name = raw.get("name")
    if not isinstance(name, str) or not name:
        raise PolicyError("name must be a non-empty string", index, source)
    match = raw.get("match")
    if not isinstance(match, Mapping) or not match:
        raise PolicyError(f"rule {shown(name)}: match must be a non-empty mapping", index, source)
    for key, value in match.items():
        if key not in MATCH_KEYS:
            raise PolicyError(
                f"rule {shown(name)}: unknown match key {shown(key)}; known: {list(MATCH_KEYS)}",
                index,
                source,
            )
        problem = _VALIDATORS[key](value)
        if problem:
            raise PolicyError(f"rule {shown(name)}: match.{key}: {problem}", index, source)
    tier, min_tier, cascade = _check_action(raw, index, source)
    compiled = dict(match)
    if "text_matches" in compiled:
        compiled["text_matches"] = re.compile(compiled["text_matches"])
    return Rule(name, compiled, tier, min_tier, cascade)


def _is_bool(value: Any) -> str | None:
    return None if isinstance(value, bool) else f"expected true or false, got {shown(value)}"


def _is_count(value: Any) -> str | None:
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        return f"expected a non-negative integer, got {shown(value)}"
    return None


def _is_role(value: Any) -> str | None:
    return (
        None
        if value in SUBJECT_ROLES
        else f"expected one of {list(SUBJECT_ROLES)}, got {shown(value)}"
    )


def _is_position(value: Any) -> str | None:
    if value in ("first", "followup") or (_is_count(value) is None and value >= 1):
        return None
    return f"expected first, followup or a turn number >= 1, got {shown(value)}"


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


def _is_bounded_pattern(value: Any) -> str | None:
    if not isinstance(value, str) or not value:
        return "expected a regular expression string"
    if len(value) > MAX_PATTERN_CHARS:
        return f"pattern longer than {MAX_PATTERN_CHARS} characters"
    try:
        parsed = _sre_parse(value)
    except re.error as exc:
        return f"invalid regular expression: {exc}"
    return _backtracking_risk(parsed)


def _backtracking_risk(items: Any, under_unbounded_repeat: bool = False) -> str | None:
    """Why a parsed pattern could take exponential time, or None when it cannot.

    Python's ``re`` has no timeout, so the guarantee is structural: no repeat inside an unbounded
    repeat (``(a+)+``), no alternation inside one (``(a|ab)*``), no backreference.
    """
    for op, arg in items:
        name = str(op)
        if name in ("MAX_REPEAT", "MIN_REPEAT", "POSSESSIVE_REPEAT"):
            _low, high, body = arg
            unbounded = high >= _sre_constants().MAXREPEAT or high > 100
            if under_unbounded_repeat and high > 1:
                return "a repeat nested inside an unbounded repeat can backtrack exponentially"
            problem = _backtracking_risk(body, under_unbounded_repeat or unbounded)
            if problem:
                return problem
        elif name == "BRANCH":
            if under_unbounded_repeat:
                return "an alternation inside an unbounded repeat can backtrack exponentially"
            for branch in arg[1]:
                problem = _backtracking_risk(branch, under_unbounded_repeat)
                if problem:
                    return problem
        elif name in ("GROUPREF", "GROUPREF_EXISTS"):
            return "backreferences are not allowed (matching time is unbounded)"
        elif name == "SUBPATTERN":
            problem = _backtracking_risk(arg[-1], under_unbounded_repeat)
            if problem:
                return problem
        elif name in ("ASSERT", "ASSERT_NOT"):
            problem = _backtracking_risk(arg[1], under_unbounded_repeat)
            if problem:
                return problem
        elif name == "ATOMIC_GROUP":
            problem = _backtracking_risk(arg, under_unbounded_repeat)
            if problem:
                return problem
    return None


def _sre_parse(pattern: str) -> Any:
    try:
        from re import _parser as parser  # type: ignore[attr-defined]  # Python >= 3.11
    except ImportError:  # pragma: no cover - Python 3.10
        import sre_parse as parser
    return parser.parse(pattern)


def _sre_constants() -> Any:
    try:
        from re import _constants as constants  # type: ignore[attr-defined]  # Python >= 3.11
    except ImportError:  # pragma: no cover - Python 3.10
        import sre_constants as constants
    return constants


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
    "text_matches": _is_bounded_pattern,
    "after_error": _is_bool,
    "retry": _is_bool,
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


def _text_matches(
    request: ChatRequest, pattern: re.Pattern[str], subject: str | None, _: _Context
) -> bool:
    if subject is not None:
        return pattern.search(subject[:TEXT_MATCH_CHARS]) is not None
    head, size = [], 0
    for message in request.messages:  # the whole conversation, read only up to the bound
        text = message.text + message.tool_call_text
        head.append(text[: TEXT_MATCH_CHARS - size])
        size += len(head[-1]) + 1
        if size >= TEXT_MATCH_CHARS:
            break
    return pattern.search("\n".join(head)) is not None


def _retry(request: ChatRequest, expected: bool, _: Any, context: _Context) -> bool:
    return (context.repeated or context.signals.user_rejects_answer) == expected


_CONDITIONS: dict[str, Callable[[ChatRequest, Any, str | None, _Context], bool]] = {
    "position": _position,
    "tools": _uses_tools,
    "length_gt": lambda r, n, s, _: len(_whole_text(r, s)) > n,
    "length_lt": lambda r, n, s, _: len(_whole_text(r, s)) < n,
    "tokens_gt": lambda r, n, s, c: c.count_tokens(_whole_text(r, s)) > n,
    "tokens_lt": lambda r, n, s, c: c.count_tokens(_whole_text(r, s)) < n,
    "text_matches": _text_matches,
    "after_error": lambda r, b, s, c: c.signals.after_error == b,
    "retry": _retry,
    "has_image": lambda r, b, *_: any(m.n_images for m in r.messages) == b,
    "json_mode": lambda r, b, *_: (r.response_format in ("json_object", "json_schema")) == b,
    "stream": lambda r, b, *_: r.stream == b,
    "metadata": _metadata,
    "model": _model,
}
