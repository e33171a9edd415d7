"""A readable request type derived from the model's own feature vector.

Traffic analysis has to work on decision logs that hold features but no prompt text (prompts are
logged only on opt-in), so the type is read from :data:`router_ml.features.FEATURE_NAMES` alone:
tool structure, size, multiple-choice markers, code and math characters and the task cues. The
first matching rule names the type, in the order of :data:`REQUEST_TYPES`: structure before
topic (an agent turn that mentions code is still an agent turn).
"""

from __future__ import annotations

import numpy as np

from router_ml.features import FEATURE_NAMES

LONG_DOCUMENT_TOKENS = 3000
"""Conversation size from which a request counts as a long document (the price is in the input)."""

REQUEST_TYPES: tuple[str, ...] = (
    "tool/agent turn",
    "long document",
    "classification / multiple choice",
    "code",
    "math",
    "extraction",
    "summarization",
    "translation",
    "rewriting",
    "creative writing",
    "analysis / planning",
    "open chat",
)
"""Request types in rule order; ``open chat`` takes whatever no rule claimed."""

_F = {name: i for i, name in enumerate(FEATURE_NAMES)}


def request_types(features: np.ndarray) -> np.ndarray:
    """Index into :data:`REQUEST_TYPES` of each row of ``features`` ``(n, N_FEATURES)``."""
    x = np.atleast_2d(np.asarray(features, dtype=np.float64))
    if x.shape[1] != len(FEATURE_NAMES):
        raise ValueError(f"expected {len(FEATURE_NAMES)} feature columns, got {x.shape[1]}")

    def f(name: str) -> np.ndarray:
        return x[:, _F[name]]

    def cue(*names: str) -> np.ndarray:
        return np.logical_or.reduce([f(f"cue_{n}") > 0 for n in names])

    rules = (
        (f("n_tools") > 0) | (f("n_tool_results") > 0) | (f("n_tool_calls") > 0),
        f("tokens_total") >= LONG_DOCUMENT_TOKENS,
        (f("n_choice_options") >= 2) | cue("classify"),
        cue("implement") | (f("n_code_fences") > 0) | (f("code_char_ratio") > 0.08),
        (f("has_latex") > 0)
        | cue("calculate", "prove")
        | ((f("math_char_ratio") > 0.03) & (f("digit_ratio") > 0.05)),
        cue("extract") | (f("json_mode") > 0),
        cue("summarize"),
        cue("translate"),
        cue("rewrite"),
        cue("create"),
        cue("analyze", "plan", "reason"),
    )
    types = np.full(len(x), len(REQUEST_TYPES) - 1, dtype=np.int64)
    for index in range(len(rules) - 1, -1, -1):  # the first rule wins: apply the last first
        types[rules[index]] = index
    return types
