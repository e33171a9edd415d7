"""Benchmark mechanics without asserting on any timing."""

from __future__ import annotations

import gzip
import json

import numpy as np
import pytest

from router_ml_lab.evaluate.baselines import AlwaysTier, LengthHeuristic
from router_ml_lab.evaluate.speed import (
    LatencyStats,
    batch_throughput,
    generated_prompt,
    load_request_shapes,
    run_bench,
    time_calls,
)


def test_time_calls_times_each_call_once_cycling_through_items() -> None:
    seen: list[int] = []
    samples = time_calls(seen.append, [1, 2, 3], n_calls=7, warmup=2, max_seconds=60)
    assert samples.shape == (7,) and (samples >= 0).all()
    assert seen == [1, 2, 1, 2, 3, 1, 2, 3, 1]  # 2 warm-up calls, then 7 timed ones
    with pytest.raises(ValueError):
        time_calls(seen.append, [], n_calls=1, warmup=0, max_seconds=1)


def test_latency_stats_are_percentiles_in_microseconds() -> None:
    stats = LatencyStats.from_ns(np.arange(1, 101) * 1000)
    assert stats.n_calls == 100
    assert stats.p50_us == pytest.approx(50.5)
    assert stats.p99_us == pytest.approx(99.01)
    assert stats.min_us == 1.0


def test_generated_prompts_have_the_exact_size_and_are_deterministic() -> None:
    for size in (1_000, 10_000):
        prompt = generated_prompt(size, seed=1)
        assert len(prompt["messages"][0]["content"]) == size
        assert prompt == generated_prompt(size, seed=1)
    assert generated_prompt(1_000, 1) != generated_prompt(1_000, 2)


def test_request_shapes_are_read_per_file(tmp_path) -> None:
    path = tmp_path / "shapes.jsonl.gz"
    with gzip.open(path, "wt") as handle:
        for i in range(3):
            request = {"messages": [{"role": "user", "content": f"q{i}"}]}
            handle.write(json.dumps({"id": str(i), "request": request}) + "\n")
    shapes = load_request_shapes([path], limit=2)
    assert list(shapes) == ["shapes"] and len(shapes["shapes"]) == 2


def test_run_bench_reports_every_router_and_workload_with_ratios() -> None:
    routers = [AlwaysTier("economy"), LengthHeuristic()]
    workloads = {"small": [generated_prompt(100, s) for s in range(3)]}
    result = run_bench(
        routers,
        workloads,
        n_calls=20,
        warmup=2,
        batch_size=4,
        batch_repeats=2,
        reference="length heuristic",
    )
    assert set(result["results"]) == {"always-economy", "length heuristic"}
    entry = result["results"]["always-economy"]["small"]
    assert entry["n_calls"] == 20 and entry["p99_us"] >= entry["p50_us"] > 0
    assert result["ratio_to_reference_p50"]["length heuristic"]["small"] == 1.0
    assert len(result["samples_us"]["always-economy"]["small"]) == 20
    assert (
        run_bench(
            routers,
            workloads,
            n_calls=5,
            warmup=0,
            batch_size=2,
            batch_repeats=1,
            reference="absent",
        )["reference"]
        is None
    )


def test_latency_plot_is_written(tmp_path) -> None:
    from router_ml_lab.evaluate.plots import latency_plot

    workloads = {"small": [generated_prompt(100, s) for s in range(3)]}
    bench = run_bench(
        [AlwaysTier("economy")], workloads, n_calls=10, warmup=0, batch_size=2, batch_repeats=1
    )
    bench["results"] = {"router-ml": bench["results"]["always-economy"]}
    bench["samples_us"] = {"router-ml": bench["samples_us"]["always-economy"]}
    assert latency_plot(bench, tmp_path / "latency.png").stat().st_size > 1000


def test_batch_throughput_stops_repeating_once_its_time_is_spent() -> None:
    batches: list[int] = []
    requests = [generated_prompt(100, s) for s in range(3)]
    batch_throughput(lambda b: batches.append(len(b)), requests, 4, repeats=5, max_seconds=0)
    assert batches == [4, 4]  # the warm-up, then one timed batch: the budget of 0 s is spent
    batches.clear()
    batch_throughput(lambda b: batches.append(len(b)), requests, 4, repeats=5)
    assert batches == [4] * 6


def test_run_bench_logs_one_line_per_router_and_workload() -> None:
    lines: list[str] = []
    workloads = {"a": [generated_prompt(100, 0)], "b": [generated_prompt(200, 0)]}
    routers = [AlwaysTier("economy"), LengthHeuristic()]
    run_bench(routers, workloads, n_calls=5, warmup=1, max_seconds=0.01, log=lines.append)
    assert [line.split(":")[0] for line in lines] == [
        "bench [1/4] always-economy on a",
        "bench [2/4] always-economy on b",
        "bench [3/4] length heuristic on a",
        "bench [4/4] length heuristic on b",
    ]
