"""Latency and throughput of ``route()`` for router-ml and every baseline, on one core, warm.

Each router is timed through its public per-request path (``route(request)``: parsing, rules,
features, model) with ``time.perf_counter_ns`` around every call, after warm-up calls, with the
garbage collector collected before and paused during a timed run, so a collection triggered by
an earlier router is not charged to the next one. Reported: median and p99 per call (means hide
the tail a gateway cares about) and batch throughput of ``route_batch``.
"""

from __future__ import annotations

import gc
import gzip
import json
import os
import random
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np

from router_ml_lab.evaluate.baselines import Request, TierRouter

GENERATED_SIZES = (1_000, 10_000, 100_000)
_VOCABULARY = (
    "the a of to and in is for on with that this it as be are by an or from at which explain "
    "compute function value return list error model data table query user step result test "
    "because therefore however we should must could would write code python sql proof integer"
)
_WORDS = tuple(_VOCABULARY.split())


@dataclass(frozen=True)
class LatencyStats:
    """Per-call latency summary in microseconds."""

    n_calls: int
    p50_us: float
    p99_us: float
    min_us: float

    @classmethod
    def from_ns(cls, samples_ns: np.ndarray) -> LatencyStats:
        if samples_ns.size == 0:
            raise ValueError("no latency samples")
        us = samples_ns / 1e3
        return cls(
            int(us.size),
            float(np.percentile(us, 50)),
            float(np.percentile(us, 99)),
            float(us.min()),
        )


def time_calls(
    fn: Callable[[Any], Any], items: Sequence[Any], n_calls: int, warmup: int, max_seconds: float
) -> np.ndarray:
    """Nanoseconds of each of up to ``n_calls`` calls ``fn(item)``, cycling through ``items``.

    Stops early after ``max_seconds`` (at least one call is timed), so a slow router on 100k-char
    prompts cannot stall the benchmark; the report states the number of calls behind each figure.
    """
    if not items or n_calls < 1:
        raise ValueError("need items and n_calls >= 1")
    warm_until = time.perf_counter_ns() + int(max_seconds * 1e9)
    for i in range(warmup):  # warm caches and lazy initialisation; bounded like the timed run
        fn(items[i % len(items)])
        if time.perf_counter_ns() > warm_until:
            break
    samples = np.empty(n_calls, dtype=np.int64)
    gc.collect()
    gc_was_enabled = gc.isenabled()
    gc.disable()
    try:
        deadline = time.perf_counter_ns() + int(max_seconds * 1e9)
        count = 0
        for i in range(n_calls):
            item = items[i % len(items)]
            start = time.perf_counter_ns()
            fn(item)
            end = time.perf_counter_ns()
            samples[i] = end - start
            count += 1
            if end > deadline:
                break
    finally:
        if gc_was_enabled:
            gc.enable()
    return samples[:count]


def batch_throughput(
    route_batch: Callable[[Sequence[Request]], Any],
    requests: Sequence[Request],
    batch_size: int,
    repeats: int,
    max_seconds: float | None = None,
) -> float:
    """Median requests per second of ``route_batch`` over up to ``repeats`` batches.

    With ``max_seconds``, no further batch starts once that much time has been spent (at least
    one batch is timed), so a slow router cannot stretch a short benchmark.
    """
    batch = [requests[i % len(requests)] for i in range(batch_size)]
    route_batch(batch[: min(8, batch_size)])  # warm-up
    rates = []
    deadline = None if max_seconds is None else time.perf_counter_ns() + int(max_seconds * 1e9)
    for _ in range(repeats):
        gc.collect()
        start = time.perf_counter_ns()
        route_batch(batch)
        end = time.perf_counter_ns()
        rates.append(batch_size / ((end - start) / 1e9))
        if deadline is not None and end > deadline:
            break
    return float(np.median(rates))


def generated_prompt(n_chars: int, seed: int = 0) -> Request:
    """A single-turn request whose user message has exactly ``n_chars`` characters of prose."""
    rng = random.Random(seed * 1_000_003 + n_chars)
    words: list[str] = []
    length = 0
    while length < n_chars:
        word = rng.choice(_WORDS)
        words.append(word + ("." if rng.random() < 0.08 else ""))
        length += len(words[-1]) + 1
    text = " ".join(words)[:n_chars]
    return {"messages": [{"role": "user", "content": text}]}


def load_request_shapes(
    paths: Sequence[str | os.PathLike[str]], limit: int | None = None
) -> dict[str, list[Request]]:
    """Requests of ``requests/*.jsonl.gz`` files (``{"id", "source", "request"}`` lines) by file."""
    shapes: dict[str, list[Request]] = {}
    for path in map(Path, paths):
        opener = gzip.open if path.name.endswith(".gz") else open
        with opener(path, "rt", encoding="utf-8") as handle:
            requests = [json.loads(line)["request"] for line in handle if line.strip()]
        name = path.name.split(".")[0]
        shapes[name] = requests[:limit] if limit else requests
    return shapes


def pin_to_one_core() -> int | None:
    """Run this process on one CPU (the last one), so a bench measures one core; None if unable."""
    if not hasattr(os, "sched_setaffinity"):
        return None
    cpus = sorted(os.sched_getaffinity(0))
    os.sched_setaffinity(0, {cpus[-1]})
    return cpus[-1]


def run_bench(
    routers: Sequence[TierRouter],
    workloads: dict[str, list[Request]],
    n_calls: int = 1000,
    warmup: int = 50,
    max_seconds: float = 3.0,
    batch_size: int = 256,
    batch_repeats: int = 5,
    reference: str | None = None,
    log: Callable[[str], None] | None = None,
) -> dict[str, Any]:
    """Latency and throughput of every router on every workload; ratios to ``reference``.

    ``max_seconds`` bounds each phase (warm-up, timed calls, batches) per router and workload.
    ``log`` receives one line per router and workload as it finishes: the progress of a run
    that can take minutes, readable in a terminal and in a CI log alike.
    """
    results: dict[str, dict[str, Any]] = {}
    samples: dict[str, dict[str, list[float]]] = {}
    total, done = len(routers) * len(workloads), 0
    # Objects alive now (request sets, loaded models, imported peers) are moved out of the
    # collector's reach: otherwise every gc.collect() before a timed run walks them all, which
    # costs ~0.7 s per call with LiteLLM loaded and dominated short runs.
    gc.collect()
    gc.freeze()
    try:
        for router in routers:
            results[router.name] = {}
            samples[router.name] = {}
            for workload, requests in workloads.items():
                started = time.perf_counter()
                ns = time_calls(router.route, requests, n_calls, warmup, max_seconds)
                stats = LatencyStats.from_ns(ns)
                # one batch takes about max_seconds at most, so slow routers stay bounded
                size = max(1, min(batch_size, int(max_seconds * 1e6 / max(stats.p50_us, 1.0))))
                throughput = batch_throughput(
                    router.route_batch, requests, size, batch_repeats, max_seconds
                )
                results[router.name][workload] = {**asdict(stats), "batch_rps": throughput}
                samples[router.name][workload] = (ns / 1e3).tolist()
                done += 1
                if log is not None:
                    log(
                        f"bench [{done}/{total}] {router.name} on {workload}: "
                        f"p50 {_micros(stats.p50_us)}, p99 {_micros(stats.p99_us)} "
                        f"({stats.n_calls} calls), batch {throughput:,.0f}/s "
                        f"[{time.perf_counter() - started:.1f} s]"
                    )
    finally:
        gc.unfreeze()
    ratios: dict[str, dict[str, float]] = {}
    if reference is not None and reference in results:
        for name, per_workload in results.items():
            ratios[name] = {
                w: per_workload[w]["p50_us"] / results[reference][w]["p50_us"] for w in per_workload
            }
    return {
        "results": results,
        "ratio_to_reference_p50": ratios,
        "reference": reference if ratios else None,
        "samples_us": samples,
        "settings": {
            "n_calls": n_calls,
            "warmup": warmup,
            "max_seconds": max_seconds,
            "batch_size": batch_size,
            "batch_repeats": batch_repeats,
            "workload_sizes": {w: len(r) for w, r in workloads.items()},
        },
    }


def _micros(value: float) -> str:
    return f"{value / 1000:.1f} ms" if value >= 1000 else f"{value:.0f} µs"
