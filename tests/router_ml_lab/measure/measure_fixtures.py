"""Small traffic fixtures for the measure commands: request bodies of every kind, JSONL writers."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

TOOL = {"type": "function", "function": {"name": "lookup", "parameters": {"type": "object"}}}


def user(text: str, **extra: Any) -> dict[str, Any]:
    return {"messages": [{"role": "user", "content": text}], **extra}


KINDS: dict[str, dict[str, Any]] = {
    "tool/agent turn": user("Book me a flight to Paris tomorrow", tools=[TOOL]),
    "code": user("Implement a python function that reverses a linked list"),
    "math": user("Calculate 17 * 23 + 4 and show the result"),
    "summarization": user("Summarize this paragraph: the quarterly results were strong."),
    "classification / multiple choice": user(
        "Which is a mammal?\nA) shark\nB) whale\nC) trout\nD) squid"
    ),
    "long document": user("Read the contract below carefully. " + "The party shall pay. " * 900),
    "open chat": user("hello there, how are you doing today"),
}


def write_jsonl(path: Path, records: list[dict[str, Any]]) -> Path:
    path.write_text("".join(json.dumps(r) + "\n" for r in records), encoding="utf-8")
    return path


def request_records(repeat: int = 3, prefix: str = "r") -> list[dict[str, Any]]:
    """Every fixture kind ``repeat`` times, as ``{"id", "request"}`` records."""
    return [
        {"id": f"{prefix}{k}-{i}", "kind": kind, "request": body}
        for i in range(repeat)
        for k, (kind, body) in enumerate(KINDS.items())
    ]
