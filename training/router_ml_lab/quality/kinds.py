"""Kinds of traffic, read from the request's shape: results are reported per kind, not pooled.

A router that is good on benchmark questions can be useless on chat or agent turns; one pooled
figure hides that. The kind comes from what a gateway sees (tools, length, turns) plus the
source for the one labeled chat set whose requests look like single questions:

- ``agent/tool``: the request defines tools or carries tool calls or results;
- ``long-document``: at least ``LONG_DOCUMENT_TOKENS`` o200k tokens in total;
- ``open-ended chat``: a known real-chat source, or a conversation with earlier assistant turns;
- ``benchmark-shaped``: the rest (single-turn questions as benchmarks ask them).
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from router_ml.features import FEATURE_NAMES

LONG_DOCUMENT_TOKENS = 2000
CHAT_SOURCES = frozenset({"arena_bench"})
KINDS = ("benchmark-shaped", "open-ended chat", "agent/tool", "long-document")
_COLUMN = {name: i for i, name in enumerate(FEATURE_NAMES)}


def traffic_kinds(sources: Sequence[str], features: np.ndarray) -> np.ndarray:
    """The kind of each request (one of :data:`KINDS`) from its source and feature row."""
    features = np.asarray(features)
    column = {name: features[:, _COLUMN[name]] for name in _COLUMN}
    tools = (column["n_tools"] > 0) | (column["n_tool_calls"] > 0) | (column["n_tool_results"] > 0)
    long = column["tokens_total"] >= LONG_DOCUMENT_TOKENS
    chat = np.isin(np.asarray(sources), list(CHAT_SOURCES)) | (column["n_assistant"] > 0)
    return np.select([tools, long, chat], [KINDS[2], KINDS[3], KINDS[1]], default=KINDS[0])
