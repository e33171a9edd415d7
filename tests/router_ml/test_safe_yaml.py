"""The safe YAML loader refuses hostile files fast, with bounded memory, and reads real ones."""

from __future__ import annotations

import time
import tracemalloc
from pathlib import Path

import pytest

from router_ml.errors import PolicyError
from router_ml.policy import Policy
from router_ml.safe_yaml import MAX_DEPTH, YamlError, load_yaml, load_yaml_file

REPO = Path(__file__).resolve().parents[2]

# The classic "billion laughs": ten levels of ten aliases each, 10**10 nodes expanded, ~700 bytes.
ALIAS_BOMB = "a: &a [lol, lol, lol, lol, lol, lol, lol, lol, lol, lol]\n" + "".join(
    f"{chr(98 + i)}: &{chr(98 + i)} [{', '.join([f'*{chr(97 + i)}'] * 10)}]\n" for i in range(9)
)


def _bounded(load, *args):
    """Run a load that must fail; return its error, the seconds and the peak bytes it took."""
    tracemalloc.start()
    start = time.perf_counter()
    try:
        with pytest.raises((YamlError, PolicyError)) as info:
            load(*args)
    finally:
        seconds = time.perf_counter() - start
        peak = tracemalloc.get_traced_memory()[1]
        tracemalloc.stop()
    return info.value, seconds, peak


def test_alias_bomb_is_refused_fast_and_small() -> None:
    assert len(ALIAS_BOMB) < 800
    error, seconds, peak = _bounded(load_yaml, ALIAS_BOMB, "bomb.yaml")
    assert "alias expansion" in str(error) and "bomb.yaml" in str(error)
    # Hang and memory guards only (unbounded, this takes tens of seconds and gigabytes).
    assert seconds < 5
    assert peak < 20 * 2**20


def test_alias_bomb_in_a_policy_file_is_a_policy_error(tmp_path: Path) -> None:
    path = tmp_path / "bomb.yaml"
    path.write_text(ALIAS_BOMB, encoding="utf-8")
    error, seconds, peak = _bounded(Policy.load, path)
    assert isinstance(error, PolicyError)
    assert "alias expansion" in str(error) and str(path) in str(error)
    assert seconds < 5 and peak < 20 * 2**20
    # The same bomb given as text.
    with pytest.raises(PolicyError, match="alias expansion"):
        Policy.load("tiers:\n  economy: x\n" + ALIAS_BOMB)


@pytest.mark.parametrize(
    "text",
    [
        "[" * 100_000,
        "a:\n" + "".join("  " * i + "- \n" for i in range(1, 200)),
        "{a: " * 5_000 + "1" + "}" * 5_000,
    ],
    ids=["flow-brackets", "block-sequences", "flow-mappings"],
)
def test_deep_nesting_is_refused_without_recursion_error(text: str) -> None:
    with pytest.raises(YamlError, match=f"deeper than {MAX_DEPTH}|maximum nesting depth"):
        load_yaml(text, "deep.yaml")


def test_depth_counts_what_an_alias_points_to() -> None:
    nested = "[" * 40 + "x" + "]" * 40
    text = f"a: &deep {nested}\nb: {'[' * 40}*deep{']' * 40}\n"
    with pytest.raises(YamlError, match="alias \\*deep nests deeper"):
        load_yaml(text)
    assert load_yaml(f"a: &deep {nested}\nb: [*deep]\n")["b"][0] is not None


def test_recursive_alias_is_refused() -> None:
    with pytest.raises(YamlError, match="its own ancestor"):
        load_yaml("a: &a [1, *a]\n")


@pytest.mark.parametrize(
    ("text", "match"),
    [
        ("n: " + "9" * 5_000, "invalid YAML value"),
        ("s: " + "x" * 70_000, "a scalar of 70000 characters"),
        ("a: 1\n---\nb: 2\n", "invalid YAML"),
        ("a: *nowhere\n", "invalid YAML"),
        ("a: [1, 2\n", "invalid YAML"),
    ],
    ids=["huge-int", "huge-scalar", "two-documents", "undefined-alias", "unclosed"],
)
def test_bad_values_are_yaml_errors(text: str, match: str) -> None:
    with pytest.raises(YamlError, match=match) as info:
        load_yaml(text)
    assert len(str(info.value)) < 500  # the parser's quote of the input is cut


def test_file_size_is_checked_before_reading(tmp_path: Path) -> None:
    path = tmp_path / "big.yaml"
    path.write_bytes(b"# " + b"x" * (2 << 20))
    with pytest.raises(YamlError, match="bytes exceed the limit"):
        load_yaml_file(path)
    with pytest.raises(YamlError, match="cannot read"):
        load_yaml_file(tmp_path / "missing.yaml")
    (tmp_path / "latin1.yaml").write_bytes(b"a: \xe9\n")
    with pytest.raises(YamlError, match="not valid UTF-8"):
        load_yaml_file(tmp_path / "latin1.yaml")


def test_ordinary_aliases_and_shipped_files_load() -> None:
    data = load_yaml("base: &base {timeout: 30, retries: 2}\nprod: {<<: *base, retries: 5}\n")
    assert data["prod"] == {"timeout": 30, "retries": 5}
    for path in [*REPO.glob("examples/*.yaml"), REPO / "router_ml" / "default_policy.yaml"]:
        assert isinstance(load_yaml_file(path), dict), path


def test_policy_errors_quote_a_huge_value_cut() -> None:
    tiers = {"economy": "a", "standard": "b", "premium": "c"}
    rule = {"name": "r", "match": {"tools": "x" * 60_000}, "tier": "economy"}
    with pytest.raises(PolicyError, match="expected true or false") as info:
        Policy.load({"tiers": tiers, "rules": [rule]})
    assert len(str(info.value)) < 300
