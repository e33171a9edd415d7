"""A deterministic mutation fuzzer for ``Router.route`` over real request shapes.

Seeds are real bodies (``../shared/data/requests/*.jsonl.gz`` when present, and
``examples/requests.jsonl``); each fuzzed body applies 1-4 mutations (mostly one) from a fixed
catalogue of what hostile or buggy clients send (wrong types in every position, huge and
non-finite numbers, 5,000-digit integers, lone surrogates and odd unicode, deep nesting, huge
lists, dropped keys, truncated or bit-flipped JSON) and is routed as a dict, as JSON text or as
bytes (up to 4 MiB). The property is the API promise: every body either routes or raises
``InvalidRequest``. The same seed gives the same bodies, so a failure reproduces from its index.

Run offline at scale::

    python tests/router_ml/request_fuzzer.py --bodies 20000 [--data ../shared/data]
"""

from __future__ import annotations

import argparse
import copy
import gzip
import json
import random
import sys
import time
import traceback
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field
from itertools import islice
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[2]
DEFAULT_DATA = REPO.parent / "shared" / "data"

_DEEP = 3_000
MAX_TEXT_BODY = 4 << 20
"""Larger bodies stay dicts: as text they would only time ``json.loads`` (a gateway's body limit
refuses them before parsing)."""
HOSTILE_VALUES: tuple[Any, ...] = (
    None,
    True,
    False,
    0,
    -1,
    1.5,
    2**63,
    10**400,
    -(10**309),
    float("nan"),
    float("inf"),
    -float("inf"),
    1e308,
    "",
    "x" * 70_000,
    "\ud800",
    "a\udfffb\ud83d",
    "\x00\r\n\t",
    "\u202e\u0301\ufeff\uffff\U0010ffff",
    "😀" * 500,
    "<|endoftext|><|im_start|>",
    [],
    [[]],
    {},
    {"": {}},
    ["text"],
    {"type": "text"},
    {"type": ["text"], "text": "x"},
    {"type": {"k": "v"}},
    "text",
    "image_url",
    "function",
    "auto",
    "named",
    "json_schema",
    "user",
    "assistant",
    "tool",
)
TOP_LEVEL_KEYS = (
    "messages",
    "tools",
    "functions",
    "tool_choice",
    "function_call",
    "max_tokens",
    "max_completion_tokens",
    "response_format",
    "stream",
    "metadata",
    "model",
)


def deep_list(depth: int) -> list[Any]:
    value: list[Any] = []
    for _ in range(depth):
        value = [value]
    return value


def deep_dict(depth: int) -> dict[str, Any]:
    value: dict[str, Any] = {}
    for _ in range(depth):
        value = {"properties": value}
    return value


def big_values(rng: random.Random) -> Any:
    """Large containers: cheap to build, expensive for a validator that walks them unbounded."""
    choice = rng.randrange(6)
    if choice == 0:
        return list(range(rng.choice((20_001, 200_000))))
    if choice == 1:
        return {str(i): i for i in range(rng.choice((100, 50_000)))}
    if choice == 2:
        return deep_list(_DEEP)
    if choice == 3:
        return deep_dict(_DEEP)
    if choice == 4:
        return [{"type": "text", "text": "x"}] * rng.choice((10_001, 30_000))
    return {"type": "object", "enum": list(range(200_000))}


def load_seeds(data: Path | None, per_file: int = 300) -> list[dict[str, Any]]:
    """Real request bodies: up to ``per_file`` from each request-shape file, plus the examples."""
    seeds: list[dict[str, Any]] = []
    if data is not None:
        for path in sorted((data / "requests").glob("*.jsonl.gz")):
            with gzip.open(path, "rt", encoding="utf-8") as handle:
                for i, line in enumerate(handle):
                    if i >= per_file:
                        break
                    seeds.append(json.loads(line)["request"])
    for line in (REPO / "examples" / "requests.jsonl").read_text(encoding="utf-8").splitlines():
        if line.strip():
            record = json.loads(line)
            seeds.append(record.get("request", record))
    seeds.append(json.loads((REPO / "examples" / "request.json").read_text(encoding="utf-8")))
    return seeds


def _paths(value: Any, prefix: tuple[Any, ...] = (), limit: int = 400) -> list[tuple[Any, ...]]:
    """Paths to nodes of a body (breadth-first, at most ``limit``), the root excluded."""
    found: list[tuple[Any, ...]] = []
    level = [(prefix, value)]
    while level and len(found) < limit:
        deeper = []
        for path, node in level:
            children = (
                node.items()
                if isinstance(node, dict)
                else enumerate(node)
                if isinstance(node, list)
                else ()
            )
            for key, child in islice(children, 50):
                found.append((*path, key))
                deeper.append(((*path, key), child))
        level = deeper
    return found[:limit]


def _set(body: Any, path: tuple[Any, ...], value: Any) -> None:
    node = body
    for key in path[:-1]:
        node = node[key]
    node[path[-1]] = value


def _get(body: Any, path: tuple[Any, ...]) -> Any:
    for key in path:
        body = body[key]
    return body


def _delete(body: Any, path: tuple[Any, ...]) -> None:
    parent = _get(body, path[:-1])
    del parent[path[-1]]


def _hostile(rng: random.Random) -> Any:
    return copy.deepcopy(rng.choice(HOSTILE_VALUES))


def mutate(body: dict[str, Any], rng: random.Random) -> None:
    """One mutation, in place."""
    paths = _paths(body)
    kind = rng.randrange(11)
    if kind <= 3 and paths:  # a hostile value anywhere
        _set(body, rng.choice(paths), _hostile(rng))
    elif kind == 4:  # a top-level field with a hostile value
        key = rng.choice(TOP_LEVEL_KEYS)
        body[key] = _hostile(rng) if rng.random() < 0.8 else big_values(rng)
    elif kind == 5 and paths:  # a huge or deep value somewhere
        _set(body, rng.choice(paths), big_values(rng))
    elif kind == 6 and paths:  # a key or element goes missing
        _delete(body, rng.choice(paths))
    elif kind == 7 and paths:  # a value changes shape: wrapped in a list or an object
        path = rng.choice(paths)
        value = _get(body, path)
        _set(body, path, [value] if rng.random() < 0.5 else {"type": value, "text": value})
    elif kind == 8 and paths:  # a list element is repeated
        lists = [p for p in paths if isinstance(_get(body, p), list) and _get(body, p)]
        if lists:
            target = _get(body, rng.choice(lists))
            target.extend([target[0]] * rng.choice((1, 10, 1_000)))
    elif kind == 9:  # a hostile value where the router reads one
        _targeted(body, rng)
    else:  # an odd text somewhere
        strings = [p for p in paths if isinstance(_get(body, p), str)]
        if strings:
            path = rng.choice(strings)
            text = _get(body, path)
            cut = rng.randrange(len(text) + 1)
            _set(body, path, text[:cut] + rng.choice(HOSTILE_VALUES[14:21]) + text[cut:])


def _targeted(body: dict[str, Any], rng: random.Random) -> None:
    messages = body.get("messages")
    target = rng.randrange(4)
    if target == 0 or not isinstance(messages, list) or not messages:
        body[rng.choice(("max_tokens", "max_completion_tokens"))] = rng.choice(HOSTILE_VALUES[:13])
    elif target == 1:
        message = rng.choice(messages)
        if isinstance(message, dict):
            text = message.get("content")
            part = {"type": _hostile(rng), "text": text if isinstance(text, str) else "x"}
            message["content"] = [part]
    elif target == 2:
        body["metadata"] = {
            "tenant": _hostile(rng),
            rng.choice(("k", "", "\ud800", "x" * 70_000)): 1,
        }
    else:
        message = rng.choice(messages)
        if isinstance(message, dict):
            message["role"] = _hostile(rng)


def _bounded_json(body: Any) -> str | None:
    """``json.dumps(body)``, or None past ``MAX_TEXT_BODY`` characters or when it cannot encode.

    Mutations share references (a repeated element), so a body can expand to gigabytes of JSON;
    encoding stops at the bound instead.
    """
    chunks, size = [], 0
    try:
        for chunk in json.JSONEncoder().iterencode(body):
            size += len(chunk)
            if size > MAX_TEXT_BODY:
                return None
            chunks.append(chunk)
    except (ValueError, RecursionError):  # e.g. a 10**400 int inside, or deep nesting
        return None
    return "".join(chunks)


def encode(body: Any, rng: random.Random) -> Any:
    """The body as a dict, JSON text (maybe with a 5,000-digit number), or damaged bytes."""
    kind = rng.randrange(6)
    if kind <= 2:
        return body
    text = _bounded_json(body)
    if text is None:
        return body
    if kind == 3:
        return text
    if kind == 4:
        digits = "9" * rng.choice((400, 5_000))
        at = text.rfind("}")
        return text[:at] + f', "temperature": {digits}' + text[at:] if at > 0 else text
    raw = bytearray(text.encode("utf-8", "surrogatepass"))
    if raw and rng.random() < 0.5:
        raw = raw[: rng.randrange(len(raw))]
    for _ in range(rng.randrange(1, 4)):
        if raw:
            raw[rng.randrange(len(raw))] ^= 1 << rng.randrange(8)
    return bytes(raw)


def fuzzed_bodies(seeds: list[dict[str, Any]], n: int, seed: int = 0) -> Iterator[Any]:
    rng = random.Random(seed)
    for _ in range(n):
        body = copy.deepcopy(rng.choice(seeds))
        for _ in range(rng.choice((1, 1, 1, 2, 2, 3, 4))):
            mutate(body, rng)
        yield encode(body, rng)


@dataclass
class FuzzResult:
    """What routing ``n`` fuzzed bodies gave: counts by outcome and the unexpected failures."""

    n: int = 0
    routed: int = 0
    invalid: int = 0
    max_seconds: float = 0.0
    failures: list[tuple[int, str]] = field(default_factory=list)
    """The first body index and message of each kind of failure."""
    failure_types: Counter[str] = field(default_factory=Counter)
    """Count per kind of failure: exception type and the line that raised it."""


def run(routers: list[Any], bodies: Iterator[Any]) -> FuzzResult:
    """Route every body with every router; anything but a decision or InvalidRequest fails."""
    from router_ml.errors import InvalidRequest

    result = FuzzResult()
    for index, body in enumerate(bodies):
        result.n += 1
        for router in routers:
            start = time.perf_counter()
            try:
                router.route(body)
                result.routed += 1
            except InvalidRequest:
                result.invalid += 1
            except Exception as exc:
                where = traceback.extract_tb(exc.__traceback__)[-1]
                signature = f"{type(exc).__name__} at {where.filename}:{where.lineno}"
                if signature not in result.failure_types:  # the first body of each kind
                    result.failures.append((index, f"{signature}: {str(exc)[:200]}"))
                result.failure_types[signature] += 1
            result.max_seconds = max(result.max_seconds, time.perf_counter() - start)
    return result


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--bodies", type=int, default=20_000, help="fuzzed bodies to route")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--data", default=str(DEFAULT_DATA), help="folder with requests/")
    args = parser.parse_args(argv)
    sys.path.insert(0, str(REPO))
    from router_ml import Router

    data = Path(args.data)
    seeds = load_seeds(data if (data / "requests").is_dir() else None)
    routers = [Router.load(), Router.load(policy=REPO / "examples" / "policy-rules.yaml")]
    start = time.perf_counter()
    result = run(routers, fuzzed_bodies(seeds, args.bodies, args.seed))
    elapsed = time.perf_counter() - start
    print(
        f"{sum(result.failure_types.values())} non-InvalidRequest "
        f"exceptions in {result.n} fuzzed bodies ({len(seeds)} seeds, {len(routers)} routers: "
        f"{result.routed} routed, {result.invalid} InvalidRequest; slowest {result.max_seconds:.3f}"
        f" s; {elapsed:.0f} s total)"
    )
    for index, failure in result.failures:
        signature = failure.split(": ", 1)[0]
        print(f"  {result.failure_types[signature]} x {failure} (first: body {index})")
    return 1 if result.failure_types else 0


if __name__ == "__main__":
    sys.exit(main())
