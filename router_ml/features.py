"""The one feature extractor: request → ordered, named, float32-safe vector.

Training (``training/``) and inference (``Router``) both use :class:`FeatureExtractor`, so the
model sees the same numbers in production that it was fitted on. The ordered names, the schema
version and the extraction caps hash into :data:`FEATURE_SCHEMA`; the model file stores that
schema and the runtime refuses a model built for another one.

Cost is bounded whatever the request: texts are tokenised exactly up to
``tokenizer.EXACT_CHAR_CAP`` characters each and at most ``TOKEN_BUDGET_CHARS`` per request, the
rest extrapolated from the measured tokens per character; text signals read the first
``SIGNAL_CHAR_CAP`` characters of the last user turn; tool schemas are walked up to
``SCHEMA_NODE_CAP`` nodes. Every value is clipped to ``FLOAT32_EXACT_MAX`` so float32 holds it
exactly.
"""

from __future__ import annotations

import hashlib
import json
import re
import threading
from collections.abc import Iterable
from dataclasses import dataclass
from itertools import islice
from typing import Any

import numpy as np

from router_ml.errors import InvalidRequest
from router_ml.recovery import recovery_signals, tool_result_is_error
from router_ml.request import MAX_SCHEMA_LIST, ChatRequest, Message, parse_request
from router_ml.task_kinds import TASK_KINDS
from router_ml.text_embedding import (
    EMBED_CHAR_CAP,
    KIND_EDGE_TOKENS,
    KIND_HEAD_TOKENS,
    KIND_MIDDLE_WEIGHT,
    KIND_TAIL_CHARS,
    KIND_TAIL_TOKENS,
    N_DIMS,
    VALUE_GRID,
    TextEmbedding,
)
from router_ml.tokenizer import ENCODING_NAME, EXACT_CHAR_CAP, TokenCounter

SCHEMA_VERSION = "6"
TOKEN_BUDGET_CHARS = 65_536
"""Characters tokenised exactly per request; later messages are extrapolated."""
SIGNAL_CHAR_CAP = 8_192
"""Characters of the last user turn scanned for text signals."""
SCHEMA_NODE_CAP = 20_000
"""JSON-schema nodes walked per request when measuring tool definitions."""
THREAD_TURNS = 3
"""Earlier user turns (the most recent) that the ``thread_*`` features read with the last one."""
FLOAT32_EXACT_MAX = float(2**24)

ROLE_CODES = {"system": 0, "developer": 0, "user": 1, "assistant": 2, "tool": 3, "function": 3}
TOOL_CHOICE_CODES = {None: 0, "none": 1, "auto": 2, "required": 3, "named": 4}
RESPONSE_FORMAT_CODES = {None: 0, "text": 0, "json_object": 1, "json_schema": 2}

TASK_CUES: dict[str, tuple[frozenset[str], tuple[str, ...]]] = {
    # cue: (words, looked up in the text's word set; phrases, looked for as substrings — kept few,
    # since each costs a scan of the text)
    "summarize": (
        frozenset(
            {
                "summarize",
                "summarise",
                "summary",
                "summarization",
                "tldr",
                "tl;dr",
                "condense",
                "gist",
            }
        ),
        ("key points",),
    ),
    "classify": (
        frozenset(
            {
                "classify",
                "classification",
                "categorize",
                "categorise",
                "category",
                "sentiment",
                "label",
            }
        ),
        (),
    ),
    "extract": (frozenset({"extract", "extraction", "parse"}), ("list all", "find all")),
    "translate": (frozenset({"translate", "translation", "translated"}), ()),
    "prove": (frozenset({"prove", "proof", "theorem", "lemma", "derive"}), ("show that",)),
    "implement": (
        frozenset(
            {
                "implement",
                "implementation",
                "debug",
                "refactor",
                "algorithm",
                "function",
                "python",
                "javascript",
                "sql",
                "code",
                "program",
                "script",
                "compile",
            }
        ),
        (),
    ),
    "explain": (frozenset({"explain", "explanation", "describe", "why"}), ()),
    "reason": (
        frozenset({"reason", "reasoning", "justify", "logic", "logical", "step-by-step"}),
        ("step by step",),
    ),
    "rewrite": (frozenset({"rewrite", "rephrase", "paraphrase", "proofread", "reword"}), ()),
    "analyze": (
        frozenset(
            {
                "analyze",
                "analyse",
                "analysis",
                "compare",
                "contrast",
                "evaluate",
                "assess",
                "critique",
                "tradeoffs",
                "trade-offs",
            }
        ),
        (),
    ),
    "create": (
        frozenset({"story", "poem", "essay", "song", "blog", "brainstorm", "creative", "slogan"}),
        (),
    ),
    "calculate": (
        frozenset({"calculate", "calculation", "compute", "solve", "total", "sum", "product"}),
        ("how many", "how much"),
    ),
    "choose": (
        frozenset({"choose", "select", "option", "options"}),
        ("which of the following", "answer with the letter"),
    ),
    "plan": (frozenset({"plan", "design", "architecture", "strategy", "roadmap", "schedule"}), ()),
}

_CUE_OF_WORD = {word: name for name, (words, _) in TASK_CUES.items() for word in words}
_CUE_PHRASES = tuple(
    (phrase, name) for name, (_, phrases) in TASK_CUES.items() for phrase in phrases
)
_PUNCTUATION_TO_SPACE = str.maketrans({c: " " for c in ".,;:!?()[]{}\"'`*/"})
# One scan of "\n" + the lower-cased text finds both multiple-choice options ("B) ...") and
# few-shot markers ("Q:", "Answer:") at line starts; the literal "\n" prefix lets the regex engine
# jump from newline to newline instead of trying every position (8x faster than "(?m)^").
_LINE_MARKER_RE = re.compile(
    r"\n[ \t]*(?:(\(?[a-j][.)]\s)|(?:answer|a|q|question|input|output|example)[ \t]*\d*[ \t]*:)"
)
_LATEX_MARKERS = ("\\frac", "\\sqrt", "\\begin", "\\sum", "\\int", "\\math", "$")
_NON_LATIN_RE = re.compile(r"[\u0370-\u03ff\u0400-\u04ff\u0590-\u06ff\u0900-\u0dff\u0e00-\u0e7f]")
_CJK_RE = re.compile(r"[\u3040-\u30ff\u3400-\u4dbf\u4e00-\u9fff\uac00-\ud7af\uf900-\ufaff]")
_CODE_CHARS = "{}[]();=<>_#|\\`"
_MATH_CHARS = "+-*/^=<>%"
_DELETE_CODE = str.maketrans("", "", _CODE_CHARS)
_DELETE_MATH = str.maketrans("", "", _MATH_CHARS)
_DELETE_DIGITS = str.maketrans("", "", "0123456789")

CUE_FEATURES = tuple(f"cue_{name}" for name in TASK_CUES)
TEXT_EMBEDDING_FEATURES = tuple(f"text_emb_{k}" for k in range(N_DIMS))
"""What the last user turn is about: its mean static token embedding (router_ml.text_embedding)."""
KIND_FEATURES = tuple(f"kind_{kind}" for kind in TASK_KINDS)
"""What task the last user turn asks for: the task-kind reader's probabilities
(router_ml.task_kinds; 0 without a reader)."""
MODEL_FEATURES: tuple[str, ...] = (
    # conversation structure and position
    "n_messages",
    "n_system",
    "n_user",
    "n_assistant",
    "n_tool_results",
    "is_first_user_turn",
    "user_turn_index",
    "messages_since_last_user",
    "last_role",
    # token counts (o200k)
    "tokens_last_user",
    "tokens_system",
    "tokens_total",
    "tokens_assistant",
    "chars_last_user",
    "tokens_per_char_last_user",
    # tool definitions and tool-call history
    "n_tools",
    "tools_schema_chars",
    "tools_max_depth",
    "tools_n_params",
    "tools_n_required",
    "tools_n_enum",
    "tool_choice",
    "n_tool_calls",
    "last_is_tool_result",
    "n_tool_errors",
    # failure recovery (router_ml.recovery): the turn follows a failed tool call, or the user
    # rejects the previous answer
    "after_error",
    "user_rejects_answer",
    # output hints and content parts
    "max_tokens",
    "has_max_tokens",
    "json_mode",
    "stream",
    "n_images",
    "n_other_parts",
    # text signals of the last user turn
    "n_lines",
    "n_words",
    "avg_word_len",
    "n_code_fences",
    "code_char_ratio",
    "math_char_ratio",
    "digit_ratio",
    "has_latex",
    "n_question_marks",
    "n_choice_options",
    "n_few_shot_markers",
    "non_ascii_ratio",
    "cjk_ratio",
    "non_latin_ratio",
    *CUE_FEATURES,
    "system_tokens_share",
    *TEXT_EMBEDDING_FEATURES,
    *KIND_FEATURES,
)
"""The columns the trees are fitted on (the vector's first ones)."""
LAST_TURN_TEXT_FEATURES: tuple[str, ...] = (
    "tokens_last_user",
    "chars_last_user",
    "tokens_per_char_last_user",
    *MODEL_FEATURES[MODEL_FEATURES.index("n_lines") : MODEL_FEATURES.index("system_tokens_share")],
    *TEXT_EMBEDDING_FEATURES,
    *KIND_FEATURES,
)
"""Everything the model reads of the last user turn's text."""
THREAD_FEATURES = tuple(f"thread_{name}" for name in LAST_TURN_TEXT_FEATURES)
"""The same reading of the thread's user text: the last user turn and the ``THREAD_TURNS`` user
turns before it, joined as one text (all 0 without an earlier user turn).

A follow-up ("Now find the circumradius.", "Which option is right?") carries little of the task;
the material before it carries it. Read alone, such a turn looks like an easy lookup (measured:
the test split delivered as material + acknowledgement + ask, ``router-ml eval --as-follow-up``).
The router also reads the request with these values in the last turn's columns
(``thread_reading``) and keeps the higher risk of the two readings: an unrelated earlier turn can
only raise the decision, and the material a follow-up refers to counts. The trees are trained
blind to these columns (:data:`MODEL_BLIND_FEATURES`); the task table reads ``thread_kind_*``
(``TaskTable.verdict``)."""
THREAD_KIND_FEATURES = tuple(f"thread_{name}" for name in KIND_FEATURES)
FEATURE_NAMES: tuple[str, ...] = (*MODEL_FEATURES, *THREAD_FEATURES)
"""The vector's columns: what the trees are fitted on, then the thread reading."""
N_FEATURES = len(FEATURE_NAMES)
_INDEX = {name: i for i, name in enumerate(FEATURE_NAMES)}
FEATURE_INDEX: dict[str, int] = dict(_INDEX)
"""Column of each feature in the vector."""
MODEL_BLIND_FEATURES = THREAD_FEATURES
"""Features the risk model is trained blind to (``router_ml_lab.train.fit`` zeroes them, and
LightGBM drops a constant column, so no tree reads them, and the trees are those of a fit
without them). The labeled traffic has no real conversation, only augmented copies whose
earlier turns come from other prompts: trees fitted on these columns could only learn that
noise. The router feeds them to the trees through the last turn's columns instead."""
TEXT_MEANING_FEATURES = (
    *CUE_FEATURES,
    *TEXT_EMBEDDING_FEATURES,
    *KIND_FEATURES,
    *THREAD_FEATURES,
)
"""What the last user turn says, as opposed to the request's shape. Coverage does not check
them: a word the benchmark traffic never used ("rewrite") says what the task is, which the task
table reads (``router_ml.task_kinds``); it does not put the request outside what the risk
model has seen, as a tool error, a second turn or CJK text do. The thread reading is not checked
either: the request as it is is (its conversation size and shape included)."""
_TEXT_BLOCK = tuple(_INDEX[name] for name in LAST_TURN_TEXT_FEATURES if name != "tokens_last_user")
"""Features that depend on the last user turn's text alone (what a memoised reading holds, with
the token count beside it)."""
_KIND_START = _INDEX[KIND_FEATURES[0]]
_THREAD_TARGETS = np.array([_INDEX[name] for name in LAST_TURN_TEXT_FEATURES])
_THREAD_SOURCES = np.array([_INDEX[name] for name in THREAD_FEATURES])
_THREAD_TOKENS = _INDEX["thread_tokens_last_user"]
_TOKENS_LAST_USER = _INDEX["tokens_last_user"]
_THREAD_TEXT_BLOCK = tuple(_INDEX[f"thread_{FEATURE_NAMES[i]}"] for i in _TEXT_BLOCK)
# Every feature is a count, share or code (>= 0) except the embedding's centred PCA components.
_LOWER_BOUNDS = np.array(
    [-FLOAT32_EXACT_MAX if n in TEXT_EMBEDDING_FEATURES else 0.0 for n in FEATURE_NAMES]
)
_CUE_INDEX = {word: _INDEX[f"cue_{cue}"] for word, cue in _CUE_OF_WORD.items()}
_CUE_PHRASE_INDEX = tuple((phrase, _INDEX[f"cue_{cue}"]) for phrase, cue in _CUE_PHRASES)


def thread_reading(features: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The rows of ``features`` ``(n, N_FEATURES)`` that continue a thread, and those rows with
    the thread reading in the last user turn's columns: the request as the trees would see it if
    the thread's user text had come as one turn (``THREAD_FEATURES``)."""
    rows = np.flatnonzero(features[:, _THREAD_TOKENS] > 0)
    read = features[rows]  # fancy indexing: a copy
    read[:, _THREAD_TARGETS] = read[:, _THREAD_SOURCES]
    return rows, read


@dataclass(frozen=True)
class FeatureSchema:
    """What a model must have been trained on for this runtime to feed it correctly."""

    version: str
    names: tuple[str, ...]
    hash: str

    def to_dict(self) -> dict[str, Any]:
        return {"version": self.version, "names": list(self.names), "hash": self.hash}


def _schema_hash() -> str:
    definition = {
        "version": SCHEMA_VERSION,
        "names": FEATURE_NAMES,
        "encoding": ENCODING_NAME,
        "caps": [
            EXACT_CHAR_CAP,
            TOKEN_BUDGET_CHARS,
            SIGNAL_CHAR_CAP,
            SCHEMA_NODE_CAP,
            EMBED_CHAR_CAP,
            THREAD_TURNS,
            KIND_HEAD_TOKENS,
            KIND_TAIL_TOKENS,
            KIND_TAIL_CHARS,
            KIND_EDGE_TOKENS,
            KIND_MIDDLE_WEIGHT,
            VALUE_GRID,
        ],
        "kinds": list(TASK_KINDS),
        "cues": {
            name: [sorted(words), list(phrases)] for name, (words, phrases) in TASK_CUES.items()
        },
    }
    return hashlib.sha256(json.dumps(definition, sort_keys=True).encode()).hexdigest()[:16]


FEATURE_SCHEMA = FeatureSchema(SCHEMA_VERSION, FEATURE_NAMES, _schema_hash())


class FeatureExtractor:
    """Computes the feature vector of a request; one instance is safe to share across threads.

    ``embedding`` is the model's token-embedding table (``TierModel.text_embedding``); without it
    the ``text_emb_*`` features are 0, which only a model trained without a table expects.
    """

    def __init__(
        self,
        token_counter: TokenCounter | None = None,
        embedding: TextEmbedding | None = None,
        cache_size: int = 1024,
    ) -> None:
        if cache_size < 0:
            raise ValueError("cache_size must not be negative")
        self._counter = token_counter or TokenCounter()
        self._embedding = embedding
        self._cache_size = cache_size
        self._readings: dict[tuple[int, int], _Reading] = {}
        self._lock = threading.Lock()

    def extract(self, request: ChatRequest | dict[str, Any] | str | bytes) -> np.ndarray:
        """Feature vector (float32, shape ``(N_FEATURES,)``) of one request."""
        return self.extract_parsed(parse_request(request))

    def extract_many(self, requests: Iterable[ChatRequest | dict[str, Any]]) -> np.ndarray:
        """Feature matrix (float32, shape ``(n, N_FEATURES)``); raises on the first bad request."""
        rows = [self.extract_parsed(parse_request(r)) for r in requests]
        return np.vstack(rows) if rows else np.zeros((0, N_FEATURES), dtype=np.float32)

    def extract_parsed(self, request: ChatRequest) -> np.ndarray:
        values = [0.0] * N_FEATURES
        self._conversation(request.messages, values)
        _tools(request, values)
        values[_INDEX["max_tokens"]] = request.max_tokens or 0
        values[_INDEX["has_max_tokens"]] = request.max_tokens is not None
        values[_INDEX["json_mode"]] = RESPONSE_FORMAT_CODES[request.response_format]
        values[_INDEX["stream"]] = request.stream
        recovery = recovery_signals(request)
        values[_INDEX["after_error"]] = recovery.after_error
        values[_INDEX["user_rejects_answer"]] = recovery.user_rejects_answer
        vector = np.asarray(values, dtype=np.float64)
        np.clip(vector, _LOWER_BOUNDS, FLOAT32_EXACT_MAX, out=vector)
        return vector.astype(np.float32)

    def _conversation(self, messages: tuple[Message, ...], values: list[float]) -> None:
        count = self._counter.count
        budget = TOKEN_BUDGET_CHARS
        exact_tokens = exact_chars = 0
        tokens_system = tokens_assistant = tokens_total = 0
        tokens_last_user = 0
        n_role = [0, 0, 0, 0]
        n_tool_calls = n_tool_errors = n_images = n_other = 0
        user_turns = [i for i, message in enumerate(messages) if message.role == "user"]
        last_user = user_turns[-1] if user_turns else -1
        thread = user_turns[-1 - THREAD_TURNS :] if len(user_turns) > 1 else []
        for i, message in enumerate(messages):
            code = ROLE_CODES[message.role]
            n_role[code] += 1
            n_tool_calls += message.n_tool_calls
            n_images += message.n_images
            n_other += message.n_other_parts
            text = message.text
            if message.tool_call_text:
                text = f"{text}\n{message.tool_call_text}" if text else message.tool_call_text
            if i == last_user:
                reading = self._read_user_turn(text, message.text, not message.tool_call_text)
                tokens = reading.tokens
                self._write_reading(reading, False, values)
                exact_tokens += tokens
                exact_chars += len(text)
                budget -= min(len(text), EXACT_CHAR_CAP)
            elif budget > 0:
                tokens = count(text)
                exact_tokens += tokens
                exact_chars += len(text)
                budget -= min(len(text), EXACT_CHAR_CAP)
            else:
                ratio = exact_tokens / exact_chars if exact_chars else 0.25
                tokens = round(len(text) * ratio)
            tokens_total += tokens
            if code == 0:
                tokens_system += tokens
            elif i == last_user:
                tokens_last_user = tokens
            elif code == 2:
                tokens_assistant += tokens
            elif code == 3 and tool_result_is_error(message.text):
                n_tool_errors += 1
        if thread:
            joined = "\n\n".join(messages[i].text for i in thread)
            self._write_reading(self._read_user_turn(joined, joined, True), True, values)

        v, ix = values, _INDEX
        v[ix["n_messages"]] = len(messages)
        v[ix["n_system"]], v[ix["n_user"]], v[ix["n_assistant"]], v[ix["n_tool_results"]] = n_role
        v[ix["is_first_user_turn"]] = n_role[1] == 1 and n_role[2] == 0 and last_user >= 0
        v[ix["user_turn_index"]] = n_role[1]
        v[ix["messages_since_last_user"]] = (
            len(messages) - 1 - last_user if last_user >= 0 else len(messages)
        )
        v[ix["last_role"]] = ROLE_CODES[messages[-1].role]
        v[ix["tokens_last_user"]] = tokens_last_user
        v[ix["tokens_system"]] = tokens_system
        v[ix["tokens_total"]] = tokens_total
        v[ix["tokens_assistant"]] = tokens_assistant
        v[ix["system_tokens_share"]] = tokens_system / tokens_total if tokens_total else 0.0
        v[ix["n_tool_calls"]] = n_tool_calls
        v[ix["last_is_tool_result"]] = ROLE_CODES[messages[-1].role] == 3
        v[ix["n_tool_errors"]] = n_tool_errors
        v[ix["n_images"]] = n_images
        v[ix["n_other_parts"]] = n_other

    def _write_reading(self, reading: _Reading, thread: bool, values: list[float]) -> None:
        """Write ``reading`` into the last turn's text columns, or the thread reading's."""
        values[_THREAD_TOKENS if thread else _TOKENS_LAST_USER] = reading.tokens
        block = _THREAD_TEXT_BLOCK if thread else _TEXT_BLOCK
        for index, value in zip(block, reading.block, strict=True):
            values[index] = value

    def _read_user_turn(self, text: str, signal_text: str, memoise: bool) -> _Reading:
        """Read a user text (the last turn with its tool-call text, or the thread's turns
        joined): token count and text-block features (signals from ``signal_text``).

        The reading depends on the text alone, and agents resend the same user turns with every
        tool round and retries resend them whole; so readings are memoised (keyed by length and
        hash, ``cache_size`` entries, oldest evicted first). Unlike bare token counts
        (``CACHE_MIN_CHARS``), a short turn's reading is worth keeping too: the embedding and kind
        lookups cost more than the hash.
        """
        key = None
        if text and self._cache_size and memoise:
            key = (len(text), hash(text))
            cached = self._readings.get(key)
            if cached is not None:
                return cached
        scratch = [0.0] * N_FEATURES
        tokens = self._read_text(text, scratch)
        if signal_text:
            scratch[_INDEX["chars_last_user"]] = len(signal_text)
            scratch[_INDEX["tokens_per_char_last_user"]] = tokens / len(signal_text)
            _text_signals(signal_text[:SIGNAL_CHAR_CAP], scratch)
        reading = _Reading(tokens, tuple(scratch[index] for index in _TEXT_BLOCK))
        if key is not None:
            with self._lock:
                if len(self._readings) >= self._cache_size:
                    del self._readings[next(iter(self._readings))]
                self._readings[key] = reading
        return reading

    def _read_text(self, text: str, values: list[float]) -> int:
        """Token count of the text; writes its embedding and task kinds (from the same token ids)
        into ``values``."""
        embedding = self._embedding
        if embedding is None:
            return self._counter.count(text)
        if len(text) <= EMBED_CHAR_CAP:
            ids = self._counter.encode(text)
            tokens = len(ids)  # what count() gives for a text this short
            tail = None
        else:
            ids = self._counter.encode(text[:EMBED_CHAR_CAP])
            tokens = self._counter.count(text)
            tail = self._counter.encode(text[-KIND_TAIL_CHARS:]) if embedding.reads_kinds else None
        vector, kinds = embedding.read(ids, tail)
        start = _INDEX["text_emb_0"]
        values[start : start + N_DIMS] = vector
        if kinds is not None:
            values[_KIND_START : _KIND_START + len(TASK_KINDS)] = kinds
        return tokens


@dataclass(frozen=True)
class _Reading:
    """One user text's reading: the last turn's, or the thread's (``_read_user_turn``)."""

    tokens: int
    block: tuple[float, ...]
    """The ``_TEXT_BLOCK`` features' values, in that order."""


def _text_signals(text: str, v: list[float]) -> None:
    """Cheap lexical signals of what kind of task the text asks for."""
    ix = _INDEX
    n = len(text)
    if not n:
        return
    lowered = text.lower()
    words = lowered.translate(_PUNCTUATION_TO_SPACE).split()
    n_words = len(words)
    v[ix["n_lines"]] = text.count("\n") + 1
    v[ix["n_words"]] = n_words
    v[ix["avg_word_len"]] = (n - text.count(" ") - text.count("\n")) / n_words if n_words else 0.0
    v[ix["n_code_fences"]] = text.count("```")
    v[ix["code_char_ratio"]] = (n - len(text.translate(_DELETE_CODE))) / n
    v[ix["math_char_ratio"]] = (n - len(text.translate(_DELETE_MATH))) / n
    v[ix["digit_ratio"]] = (n - len(text.translate(_DELETE_DIGITS))) / n
    v[ix["has_latex"]] = ("\\" in text or "$" in text) and any(m in text for m in _LATEX_MARKERS)
    v[ix["n_question_marks"]] = text.count("?")
    markers = _LINE_MARKER_RE.findall("\n" + lowered)
    n_choices = sum(1 for choice in markers if choice)
    v[ix["n_choice_options"]] = n_choices
    v[ix["n_few_shot_markers"]] = len(markers) - n_choices
    if not text.isascii():
        v[ix["non_ascii_ratio"]] = (n - len(text.encode("ascii", "ignore"))) / n
        v[ix["cjk_ratio"]] = len(_CJK_RE.findall(text)) / n
        v[ix["non_latin_ratio"]] = len(_NON_LATIN_RE.findall(text)) / n
    for word in _CUE_OF_WORD.keys() & words:
        v[_CUE_INDEX[word]] = 1.0
    for phrase, index in _CUE_PHRASE_INDEX:
        if phrase in lowered:
            v[index] = 1.0


def _tools(request: ChatRequest, v: list[float]) -> None:
    """Size and shape of the tool definitions, walked level by level with a node cap.

    Leaves (strings, numbers) are measured where their container is read instead of being queued:
    most nodes of a JSON schema are leaves, and skipping the queue makes the walk several times
    cheaper. Containers beyond ``SCHEMA_NODE_CAP`` nodes are not read. A list longer than
    ``request.MAX_SCHEMA_LIST`` among those read is an ``InvalidRequest``.
    """
    ix = _INDEX
    v[ix["tool_choice"]] = TOOL_CHOICE_CODES[request.tool_choice]
    if not request.tools:
        return
    chars = max_depth = n_params = n_required = n_enum = 0
    budget = SCHEMA_NODE_CAP
    level: list[Any] = list(request.tools)
    depth = 0
    while level and budget > 0:
        deeper: list[Any] = []
        for node in level:
            budget -= 1
            if budget < 0:
                break
            if type(node) is dict:
                max_depth = depth
                properties = node.get("properties")
                if type(properties) is dict:
                    n_params += len(properties)
                required = node.get("required")
                if type(required) is list:
                    n_required += len(required)
                if type(node.get("enum")) is list:
                    n_enum += 1
                try:
                    chars += sum(map(len, node))
                except TypeError:  # a non-string key, possible in a dict built in Python
                    chars += sum(len(key) if type(key) is str else 1 for key in node)
                children: Any = node.values()
            else:
                if len(node) > MAX_SCHEMA_LIST:
                    raise InvalidRequest(
                        "tools",
                        f"a list of {len(node)} values exceeds the limit of {MAX_SCHEMA_LIST}",
                    )
                children = node
            # The leaves count against the budget too: a 2-million-element enum stops at the cap.
            if len(children) > budget:
                children = islice(children, max(budget, 0))
            for child in children:
                kind = type(child)
                if kind is str:
                    chars += len(child)
                    budget -= 1
                elif kind is dict or kind is list:
                    deeper.append(child)
                else:
                    chars += 1
                    budget -= 1
        level = deeper
        depth += 1
    v[ix["n_tools"]] = len(request.tools)
    v[ix["tools_schema_chars"]] = chars
    v[ix["tools_max_depth"]] = max_depth
    v[ix["tools_n_params"]] = n_params
    v[ix["tools_n_required"]] = n_required
    v[ix["tools_n_enum"]] = n_enum
