"""The request-hash cache behind the policy's ``retry`` key: "the same request, again, soon".

A client that sends the very same conversation again within a short window is retrying: the
answer it got (or did not get) was not good enough. The gateway asks this cache before routing
and passes the verdict to the router (``repeated=True``), where ``match: {retry: true}`` sees it.

Only a digest is kept, never the text: a keyed BLAKE2b of the client's identity (bearer token,
``user`` field) and the request's messages and tools, so two clients asking "hi" are not each
other's retries; the same conversation sent with another ``stream`` or ``metadata`` (a
per-request trace id, say) is still a retry. Memory is bounded by ``capacity`` (least recently
seen entries go first).
"""

from __future__ import annotations

import hashlib
import json
import os
import threading
import time
from collections import OrderedDict
from collections.abc import Callable, Mapping
from typing import Any


def digest(key: bytes, payload: Mapping[str, Any], client: str = "") -> bytes:
    """The keyed digest of a request (see the module doc), computable in any process with ``key``.

    It re-encodes the messages and tools, which for a heavy body costs some milliseconds of
    GIL: the gateway computes it where that body is decoded, in a worker process for the
    heaviest (``workers``), so that cost never lands on its event loop's process.
    """
    identity = f"{client}\0{payload.get('user', '')}".encode("utf-8", "surrogatepass")
    content = json.dumps(
        [payload.get("messages"), payload.get("tools")],
        ensure_ascii=False,
        separators=(",", ":"),
        default=str,
    ).encode("utf-8", "surrogatepass")
    hasher = hashlib.blake2b(key=key, digest_size=16)
    hasher.update(identity)
    hasher.update(b"\0")
    hasher.update(content)
    return hasher.digest()


class RepeatCache:
    """Remembers request digests for ``window_s`` seconds; ``seen`` says whether one repeats.

    Parameters
    ----------
    window_s : float
        How long a request counts as "just seen"; 0 turns the cache off.
    capacity : int
        Most digests kept at once.
    clock : callable
        Monotonic seconds (tests pass a fake clock).
    """

    def __init__(
        self,
        window_s: float,
        capacity: int = 10_000,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        if window_s < 0 or capacity < 1:
            raise ValueError("window_s must be >= 0 and capacity >= 1")
        self.window_s, self.capacity, self._clock = window_s, capacity, clock
        self._seen: OrderedDict[bytes, float] = OrderedDict()
        self._lock = threading.Lock()
        self._key = os.urandom(16)  # per gateway (and its workers): meaningless outside it

    @property
    def key(self) -> bytes:
        """The digest key, for the gateway's worker processes (their digests must match)."""
        return self._key

    def digest(self, payload: Mapping[str, Any], client: str = "") -> bytes:
        """A digest of who asked and what: client identity, ``user``, messages and tools."""
        return digest(self._key, payload, client)

    def seen(self, digest: bytes) -> bool:
        """Whether ``digest`` was seen within the window; records this sighting either way."""
        if self.window_s <= 0:
            return False
        now = self._clock()
        with self._lock:
            last = self._seen.pop(digest, None)
            self._seen[digest] = now
            while len(self._seen) > self.capacity:
                self._seen.popitem(last=False)
        return last is not None and now - last <= self.window_s
