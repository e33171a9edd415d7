"""Answer gates: checks run on an upstream's answer before it reaches the client.

A call that succeeds with a useless answer (JSON that does not parse, a tool call with arguments
the tool cannot take, an answer cut off at ``max_tokens``) is as much a failure of the tier as a
500, and the client cannot tell it from a good one until it breaks downstream. Each gate here is
a pure function of the client's request body and the upstream's answer (both plain JSON
mappings); the gateway runs the configured gates in order and, when one fails, retries on the
next tier exactly as it does after a failed call.

Gates (``GATE_NAMES``):

- ``json``: a ``json_object`` / ``json_schema`` answer must parse, and validate against the
  given schema (``jsonschema``; validators are built once per distinct schema and cached).
- ``tools``: every tool call must name a tool the request defined, with arguments that parse as
  a JSON object and validate against that tool's ``parameters`` schema.
- ``truncation``: ``finish_reason: length`` (the answer was cut short).
- ``empty``: no content, no tool call and no refusal.
- ``refusal``: an OpenAI ``refusal`` field, or content matching a configured refusal pattern.
- ``user``: a Python callable named in the config (``package.module:function``), called with
  ``(request, answer)``; it returns True/None to pass, False or a reason string to fail.
- ``judge``: a judge model scores the answer; built by the gateway from :class:`JudgeSpec`
  (:func:`judge_request` and :func:`judge_verdict` are the pure halves of that call).

The checks never raise on a malformed answer: what they cannot read fails the gate with a
reason, since a client could not read it either.
"""

from __future__ import annotations

import importlib
import json
import re
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from functools import lru_cache
from typing import Any

STRUCTURAL_GATES = ("json", "tools", "truncation", "empty")
"""Gates that only read the answer's structure; on by default in ``examples/gateway.yaml``."""
GATE_NAMES = (*STRUCTURAL_GATES, "refusal", "user", "judge")
STREAM_MODES = ("buffer", "off")
"""``buffer``: hold a streamed answer until it is complete and gate it; ``off``: do not run the
gate on streams (only failures known before the first byte escalate a stream)."""
DETAIL_CHARS = 200
"""Longest gate detail kept for headers, logs and metrics."""
REFUSAL_SCAN_CHARS = 1024
"""Characters at the head of an answer searched for refusal patterns."""
_SCHEMA_CACHE_SIZE = 256

Answer = Mapping[str, Any]
Request = Mapping[str, Any]
GateCheck = Callable[[Request, Answer], "str | None"]
"""A gate check: None when the answer passes, else why it failed."""


@dataclass(frozen=True, slots=True)
class GateVerdict:
    """The verdict of the gates on one answer: which gate decided and why."""

    name: str
    passed: bool
    detail: str = ""

    def to_dict(self) -> dict[str, Any]:
        """The decision-log shape ``{"name", "passed", "detail"}``."""
        return {"name": self.name, "passed": self.passed, "detail": self.detail}


# -- the structural checks -------------------------------------------------------------------


def check_json(request: Request, answer: Answer) -> str | None:
    """JSON mode answers must parse; ``json_schema`` answers must also validate."""
    response_format = request.get("response_format")
    if not isinstance(response_format, Mapping):
        return None
    kind = response_format.get("type")
    if kind not in ("json_object", "json_schema"):
        return None
    schema = None
    if kind == "json_schema":
        spec = response_format.get("json_schema")
        schema = spec.get("schema") if isinstance(spec, Mapping) else None
    for index, message in _messages(answer):
        content = message.get("content")
        if message.get("refusal") or (content is None and message.get("tool_calls")):
            continue  # a refusal or a tool call is judged by its own gate
        if not isinstance(content, str):
            return f"choice {index}: JSON mode answer has no text content"
        try:
            value = json.loads(content)
        except ValueError as exc:
            return f"choice {index}: answer is not valid JSON ({exc})"
        except RecursionError:
            return f"choice {index}: answer JSON is nested too deeply"
        if kind == "json_object" and not isinstance(value, dict):
            return f"choice {index}: JSON mode answer is a {type(value).__name__}, not an object"
        if isinstance(schema, Mapping):
            problem = schema_violation(schema, value)
            if problem:
                return f"choice {index}: answer violates the response schema: {problem}"
    return None


def check_tools(request: Request, answer: Answer) -> str | None:
    """Tool calls must name a defined tool and carry arguments valid for its parameters."""
    defined = _defined_tools(request)
    for index, message in _messages(answer):
        calls = message.get("tool_calls")
        if calls is None and isinstance(message.get("function_call"), Mapping):
            calls = [{"function": message["function_call"]}]
        if not calls:
            continue
        if not isinstance(calls, list):
            return f"choice {index}: tool_calls is not a list"
        for k, call in enumerate(calls):
            where = f"choice {index} tool call {k}"
            function = call.get("function") if isinstance(call, Mapping) else None
            if not isinstance(function, Mapping):
                if isinstance(call, Mapping) and call.get("type", "function") != "function":
                    continue  # custom tool kinds carry free text, not JSON arguments
                return f"{where}: no function"
            name = function.get("name")
            if name not in defined:
                return f"{where}: calls {name!r}, which the request did not define"
            arguments = function.get("arguments")
            if arguments is None or (isinstance(arguments, str) and not arguments.strip()):
                arguments = "{}"
            if not isinstance(arguments, str):
                return f"{where} ({name}): arguments are not a JSON string"
            try:
                value = json.loads(arguments)
            except ValueError as exc:
                return f"{where} ({name}): arguments are not valid JSON ({exc})"
            except RecursionError:
                return f"{where} ({name}): arguments are nested too deeply"
            if not isinstance(value, dict):
                return f"{where} ({name}): arguments are a {type(value).__name__}, not an object"
            parameters = defined[name]
            if isinstance(parameters, Mapping):
                problem = schema_violation(parameters, value)
                if problem:
                    return f"{where} ({name}): {problem}"
    return None


def check_truncation(_request: Request, answer: Answer) -> str | None:
    """An answer that stopped at the token limit is cut short."""
    for index, choice in _choices(answer):
        if choice.get("finish_reason") == "length":
            return f"choice {index}: finish_reason is length (the answer was cut short)"
    return None


def check_empty(_request: Request, answer: Answer) -> str | None:
    """An answer with no text, no tool call and no refusal says nothing."""
    choices = _choices(answer)
    if not choices:
        return "the answer has no choices"
    for index, message in _messages(answer):
        content = message.get("content")
        has_text = isinstance(content, str) and content.strip() != ""
        has_parts = isinstance(content, list) and bool(content)
        if not (
            has_text
            or has_parts
            or message.get("tool_calls")
            or message.get("function_call")
            or message.get("refusal")
        ):
            return f"choice {index}: empty content and no tool calls"
    return None


@dataclass(frozen=True)
class RefusalCheck:
    """Fails answers that refuse: OpenAI's ``refusal`` field, or text matching a pattern."""

    patterns: tuple[re.Pattern[str], ...] = ()

    def __call__(self, _request: Request, answer: Answer) -> str | None:
        for index, message in _messages(answer):
            refusal = message.get("refusal")
            if isinstance(refusal, str) and refusal:
                return f"choice {index}: refusal: {refusal[:DETAIL_CHARS]}"
            content = message.get("content")
            if isinstance(content, str):
                head = content[:REFUSAL_SCAN_CHARS]
                for pattern in self.patterns:
                    if pattern.search(head):
                        return (
                            f"choice {index}: content matches refusal pattern {pattern.pattern!r}"
                        )
        return None


@dataclass(frozen=True)
class UserCheck:
    """A gate written by the operator: ``function(request, answer)`` → True/None, False or str.

    An exception in the operator's function passes the answer (the detail says so): a bug in
    a gate must not turn every request into an escalation.
    """

    target: str
    function: Callable[[Request, Answer], Any] = field(repr=False)

    def __call__(self, request: Request, answer: Answer) -> str | None:
        try:
            verdict = self.function(request, answer)
        except Exception as exc:  # the operator's code: report, never fail the request
            raise GateError(f"user gate {self.target} raised {type(exc).__name__}: {exc}") from exc
        if verdict is None or verdict is True:
            return None
        if verdict is False:
            return f"user gate {self.target} rejected the answer"
        if isinstance(verdict, str):
            return verdict or f"user gate {self.target} rejected the answer"
        raise GateError(f"user gate {self.target} returned {type(verdict).__name__}")


class GateError(Exception):
    """A gate could not decide (its own fault, not the answer's); the answer passes."""


def load_callable(target: str) -> Callable[..., Any]:
    """Import ``package.module:function`` (or ``package.module.function``)."""
    module_name, sep, attribute = target.partition(":")
    if not sep:
        module_name, _, attribute = target.rpartition(".")
    if not module_name or not attribute:
        raise ValueError(f"expected package.module:function, got {target!r}")
    try:
        function = getattr(importlib.import_module(module_name), attribute)
    except (ImportError, AttributeError) as exc:
        raise ValueError(f"cannot import {target!r}: {exc}") from exc
    if not callable(function):
        raise ValueError(f"{target!r} is not callable")
    return function


# -- the judge gate (its call is made by the gateway) ----------------------------------------

DEFAULT_JUDGE_PROMPT = (
    "You grade an assistant's answer to a user's request. Reply with one number from 0 to 10 "
    "(10: fully correct and complete, 0: wrong or useless) and nothing else.\n\n"
    "## Request\n{request}\n\n## Answer\n{answer}"
)
JUDGE_TEXT_CHARS = 8000
"""Characters of the request and of the answer shown to the judge (each)."""
_SCORE_RE = re.compile(r"-?\d+(?:\.\d+)?")


@dataclass(frozen=True)
class JudgeSpec:
    """A judge model asked to score answers; passes at ``threshold`` (0-10) or above."""

    model: str
    upstream: str
    threshold: float = 7.0
    prompt: str = DEFAULT_JUDGE_PROMPT
    timeout_s: float = 30.0


def judge_request(spec: JudgeSpec, request: Request, answer: Answer) -> dict[str, Any]:
    """The chat request that asks the judge to score ``answer`` to ``request``."""
    turns = [
        f"{m.get('role')}: {_text_of(m.get('content'))}"
        for m in request.get("messages") or []
        if isinstance(m, Mapping)
    ]
    answers = [_text_of(message.get("content")) for _, message in _messages(answer)]
    prompt = spec.prompt.replace("{request}", "\n".join(turns)[-JUDGE_TEXT_CHARS:]).replace(
        "{answer}", "\n".join(answers)[:JUDGE_TEXT_CHARS]
    )
    return {
        "model": spec.model,
        "messages": [{"role": "user", "content": prompt}],
        "temperature": 0,
        "max_tokens": 8,
    }


def judge_verdict(spec: JudgeSpec, judge_answer: Answer) -> GateVerdict:
    """Read the judge's score; an unreadable reply is a ``GateError`` (the answer passes)."""
    texts = [_text_of(message.get("content")) for _, message in _messages(judge_answer)]
    match = _SCORE_RE.search(texts[0]) if texts else None
    if match is None:
        raise GateError(f"judge reply has no score: {(texts or [''])[0][:80]!r}")
    score = float(match.group())
    passed = score >= spec.threshold
    return GateVerdict("judge", passed, f"judge score {score:g} (pass at {spec.threshold:g})")


# -- running the gates -----------------------------------------------------------------------


@dataclass(frozen=True)
class Gate:
    """A named check and how it treats streams (``buffer`` or ``off``)."""

    name: str
    check: GateCheck
    stream: str = "buffer"


GATE_REQUEST_FIELDS: Mapping[str, frozenset[str]] = {
    "json": frozenset({"response_format"}),
    "tools": frozenset({"tools", "functions"}),
    "truncation": frozenset(),
    "empty": frozenset(),
    "refusal": frozenset(),
}
"""The request's top-level fields each built-in gate reads (``check_json``, ``check_tools``,
``_gate_concerns``); the user gate may read any (absent here)."""
JUDGE_REQUEST_FIELDS = frozenset({"messages"})
"""The request fields the judge is shown (``judge_request``)."""


@dataclass(frozen=True)
class AnswerGates:
    """The configured gates, run in order; the first failure decides."""

    gates: tuple[Gate, ...] = ()
    judge: JudgeSpec | None = None
    judge_stream: str = "off"
    stream_buffer_bytes: int = 4 * 1024 * 1024
    """Largest streamed answer held back for gating; a longer one is relayed ungated."""

    @property
    def names(self) -> tuple[str, ...]:
        return tuple(g.name for g in self.gates) + (("judge",) if self.judge else ())

    @property
    def request_fields(self) -> frozenset[str] | None:
        """The request's top-level fields these gates read (None: any, a user gate's function).

        A gateway keeps only these of a decoded body for its gates, so a large body can be
        decoded in a worker process and only the few fields the gates need come back.
        """
        fields: set[str] = set(JUDGE_REQUEST_FIELDS) if self.judge is not None else set()
        for gate in self.gates:
            known = GATE_REQUEST_FIELDS.get(gate.name)
            if known is None:
                return None
            fields |= known
        return frozenset(fields)

    def applies(self, request: Request, stream: bool) -> bool:
        """Whether any gate would run on this request's answer (streams: buffered gates)."""
        if not stream:
            return bool(self.gates) or self.judge is not None
        return self.buffers_stream(request)

    def buffers_stream(self, request: Request) -> bool:
        """Whether a streamed answer to ``request`` must be held back until it is gated."""
        for gate in self.gates:
            if gate.stream == "buffer" and _gate_concerns(gate.name, request):
                return True
        return self.judge is not None and self.judge_stream == "buffer"

    def check(self, request: Request, answer: Answer, stream: bool = False) -> GateVerdict:
        """Run every applicable gate on a parsed answer; the first failure is the verdict."""
        ran = []
        for gate in self.gates:
            if stream and gate.stream != "buffer":
                continue
            try:
                problem = gate.check(request, answer)
            except GateError as exc:
                ran.append(gate.name)
                return GateVerdict(gate.name, True, _short(str(exc)))
            ran.append(gate.name)
            if problem is not None:
                return GateVerdict(gate.name, False, _short(problem))
        return GateVerdict(",".join(ran), True, "")

    def check_body(self, request: Request, body: bytes, stream: bool = False) -> GateVerdict:
        """Gate a raw upstream body: a chat.completion JSON, or an SSE stream when ``stream``."""
        answer = assemble_stream(body) if stream else parse_answer(body)
        if answer is None:
            return GateVerdict("parse", False, "the upstream answer is not a chat completion")
        return self.check(request, answer, stream)


def _gate_concerns(name: str, request: Request) -> bool:
    """Whether a gate can fail on this request at all (json needs JSON mode, tools need tools)."""
    if name == "json":
        response_format = request.get("response_format")
        return isinstance(response_format, Mapping) and response_format.get("type") in (
            "json_object",
            "json_schema",
        )
    if name == "tools":
        return bool(request.get("tools") or request.get("functions"))
    return True


def build_gates(
    enabled: Iterable[str],
    refusal_patterns: Sequence[str] = (),
    user_target: str | None = None,
    stream_modes: Mapping[str, str] | None = None,
    judge: JudgeSpec | None = None,
    judge_stream: str = "off",
    stream_buffer_bytes: int = 4 * 1024 * 1024,
) -> AnswerGates:
    """Gates in the canonical order of :data:`GATE_NAMES`; raises ``ValueError`` on bad input."""
    wanted = set(enabled)
    unknown = wanted - set(GATE_NAMES[:-1])
    if unknown:
        raise ValueError(
            f"unknown gates {sorted(unknown)}; known: {list(GATE_NAMES[:-1])} "
            "(the judge gate is configured by its own section)"
        )
    modes = dict(stream_modes or {})
    for name, mode in modes.items():
        if mode not in STREAM_MODES:
            raise ValueError(f"{name}.stream: expected one of {list(STREAM_MODES)}, got {mode!r}")
    checks: dict[str, GateCheck] = {
        "json": check_json,
        "tools": check_tools,
        "truncation": check_truncation,
        "empty": check_empty,
    }
    if "refusal" in wanted:
        compiled = []
        for pattern in refusal_patterns:
            try:
                compiled.append(re.compile(pattern, re.IGNORECASE))
            except re.error as exc:
                raise ValueError(f"refusal pattern {pattern!r}: {exc}") from exc
        checks["refusal"] = RefusalCheck(tuple(compiled))
    if "user" in wanted:
        if not user_target:
            raise ValueError("the user gate needs a callable (package.module:function)")
        checks["user"] = UserCheck(user_target, load_callable(user_target))
    gates = tuple(
        Gate(name, checks[name], modes.get(name, default_stream_mode(name)))
        for name in GATE_NAMES
        if name in wanted
    )
    return AnswerGates(gates, judge, judge_stream, stream_buffer_bytes)


def default_stream_mode(name: str) -> str:
    """JSON and tool answers are useless when broken, so streams of them are held back; the
    other gates leave streams alone unless configured to buffer."""
    return "buffer" if name in ("json", "tools") else "off"


# -- reading answers ---------------------------------------------------------------------------


def parse_answer(body: bytes) -> dict[str, Any] | None:
    """A chat.completion body as a mapping, or None when it is not one."""
    try:
        answer = json.loads(body)
    except (ValueError, RecursionError):
        return None
    return answer if isinstance(answer, dict) and isinstance(answer.get("choices"), list) else None


def assemble_stream(body: bytes) -> dict[str, Any] | None:
    """Rebuild the chat.completion that an SSE stream of chunks spells out, or None.

    Content and refusal deltas are concatenated per choice, tool-call deltas merged by their
    ``index`` (name once, arguments in pieces), and the last ``finish_reason`` kept.
    """
    choices: dict[int, dict[str, Any]] = {}
    seen_chunk = False
    for line in body.split(b"\n"):
        line = line.strip()
        if not line.startswith(b"data:"):
            continue
        data = line[5:].strip()
        if data == b"[DONE]":
            break
        try:
            chunk = json.loads(data)
        except (ValueError, RecursionError):
            return None
        if not isinstance(chunk, dict):
            return None
        if "error" in chunk:
            return None
        seen_chunk = True
        for choice in chunk.get("choices") or []:
            if isinstance(choice, dict):
                _merge_delta(choices, choice)
    if not seen_chunk:
        return None
    return {"object": "chat.completion", "choices": [_finish(choices[k]) for k in sorted(choices)]}


def _merge_delta(choices: dict[int, dict[str, Any]], choice: Mapping[str, Any]) -> None:
    index = choice.get("index", 0)
    index = index if isinstance(index, int) else 0
    state = choices.setdefault(
        index, {"content": [], "refusal": [], "tool_calls": {}, "finish_reason": None}
    )
    delta = choice.get("delta")
    if isinstance(delta, Mapping):
        if isinstance(delta.get("content"), str):
            state["content"].append(delta["content"])
        if isinstance(delta.get("refusal"), str):
            state["refusal"].append(delta["refusal"])
        for call in delta.get("tool_calls") or []:
            if not isinstance(call, Mapping):
                continue
            slot = state["tool_calls"].setdefault(
                call.get("index", 0), {"type": "function", "name": None, "arguments": []}
            )
            function = call.get("function")
            if isinstance(function, Mapping):
                if isinstance(function.get("name"), str):
                    slot["name"] = function["name"]
                if isinstance(function.get("arguments"), str):
                    slot["arguments"].append(function["arguments"])
    if choice.get("finish_reason") is not None:
        state["finish_reason"] = choice["finish_reason"]


def _finish(state: Mapping[str, Any]) -> dict[str, Any]:
    message: dict[str, Any] = {
        "role": "assistant",
        "content": "".join(state["content"]) if state["content"] else None,
    }
    if state["refusal"]:
        message["refusal"] = "".join(state["refusal"])
    if state["tool_calls"]:
        message["tool_calls"] = [
            {
                "type": slot["type"],
                "function": {"name": slot["name"], "arguments": "".join(slot["arguments"])},
            }
            for _, slot in sorted(state["tool_calls"].items(), key=lambda item: str(item[0]))
        ]
    return {"message": message, "finish_reason": state["finish_reason"]}


def _choices(answer: Answer) -> list[tuple[int, Mapping[str, Any]]]:
    choices = answer.get("choices")
    if not isinstance(choices, list):
        return []
    return [(i, c) for i, c in enumerate(choices) if isinstance(c, Mapping)]


def _messages(answer: Answer) -> list[tuple[int, Mapping[str, Any]]]:
    found = []
    for index, choice in _choices(answer):
        message = choice.get("message")
        if isinstance(message, Mapping):
            found.append((index, message))
    return found


def _defined_tools(request: Request) -> dict[str, Any]:
    """Tool name → its parameters schema (None when it declares none)."""
    defined: dict[str, Any] = {}
    for tool in request.get("tools") or []:
        function = tool.get("function") if isinstance(tool, Mapping) else None
        if isinstance(function, Mapping) and isinstance(function.get("name"), str):
            defined[function["name"]] = function.get("parameters")
    for function in request.get("functions") or []:
        if isinstance(function, Mapping) and isinstance(function.get("name"), str):
            defined[function["name"]] = function.get("parameters")
    return defined


def _text_of(content: Any) -> str:
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        return " ".join(
            part.get("text", "")
            for part in content
            if isinstance(part, Mapping) and isinstance(part.get("text"), str)
        )
    return ""


def _short(text: str) -> str:
    return text if len(text) <= DETAIL_CHARS else text[: DETAIL_CHARS - 1] + "…"


# -- JSON Schema validation --------------------------------------------------------------------


def schema_violation(schema: Mapping[str, Any], value: Any) -> str | None:
    """The first way ``value`` violates ``schema`` (None when it conforms).

    A schema that cannot be used (invalid, or referring to documents we will not fetch) raises
    ``GateError``: the client's schema is at fault, not the answer.
    """
    try:
        key = json.dumps(schema, sort_keys=True)
    except (TypeError, ValueError, RecursionError) as exc:
        raise GateError(f"unusable schema: {exc}") from exc
    validator = _validator(key)
    try:
        error = next(iter(validator.iter_errors(value)), None)
    except RecursionError:
        return "the value is nested too deeply to validate"
    except Exception as exc:  # jsonschema raises several kinds for a broken schema
        raise GateError(f"unusable schema: {type(exc).__name__}: {exc}") from exc
    if error is None:
        return None
    where = "/".join(str(p) for p in error.absolute_path) or "(root)"
    return f"at {where}: {error.message}"


@lru_cache(maxsize=_SCHEMA_CACHE_SIZE)
def _validator(schema_json: str) -> Any:
    """One validator per distinct schema (building one costs far more than using it)."""
    import jsonschema  # the serve extra; imported lazily so the runtime stays light

    schema = json.loads(schema_json)
    cls = jsonschema.validators.validator_for(schema, default=jsonschema.Draft202012Validator)
    try:
        cls.check_schema(schema)
    except jsonschema.SchemaError as exc:
        raise GateError(f"invalid schema: {exc.message}") from exc
    return cls(schema)
