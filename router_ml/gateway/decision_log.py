"""Append-only JSONL decision log with size-based rotation: one line per request, final outcome.

The log is the raw material for retraining on a team's own traffic (see ``export.py``), so every
request gets exactly one line, written when its outcome is known (after the last streamed byte,
an abort or an error). Prompt text is personal data: it is written only when the operator sets
``include_prompts``; features, decision, attempts and token usage are always written.

Fields written by spend and shadow mode (``spend.py``, ``shadow.py``; ``router-ml analyze`` and
``router-ml export-log`` read them):

- ``cost``: ``{input_tokens, output_tokens, usd, premium_usd, priced_as}`` from the upstream's
  ``usage`` at the ``pricing`` catalog's prices (``usd`` null when nobody prices the model;
  ``cost`` null when the upstream reported no usage). ``premium_usd`` is the same tokens on the
  premium tier: the counterfactual behind the saving.
- ``shadow`` (``shadow.mode: observe``): ``{mode, tier, model, source, cost_usd}``, what the
  router chose and what the served tokens would have cost there; ``decision`` is the router's
  decision, *not applied*: ``tier``/``model`` of the line are what served the client. A request
  the router could not route carries ``shadow: {mode, error}``.
- ``shadow_replay``: ``{tier, model}`` on a served request sampled for a replay one tier down.
- Replay lines: ``endpoint: "shadow.replay"``, ``replay_of`` = the served request's ``id``, with
  the usual ``tier``, ``model``, ``attempts`` (gate verdicts included), ``usage``, ``cost``,
  ``status`` and ``outcome``. The client never saw this answer.
- ``answer``: ``choices[0].message`` of the served answer (non-streamed) and of its replay, only
  when ``include_prompts`` is on and the request was replayed: the pair a judge compares.

Lines are flushed one by one so a crash loses at most the line being written; rotation renames
``decisions.jsonl`` → ``decisions.jsonl.1`` → ... → ``.{backups}`` like ``logging``'s
RotatingFileHandler, and never splits a line.
"""

from __future__ import annotations

import json
import os
import threading
from pathlib import Path
from typing import Any, TextIO

REPLAY_ENDPOINT = "shadow.replay"
"""The ``endpoint`` of a shadow replay's line (``replay_of`` names the request it replayed)."""


class DecisionLog:
    """Thread-safe JSONL writer; ``path=None`` disables writing (lines are still counted).

    Parameters
    ----------
    path : Path or None
        The active log file; its directory is created if missing.
    max_bytes : int
        Rotate before a line would make the file exceed this size.
    backups : int
        Rotated files kept (``0``: truncate instead of keeping history).
    """

    def __init__(
        self,
        path: str | os.PathLike[str] | None,
        max_bytes: int = 100 * 1024 * 1024,
        backups: int = 5,
    ) -> None:
        if max_bytes < 1:
            raise ValueError(f"max_bytes must be positive, got {max_bytes}")
        if backups < 0:
            raise ValueError(f"backups must be >= 0, got {backups}")
        self.path = None if path is None else Path(path)
        self.max_bytes = max_bytes
        self.backups = backups
        self.lines_written = 0
        self._lock = threading.Lock()
        self._handle: TextIO | None = None
        self._size = 0
        if self.path is not None:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            self._open()

    def write(self, record: dict[str, Any]) -> None:
        """Append one record as one JSON line and flush it."""
        line = json.dumps(record, ensure_ascii=False, separators=(",", ":"), default=str) + "\n"
        with self._lock:
            self.lines_written += 1
            if self._handle is None:
                return
            size = len(line.encode("utf-8"))
            if self._size and self._size + size > self.max_bytes:
                self._rotate()
            self._handle.write(line)
            self._handle.flush()
            self._size += size

    def close(self) -> None:
        with self._lock:
            if self._handle is not None:
                self._handle.close()
                self._handle = None

    def _open(self) -> None:
        assert self.path is not None
        self._handle = open(self.path, "a", encoding="utf-8")  # noqa: SIM115 - lives with the log
        self._size = self._handle.tell()

    def _rotate(self) -> None:
        assert self.path is not None and self._handle is not None
        self._handle.close()
        if self.backups == 0:
            self.path.unlink(missing_ok=True)
        else:
            for index in range(self.backups - 1, 0, -1):
                older = self.path.with_name(f"{self.path.name}.{index}")
                if older.exists():
                    older.replace(self.path.with_name(f"{self.path.name}.{index + 1}"))
            self.path.replace(self.path.with_name(f"{self.path.name}.1"))
        self._open()


def log_files(path: str | os.PathLike[str]) -> list[Path]:
    """The active log and its rotated backups, oldest first (the order lines were written)."""
    path = Path(path)
    rotated = []
    for candidate in path.parent.glob(f"{path.name}.*"):
        suffix = candidate.name[len(path.name) + 1 :]
        if suffix.isdigit():
            rotated.append((int(suffix), candidate))
    files = [p for _, p in sorted(rotated, reverse=True)]
    if path.exists():
        files.append(path)
    return files
