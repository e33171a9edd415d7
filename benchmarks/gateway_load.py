"""Load test of the routing gateway: the latency the proxy adds in front of a fast upstream.

Three processes on loopback: a fast OpenAI-compatible upstream (a raw ASGI app under uvicorn
answering a canned completion), the gateway (``router-ml serve``, decision log on), and this
client. The same request mix runs twice with the same concurrency — straight to the upstream and
through the gateway — and the difference of the two latency distributions is what the proxy
adds: routing, validation, logging and one more HTTP hop. A sequential run (one client) isolates
that cost from queueing; the decision log's ``duration_ms`` minus the upstream attempt time is the
in-process share.

Bounded: ``--requests`` per phase (default 2000), then every process is stopped.

``--gates`` turns on the answer gates of ``examples/gateway.yaml`` (json, tools, truncation,
empty) plus the refusal gate; ``--answer-bytes`` sets the size of the upstream's answer text.
The decision log's per-attempt ``gate_ms`` is the gates' own time on the real request path, and
the log is checked to hold exactly one line per request sent (``log_lines`` vs ``sent``).

    python benchmarks/gateway_load.py --requests 2000 --concurrency 32 [--gates]
        [--answer-bytes 2048] [--model-dir DIR]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np

REQUESTS = [
    {
        "messages": [
            {"role": "user", "content": "Classify the sentiment: the product arrived broken."}
        ]
    },
    {
        "messages": [
            {"role": "system", "content": "You are a careful senior engineer."},
            {
                "role": "user",
                "content": "Implement a thread-safe LRU cache in Python with "
                "O(1) operations and explain the invariants.",
            },
        ]
    },
    {
        "messages": [{"role": "user", "content": "What is the capital of Australia?"}],
        "tools": [
            {
                "type": "function",
                "function": {
                    "name": "lookup",
                    "parameters": {"type": "object", "properties": {"q": {"type": "string"}}},
                },
            }
        ],
    },
    {
        "messages": [
            {"role": "user", "content": "Prove that there are infinitely many primes. " * 8}
        ]
    },
]


def completion(answer_bytes: int) -> bytes:
    """The canned upstream answer, with about ``answer_bytes`` of text (at least "ok")."""
    text = ("The answer, in full sentences. " * (answer_bytes // 31 + 1))[:answer_bytes] or "ok"
    return json.dumps(
        {
            "id": "chatcmpl-bench",
            "object": "chat.completion",
            "created": 0,
            "model": "m",
            "choices": [
                {
                    "index": 0,
                    "message": {"role": "assistant", "content": text},
                    "finish_reason": "stop",
                }
            ],
            "usage": {"prompt_tokens": 10, "completion_tokens": 1, "total_tokens": 11},
        }
    ).encode()


COMPLETION = completion(int(os.environ.get("ROUTER_ML_BENCH_ANSWER_BYTES", "2")))
BENCH_GATES = {"json": True, "tools": True, "truncation": True, "empty": True, "refusal": True}


async def upstream_app(scope: dict[str, Any], receive: Any, send: Any) -> None:
    """A minimal, fast chat-completions endpoint: drain the body, answer a canned completion."""
    if scope["type"] != "http":
        return
    more = True
    while more:
        message = await receive()
        more = message.get("more_body", False)
    await send(
        {
            "type": "http.response.start",
            "status": 200,
            "headers": [
                (b"content-type", b"application/json"),
                (b"content-length", str(len(COMPLETION)).encode()),
            ],
        }
    )
    await send({"type": "http.response.body", "body": COMPLETION})


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def wait_for(url: str, process: subprocess.Popen[bytes], timeout_s: float = 60.0) -> None:
    import httpx

    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"{process.args} exited with {process.returncode}")
        try:
            httpx.get(url, timeout=1.0)
            return
        except httpx.TransportError:
            time.sleep(0.1)
    raise RuntimeError(f"{url} did not come up within {timeout_s}s")


ERROR_KINDS: dict[str, int] = {}
"""Failed client requests by kind (HTTP status or exception name), over all phases."""


async def run_phase(
    url: str, n_requests: int, concurrency: int, model: str | None
) -> tuple[np.ndarray, int]:
    """Latencies (ms) of ``n_requests`` POSTs from ``concurrency`` clients, and the error count."""
    import httpx

    latencies: list[float] = []
    errors = 0
    counter = iter(range(n_requests))
    limits = httpx.Limits(max_connections=concurrency, max_keepalive_connections=concurrency)
    async with httpx.AsyncClient(limits=limits, timeout=30.0) as client:

        async def worker() -> None:
            nonlocal errors
            for index in counter:
                body = dict(REQUESTS[index % len(REQUESTS)])
                if model is not None:
                    body["model"] = model
                start = time.perf_counter()
                try:
                    response = await client.post(url, json=body)
                    ok = response.status_code == 200
                    kind = f"http_{response.status_code}"
                except httpx.HTTPError as exc:
                    ok, kind = False, type(exc).__name__
                if not ok:
                    ERROR_KINDS[kind] = ERROR_KINDS.get(kind, 0) + 1
                latencies.append((time.perf_counter() - start) * 1e3)
                errors += not ok

        await asyncio.gather(*(worker() for _ in range(concurrency)))
    return np.asarray(latencies), errors


def stop_processes(processes: list[subprocess.Popen[bytes]]) -> None:
    """Terminate the benchmark's servers, then kill any that has not exited within 10 s."""
    for process in processes:
        process.terminate()
    for process in processes:
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()


def cpu_seconds(pid: int) -> float | None:
    """User + system CPU time of a process (Linux ``/proc``; None elsewhere)."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return None
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def summary(latencies: np.ndarray) -> dict[str, float]:
    return {
        "p50_ms": round(float(np.percentile(latencies, 50)), 3),
        "p90_ms": round(float(np.percentile(latencies, 90)), 3),
        "p99_ms": round(float(np.percentile(latencies, 99)), 3),
    }


def compare(direct: np.ndarray, proxied: np.ndarray, wall_s: float, errors: int) -> dict[str, Any]:
    d, p = summary(direct), summary(proxied)
    return {
        "direct": d,
        "proxied": p,
        "proxied_errors": errors,
        "proxied_throughput_rps": round(len(proxied) / wall_s, 1),
        "added_p50_ms": round(p["p50_ms"] - d["p50_ms"], 3),
        "added_p99_ms": round(p["p99_ms"] - d["p99_ms"], 3),
    }


def in_process_overhead(log_path: Path) -> dict[str, Any]:
    """Gateway time per request outside the upstream call, and the gates' share, from the log."""
    overhead, gate_ms, routed = [], [], 0
    for line in log_path.read_text().splitlines():
        entry = json.loads(line)
        upstream = sum(a["latency_ms"] for a in entry.get("attempts", []))
        overhead.append(entry["duration_ms"] - upstream)
        routed += bool(entry.get("attempts"))
        gate_ms += [a["gate_ms"] for a in entry.get("attempts", []) if "gate_ms" in a]
    values = np.asarray(overhead)
    result: dict[str, Any] = {
        "p50_ms": round(float(np.percentile(values, 50)), 3),
        "p99_ms": round(float(np.percentile(values, 99)), 3),
        "log_lines": len(values),
        "lines_with_attempts": routed,
    }
    if gate_ms:
        gates = np.asarray(gate_ms)
        result["gate_p50_ms"] = round(float(np.percentile(gates, 50)), 4)
        result["gate_p99_ms"] = round(float(np.percentile(gates, 99)), 4)
        result["gated_attempts"] = len(gates)
    return result


def write_config(
    directory: Path, upstream_port: int, port: int, model_dir: str | None, gates: bool = False
) -> Path:
    import yaml

    models = {"economy": "eco", "standard": "std", "premium": "pro"}
    config = {
        "server": {"host": "127.0.0.1", "port": port},
        "router": {"model_dir": model_dir},
        "upstreams": {"fast": {"base_url": f"http://127.0.0.1:{upstream_port}/v1"}},
        "tiers": {tier: {"upstream": "fast", "model": model} for tier, model in models.items()},
        "decision_log": {"path": str(directory / "decisions.jsonl")},
    }
    if gates:
        config["gates"] = BENCH_GATES
    path = directory / "gateway.yaml"
    path.write_text(yaml.safe_dump(config))
    return path


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--requests", type=int, default=2000, help="requests per phase")
    parser.add_argument("--concurrency", type=int, default=32, help="concurrent clients")
    parser.add_argument(
        "--sequential", type=int, default=500, help="requests of the one-client phase (0 to skip)"
    )
    parser.add_argument("--model-dir", help="model directory (default: the shipped model)")
    parser.add_argument("--gates", action="store_true", help="turn the answer gates on")
    parser.add_argument(
        "--answer-bytes", type=int, default=2, help="upstream answer text size (default: 2)"
    )
    parser.add_argument("--out", help="write the results JSON here too")
    parser.add_argument("--serve-upstream", type=int, metavar="PORT", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)

    import uvicorn

    if args.serve_upstream:
        uvicorn.run(
            upstream_app,
            host="127.0.0.1",
            port=args.serve_upstream,
            log_level="warning",
            access_log=False,
        )
        return 0
    if not 1 <= args.concurrency <= 256 or not 1 <= args.requests <= 100_000:
        parser.error("--concurrency must be in [1, 256] and --requests in [1, 100000]")

    upstream_port, gateway_port = free_port(), free_port()
    processes: list[subprocess.Popen[bytes]] = []
    with tempfile.TemporaryDirectory(prefix="router-ml-load-") as tmp:
        directory = Path(tmp)
        config = write_config(
            directory,
            upstream_port,
            gateway_port,
            os.path.abspath(args.model_dir) if args.model_dir else None,
            args.gates,
        )
        env = {**os.environ, "ROUTER_ML_BENCH_ANSWER_BYTES": str(args.answer_bytes)}
        try:
            processes.append(
                subprocess.Popen(
                    [sys.executable, __file__, "--serve-upstream", str(upstream_port)], env=env
                )
            )
            processes.append(
                subprocess.Popen(
                    [
                        sys.executable,
                        "-m",
                        "router_ml.cli",
                        "serve",
                        "--config",
                        str(config),
                        "--log-level",
                        "warning",
                    ]
                )
            )
            wait_for(f"http://127.0.0.1:{upstream_port}/", processes[0])
            wait_for(f"http://127.0.0.1:{gateway_port}/healthz", processes[1])
            direct_url = f"http://127.0.0.1:{upstream_port}/v1/chat/completions"
            proxy_url = f"http://127.0.0.1:{gateway_port}/v1/chat/completions"
            results: dict[str, Any] = {
                "requests": args.requests,
                "concurrency": args.concurrency,
                "cpus": os.cpu_count(),
                "gates": sorted(BENCH_GATES) if args.gates else [],
                "answer_bytes": args.answer_bytes,
            }
            sent = 0

            gateway_pid = processes[1].pid

            async def measured(
                phase: str, n: int, concurrency: int
            ) -> tuple[np.ndarray, int, float]:
                """Run the proxied phase, noting the gateway's CPU time per request."""
                nonlocal sent
                sent += n
                cpu_before = cpu_seconds(gateway_pid)
                start = time.perf_counter()
                latencies, errors = await run_phase(proxy_url, n, concurrency, "auto")
                wall = time.perf_counter() - start
                cpu_after = cpu_seconds(gateway_pid)
                if cpu_before is not None and cpu_after is not None:
                    results[f"gateway_cpu_ms_per_request_{phase}"] = round(
                        (cpu_after - cpu_before) * 1e3 / n, 3
                    )
                return latencies, errors, wall

            async def phases() -> None:
                nonlocal sent
                sent += 100
                await run_phase(proxy_url, 100, args.concurrency, "auto")  # warm up both paths
                await run_phase(direct_url, 100, args.concurrency, "eco")
                if args.sequential:
                    direct, _ = await run_phase(direct_url, args.sequential, 1, "eco")
                    proxied, errors, wall = await measured("sequential", args.sequential, 1)
                    results["sequential"] = compare(direct, proxied, wall, errors)
                direct, _ = await run_phase(direct_url, args.requests, args.concurrency, "eco")
                proxied, errors, wall = await measured(
                    "concurrent", args.requests, args.concurrency
                )
                results["concurrent"] = compare(direct, proxied, wall, errors)

            asyncio.run(phases())
            # the gateway writes each line before the answer's last byte: all are there by now
            results["gateway_in_process"] = in_process_overhead(directory / "decisions.jsonl")
            results["gateway_in_process"]["sent"] = sent
            results["error_kinds"] = dict(ERROR_KINDS)
        finally:
            stop_processes(processes)
    text = json.dumps(results, indent=2)
    print(text)
    if args.out:
        Path(args.out).write_text(text + "\n")
    return 0 if results["concurrent"]["proxied_errors"] == 0 else 1


if __name__ == "__main__":
    sys.exit(main())
