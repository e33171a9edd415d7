"""A dependency-free progress bar on stderr, shown only on a terminal.

The runtime must not need tqdm (a training extra); batch routing still deserves a bar when a person
is watching, and must print nothing into logs or pipes when nobody is.
"""

from __future__ import annotations

import sys
import time
from types import TracebackType
from typing import TextIO


class Progress:
    """``with Progress(total, "routing") as bar: bar.update()``; redraws at most 10 times/s."""

    def __init__(
        self, total: int, label: str, enabled: bool = True, stream: TextIO | None = None
    ) -> None:
        self.total = max(total, 0)
        self.label = label
        self.stream = stream if stream is not None else sys.stderr
        self.enabled = enabled and self.stream.isatty()
        self.done = 0
        self._start = time.monotonic()
        self._last_draw = 0.0

    def __enter__(self) -> Progress:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        if self.enabled:
            self._draw()
            self.stream.write("\n")
            self.stream.flush()

    def update(self, n: int = 1) -> None:
        self.done += n
        now = time.monotonic()
        if self.enabled and now - self._last_draw >= 0.1:
            self._last_draw = now
            self._draw()

    def _draw(self) -> None:
        elapsed = time.monotonic() - self._start
        rate = self.done / elapsed if elapsed > 0 else 0.0
        fraction = self.done / self.total if self.total else 1.0
        filled = int(30 * min(fraction, 1.0))
        bar = "█" * filled + "·" * (30 - filled)
        self.stream.write(
            f"\r{self.label} {bar} {self.done}/{self.total} ({fraction:5.1%}) {rate:,.0f}/s"
        )
        self.stream.flush()
