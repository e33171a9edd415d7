"""The runtime's speed budget, measured: route() latency, batch throughput, load time, memory.

Runs on one core (pinned), warm, through the public ``Router.route`` / ``route_batch`` path:
validation, features, tokenizer, ONNX and policy. Workloads:

- ``single_1k``: single-turn requests of 1,000 characters of prose (generated, varied text);
- ``agent_12_turns``: real 12-message tool-using conversations from tau-bench (``requests/
  tau_airline``: system prompt, tool definitions, tool calls and results);
- ``batch_1k``: ``route_batch`` throughput on 1,000-character requests;
- ``import_and_load``: ``import router_ml`` + ``Router.load()`` in a fresh interpreter (median of 5)
  and its peak resident memory.

LiteLLM's complexity router is timed on the same workloads when it is installed, and every p50
is reported as a ratio to it. With ``--previous REV`` the same script of an earlier git revision
(its own runtime and shipped model, checked out in a temporary worktree) is run before, between
and after ``--rounds`` timings of this one: round i's p50 is divided by the mean of the previous
revision's runs on either side of it, and the ratio reported is the median over rounds (on this
shared machine one timing's p50 moves by up to 1.5x between runs; interleaving and the median
keep that drift out of the comparison). Router-ml's p50 and p99 are the medians over rounds.
Usage::

    python benchmarks/runtime_budget.py [--model DIR] [--data ../shared/data] [--out FILE.json]
        [--previous REV] [--rounds 3]
"""

from __future__ import annotations

import argparse
import gzip
import json
import statistics
import subprocess
import sys
import tempfile
from dataclasses import asdict
from pathlib import Path
from typing import Any

from router_ml import Router
from router_ml_lab.evaluate.peers import LiteLLMComplexityRouter, PeerUnavailable
from router_ml_lab.evaluate.speed import (
    LatencyStats,
    batch_throughput,
    generated_prompt,
    pin_to_one_core,
    time_calls,
)

BUDGET = {
    "single_1k": {"p50_us": 50, "p99_us": 250},
    "agent_12_turns": {"p50_us": 150},
    "batch_1k": {"requests_per_s": 20_000},
    "import_and_load": {"seconds": 0.3, "rss_mb": 150},
}
# Peak memory from VmHWM: unlike ru_maxrss it is not inherited from the forking parent.
_LOAD_SNIPPET = """
import time
start = time.perf_counter()
import router_ml
router_ml.Router.load({model!r})
elapsed = time.perf_counter() - start
status = open("/proc/self/status").read().split("VmHWM:")[1].split()[0]
print(elapsed, int(status) / 1024)
"""


def agent_conversations(data: Path, n_messages: int = 12) -> list[dict[str, Any]]:
    path = data / "requests" / "tau_airline.jsonl.gz"
    with gzip.open(path, "rt", encoding="utf-8") as handle:
        requests = [json.loads(line)["request"] for line in handle]
    return [r for r in requests if len(r["messages"]) == n_messages]


def import_and_load(model: str | None, repeats: int = 5) -> dict[str, float]:
    seconds, rss = [], []
    for _ in range(repeats):
        out = subprocess.run(
            [sys.executable, "-c", _LOAD_SNIPPET.format(model=model)],
            capture_output=True,
            text=True,
            check=True,
        ).stdout.split()
        seconds.append(float(out[0]))
        rss.append(float(out[1]))
    return {"seconds": statistics.median(seconds), "rss_mb": statistics.median(rss)}


def previous_run(revision: str, data: str, calls: int) -> dict[str, Any]:
    """This benchmark as it was at ``revision``, with that revision's runtime and shipped model."""
    repo = Path(__file__).resolve().parents[1]
    with tempfile.TemporaryDirectory(prefix="router-ml-previous-") as tmp:
        tree = Path(tmp) / "tree"
        subprocess.run(
            ["git", "-C", str(repo), "worktree", "add", "--detach", str(tree), revision],
            check=True,
            capture_output=True,
        )
        try:
            out = Path(tmp) / "previous.json"
            subprocess.run(
                [
                    sys.executable,
                    "benchmarks/runtime_budget.py",
                    "--data",
                    data,
                    "--calls",
                    str(calls),
                    "--out",
                    str(out),
                ],
                cwd=tree,
                env={"PATH": "/usr/bin:/bin", "PYTHONPATH": f"{tree}:{tree / 'training'}"},
                check=True,
                capture_output=True,
            )
            return json.loads(out.read_text())
        finally:
            subprocess.run(
                ["git", "-C", str(repo), "worktree", "remove", "--force", str(tree)],
                check=False,
                capture_output=True,
            )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--model", help="model directory (default: the shipped model)")
    parser.add_argument(
        "--data",
        default=str(Path(__file__).resolve().parents[2] / "shared" / "data"),
        help="folder with requests/tau_airline.jsonl.gz (default: ../shared/data)",
    )
    parser.add_argument("--calls", type=int, default=5000, help="timed calls per workload")
    parser.add_argument("--out", help="write the results as JSON here")
    parser.add_argument(
        "--previous",
        metavar="REV",
        help="also run this benchmark at an earlier git revision (before and after this run) "
        "and report p50 ratios to it",
    )
    parser.add_argument(
        "--rounds",
        type=int,
        default=3,
        help="with --previous: timings of this revision, each between two runs of the previous "
        "one (default 3)",
    )
    args = parser.parse_args(argv)
    if args.rounds < 1:
        parser.error("--rounds must be at least 1")
    rounds = args.rounds if args.previous else 1
    previous = [previous_run(args.previous, args.data, args.calls)] if args.previous else []

    core = pin_to_one_core()
    router = Router.load(args.model)
    single = [generated_prompt(1000, seed=i) for i in range(200)]
    agents = agent_conversations(Path(args.data))
    workloads = {"single_1k": single, "agent_12_turns": agents}

    def timed(route: Any) -> dict[str, dict[str, Any]]:
        return {
            workload: asdict(
                LatencyStats.from_ns(
                    time_calls(route, requests, args.calls, warmup=200, max_seconds=30.0)
                )
            )
            for workload, requests in workloads.items()
        }

    results: dict[str, Any] = {
        "core": core,
        "budget": BUDGET,
        "latency": {},
        "workloads": {
            "single_1k": {"n_requests": len(single), "chars": 1000},
            "agent_12_turns": {
                "n_requests": len(agents),
                "median_message_chars": statistics.median(
                    sum(len(m.get("content") or "") for m in r["messages"]) for r in agents
                ),
            },
        },
    }
    by_round = []
    for _ in range(rounds):
        by_round.append(timed(router.route))
        if args.previous:
            previous.append(previous_run(args.previous, args.data, args.calls))
    results["latency"]["router-ml"] = {
        workload: {
            key: statistics.median(r[workload][key] for r in by_round)
            for key in ("n_calls", "p50_us", "p99_us", "min_us")
        }
        for workload in workloads
    }
    results["rounds"] = by_round
    try:
        results["latency"]["litellm-heuristic"] = timed(LiteLLMComplexityRouter("heuristic").route)
    except PeerUnavailable as exc:
        print(f"skipping LiteLLM: {exc}", file=sys.stderr)
    results["batch_1k_requests_per_s"] = batch_throughput(router.route_batch, single, 1000, 7)
    results["import_and_load"] = import_and_load(args.model)
    if "litellm-heuristic" in results["latency"]:
        reference = results["latency"]["litellm-heuristic"]
        results["ratio_to_litellm_p50"] = {
            w: results["latency"]["router-ml"][w]["p50_us"] / reference[w]["p50_us"]
            for w in workloads
        }
    if args.previous:
        results["previous"] = {"revision": args.previous, "runs": previous}

        def p50(run: dict[str, Any], workload: str) -> float:
            return float(run[workload]["p50_us"])

        results["ratio_to_previous_p50_by_round"] = {
            w: [
                p50(ours, w)
                / statistics.mean(
                    p50(previous[i]["latency"]["router-ml"], w) for i in (index, index + 1)
                )
                for index, ours in enumerate(by_round)
            ]
            for w in workloads
        }
        results["ratio_to_previous_p50"] = {
            w: statistics.median(ratios)
            for w, ratios in results["ratio_to_previous_p50_by_round"].items()
        }
    print(render(results))
    if args.out:
        Path(args.out).write_text(json.dumps(results, indent=2))
    return 0


def render(results: dict[str, Any]) -> str:
    lines = ["| router | workload | p50 µs | p99 µs | budget |", "|---|---|---|---|---|"]
    for name, per_workload in results["latency"].items():
        for workload, stats in per_workload.items():
            budget = BUDGET[workload] if name == "router-ml" else {}
            shown = ", ".join(f"{k} ≤ {v}" for k, v in budget.items()) or "-"
            lines.append(
                f"| {name} | {workload} | {stats['p50_us']:.1f} | {stats['p99_us']:.1f} | {shown} |"
            )
    load = results["import_and_load"]
    lines += [
        "",
        f"route_batch, 1k-char requests: {results['batch_1k_requests_per_s']:,.0f} requests/s "
        f"(budget ≥ {BUDGET['batch_1k']['requests_per_s']:,})",
        f"import router_ml + Router.load(): {load['seconds'] * 1000:.0f} ms (budget ≤ 300 ms), "
        f"peak RSS {load['rss_mb']:.0f} MB (budget ≤ 150 MB)",
    ]
    for workload, ratio in results.get("ratio_to_litellm_p50", {}).items():
        lines.append(f"p50 ratio router-ml / LiteLLM heuristic on {workload}: {ratio:.2f}")
    if "previous" in results:
        runs = results["previous"]["runs"]
        lines.append(
            f"previous revision {results['previous']['revision']} (run before, between and after "
            f"{len(results['rounds'])} rounds of this one):"
        )
        for workload, ratio in results["ratio_to_previous_p50"].items():
            before = ", ".join(f"{r['latency']['router-ml'][workload]['p50_us']:.1f}" for r in runs)
            ours = ", ".join(f"{r[workload]['p50_us']:.1f}" for r in results["rounds"])
            per_round = ", ".join(
                f"{x:.2f}" for x in results["ratio_to_previous_p50_by_round"][workload]
            )
            lines.append(
                f"  {workload}: p50 previous {before} µs, this {ours} µs; ratio now / previous "
                f"{ratio:.2f} (median of {per_round})"
            )
        loads = ", ".join(
            f"{load['seconds'] * 1000:.0f} ms / {load['rss_mb']:.0f} MB"
            for load in (r["import_and_load"] for r in runs)
        )
        lines.append(f"  import + load / peak RSS: {loads}")
    return "\n".join(lines)


if __name__ == "__main__":
    sys.exit(main())
