"""Heavy bodies beside normal traffic: how far do they move the normal requests' latency?

Issue 12's target: a client sending heavy bodies (a 4 MB JSON, parsed and routed) must not stall
the others — normal-request p99 may move by at most 20 ms. Processes on loopback, as in
``gateway_load.py``: its fast upstream, the gateway (``router-ml serve``, shipped model, decision
log on), heavy clients (one process each, sending the heavy body back to back) and this process
as the normal clients. In one run the same normal phase (``--requests`` at ``--concurrency``)
is measured with no heavy client, then with 1 and 2 heavy clients of each ``--heavy`` kind, and
that round is repeated ``--rounds`` times. A phase's p99 shift in a round is against that round's
own baseline, and the table gives the median over rounds (on a shared machine one phase's p99 of
1,000 requests moves by tens of ms between two identical phases; the rounds show how much):

- ``messages``: 10,000 messages (the parser's limit) of ~390 characters, 3.9 MB — the heaviest
  valid conversation; its routing runs Python code (feature extraction).
- ``keys``: one short message and an extra field of 230,000 keys, 4.1 MB — JSON decoding is
  its cost, and that holds the GIL (C code) wherever it runs in the gateway's process.

Both are above ``limits.process_body_bytes``: the gateway decodes and routes them in its worker
process and forwards the client's bytes with the model spliced in. The whole run is repeated for
each ``--nice`` value of ``limits.process_worker_nice`` (the worker's CPU priority), gateways
started afresh, so the two settings are compared in the same run.

Results: JSON and a markdown table (``--out-dir``, default ``benchmarks/results/gateway``), with
the CPU count and load averages, since client, gateway, upstream and heavy clients share the
machine's cores. Bounded: every phase sends ``--requests`` normal requests, then every process
is stopped.

    python benchmarks/gateway_heavy_body.py [--requests 1000] [--concurrency 8] [--rounds 3]
        [--heavy messages keys] [--nice 0 10] [--gates] [--note "shared machine"]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

import gateway_load  # the sibling benchmark: its upstream, phases and summaries

from router_ml.gateway.config import MAX_NICE, Limits

TARGET_P99_SHIFT_MS = 20.0
HEAVY_KINDS = ("messages", "keys")
RESULTS_DIR = Path(__file__).resolve().parent / "results" / "gateway"


def heavy_body(kind: str) -> bytes:
    """The heavy request body of ``kind`` (see the module doc), under the 4 MiB body limit."""
    if kind == "messages":
        text = "please add these two numbers and explain each step of the sum " * 6
        roles = ("user", "assistant")
        messages = [{"role": roles[i % 2], "content": f"{i}: {text}"} for i in range(10_000)]
        body: dict[str, Any] = {"model": "auto", "messages": messages}
    else:
        body = {
            "model": "auto",
            "messages": [{"role": "user", "content": "What is the capital of Australia?"}],
            "x_client_context": {f"k{i}": i for i in range(230_000)},
        }
    return json.dumps(body).encode()


def heavy_client(url: str, kind: str, log_path: Path) -> int:
    """Send the heavy body back to back until terminated; one ``status ms`` line per answer."""
    import httpx

    body = heavy_body(kind)
    stop = False

    def on_term(*_: object) -> None:
        nonlocal stop
        stop = True

    signal.signal(signal.SIGTERM, on_term)
    headers = {"content-type": "application/json"}
    with httpx.Client(timeout=60.0) as client, log_path.open("a") as log:
        while not stop:
            start = time.perf_counter()
            try:
                status = str(client.post(url, content=body, headers=headers).status_code)
            except httpx.HTTPError as exc:
                status = type(exc).__name__
            log.write(f"{status} {(time.perf_counter() - start) * 1e3:.1f}\n")
            log.flush()
    return 0


def heavy_summary(log_paths: list[Path]) -> dict[str, Any]:
    """Heavy requests answered during a phase: how many, their statuses, median latency."""
    statuses: dict[str, int] = {}
    latencies: list[float] = []
    for path in log_paths:
        for line in path.read_text().splitlines():
            status, ms = line.split()
            statuses[status] = statuses.get(status, 0) + 1
            latencies.append(float(ms))
    latencies.sort()
    median = latencies[len(latencies) // 2] if latencies else None
    return {"answered": len(latencies), "statuses": statuses, "p50_ms": median}


def markdown(results: dict[str, Any]) -> str:
    lines = [
        "# Gateway: normal-request latency beside heavy bodies",
        "",
        f"`python benchmarks/gateway_heavy_body.py {' '.join(results['argv'])}`; "
        f"{results['requests']} normal requests per phase from {results['concurrency']} "
        f"clients, {results['rounds']} rounds, answer gates {'on' if results['gates'] else 'off'}; "
        f"{results['cpus']} CPUs shared by client, gateway, "
        "upstream and heavy clients; load average "
        f"{results['load_before']} before, {results['load_after']} after.",
    ]
    if results.get("note"):
        lines += ["", f"Note: {results['note']}"]
    lines += [
        "",
        f"Target: p99 moves by at most {TARGET_P99_SHIFT_MS:g} ms against the round's baseline "
        "(median over rounds; the per-round shifts beside it).",
    ]
    for run in results["runs"]:
        lines += [
            "",
            f"## Worker niceness {run['nice']}",
            "",
            "| phase | normal p50 ms | normal p99 ms | p99 shift ms (median) | per round | target "
            "| heavy answered (p50 ms) | errors |",
            "|---|---:|---:|---:|---|---|---:|---:|",
        ]
        for phase in run["phases"]:
            heavy = phase.get("heavy")
            if not heavy:
                shown = "-"
            elif heavy["p50_ms"] is None:  # none answered while the normal phase ran
                shown = f"{heavy['answered']}"
            else:
                shown = f"{heavy['answered']} ({heavy['p50_ms']:.0f})"
            target = "" if phase["kind"] is None else "met" if phase["met"] else "NOT met"
            rounds = ", ".join(f"{x:+.0f}" for x in phase["p99_shift_ms_by_round"])
            lines.append(
                f"| {phase['name']} | {phase['p50_ms']:.1f} | {phase['p99_ms']:.1f} | "
                f"{phase['p99_shift_ms']:+.1f} | {rounds} | {target} | {shown} | "
                f"{phase['errors']} |"
            )
    return "\n".join(lines) + "\n"


def load_average() -> str:
    return ", ".join(f"{x:.1f}" for x in os.getloadavg())


def heavy_phase(
    url: str, kind: str | None, n_heavy: int, directory: Path, tag: str, requests: int, clients: int
) -> dict[str, Any]:
    """One phase: ``n_heavy`` heavy clients of ``kind`` sending while the normal phase runs."""
    logs = [directory / f"heavy-{tag}-{i}.log" for i in range(n_heavy)]
    heavy = [
        subprocess.Popen([sys.executable, __file__, "--heavy-client", url, str(kind), str(log)])
        for log in logs
    ]
    try:
        for log in logs:  # measure once every heavy client has been answered
            deadline = time.monotonic() + 120.0
            while not (log.exists() and log.read_text()):
                if time.monotonic() > deadline:
                    raise RuntimeError(f"{tag}: no heavy answer within 120 s")
                time.sleep(0.1)
        for log in logs:
            log.write_text("")
        latencies, errors = asyncio.run(gateway_load.run_phase(url, requests, clients, "auto"))
        answered = heavy_summary(logs)  # before the heavy clients' last answers
    finally:
        for process in heavy:
            process.terminate()
        for process in heavy:
            process.wait(timeout=90)
    return {**gateway_load.summary(latencies), "errors": errors, "heavy": answered}


def combine(
    name: str, kind: str | None, by_round: list[dict[str, Any]], shifts: list[float]
) -> dict[str, Any]:
    """A phase over the rounds: medians of its latencies and of its per-round p99 shifts."""
    phase: dict[str, Any] = {"name": name, "kind": kind}
    for key in ("p50_ms", "p90_ms", "p99_ms"):
        phase[key] = round(statistics.median(r[key] for r in by_round), 3)
    phase["errors"] = sum(r["errors"] for r in by_round)
    phase["p99_shift_ms_by_round"] = [round(x, 3) for x in shifts]
    phase["p99_shift_ms"] = round(statistics.median(shifts), 3)
    phase["met"] = phase["p99_shift_ms"] <= TARGET_P99_SHIFT_MS
    if kind is not None:
        answered = [r["heavy"] for r in by_round]
        p50s = [a["p50_ms"] for a in answered if a["p50_ms"] is not None]
        phase["heavy"] = {
            "answered": sum(a["answered"] for a in answered),
            "p50_ms": statistics.median(p50s) if p50s else None,
        }
    return phase


def measure(args: argparse.Namespace, nice: int, directory: Path) -> dict[str, Any]:
    """Every phase ``args.rounds`` times against a gateway whose worker runs at ``nice``."""
    upstream_port, gateway_port = gateway_load.free_port(), gateway_load.free_port()
    model_dir = os.path.abspath(args.model_dir) if args.model_dir else None
    config = gateway_load.write_config(
        directory, upstream_port, gateway_port, model_dir, gates=args.gates
    )
    import yaml

    spec = yaml.safe_load(config.read_text())
    spec["limits"] = {"process_worker_nice": nice}
    config.write_text(yaml.safe_dump(spec))
    serve = [sys.executable, "-m", "router_ml.cli", "serve", "--config", str(config)]
    upstream = [sys.executable, gateway_load.__file__, "--serve-upstream", str(upstream_port)]
    processes = [subprocess.Popen(upstream)]
    try:
        processes.append(subprocess.Popen([*serve, "--log-level", "warning"]))
        gateway_load.wait_for(f"http://127.0.0.1:{upstream_port}/", processes[0])
        gateway_load.wait_for(f"http://127.0.0.1:{gateway_port}/healthz", processes[1])
        url = f"http://127.0.0.1:{gateway_port}/v1/chat/completions"
        phases: list[tuple[str, str | None, int]] = [("baseline", None, 0)]
        phases += [(f"{kind} x{n}", kind, n) for kind in args.heavy for n in (1, 2)]
        asyncio.run(gateway_load.run_phase(url, 200, args.concurrency, "auto"))  # warm up
        by_phase: dict[str, list[dict[str, Any]]] = {name: [] for name, _, _ in phases}
        shifts: dict[str, list[float]] = {name: [] for name, _, _ in phases}
        for round_index in range(args.rounds):
            baseline = None
            for name, kind, n_heavy in phases:
                tag = f"{nice}-{round_index}-{name.replace(' ', '')}"
                result = heavy_phase(
                    url, kind, n_heavy, directory, tag, args.requests, args.concurrency
                )
                baseline = result["p99_ms"] if baseline is None else baseline
                by_phase[name].append(result)
                shifts[name].append(result["p99_ms"] - baseline)
                print(json.dumps({"nice": nice, "round": round_index, "phase": name, **result}))
    finally:
        gateway_load.stop_processes(processes)
    return {
        "nice": nice,
        "phases": [combine(name, kind, by_phase[name], shifts[name]) for name, kind, _ in phases],
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
        epilog="Each round: baseline, then 1 and 2 heavy clients per --heavy kind; each phase's "
        "p99 shift is against its round's baseline, the median over rounds is reported.",
    )
    parser.add_argument(
        "--requests", type=int, default=1000, help="normal requests per phase (default 1000)"
    )
    parser.add_argument(
        "--concurrency", type=int, default=8, help="concurrent normal clients (default 8)"
    )
    parser.add_argument("--rounds", type=int, default=3, help="rounds of all phases (default 3)")
    parser.add_argument(
        "--heavy",
        nargs="+",
        choices=HEAVY_KINDS,
        default=list(HEAVY_KINDS),
        help="heavy body kinds to measure (default: both)",
    )
    parser.add_argument(
        "--nice",
        nargs="+",
        type=int,
        default=[0, Limits.process_worker_nice],
        help="limits.process_worker_nice values to compare, one gateway each (default: 0 and "
        f"the default, {Limits.process_worker_nice})",
    )
    parser.add_argument(
        "--gates",
        action="store_true",
        help="turn the structural answer gates on (their request fields come back from the worker)",
    )
    parser.add_argument("--model-dir", help="model directory (default: the shipped model)")
    parser.add_argument(
        "--out-dir", default=str(RESULTS_DIR), help="where heavy_body.json and .md are written"
    )
    parser.add_argument("--note", help="a note for the results (e.g. the machine was shared)")
    parser.add_argument("--heavy-client", nargs=3, metavar="ARG", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.heavy_client:
        url, kind, log = args.heavy_client
        return heavy_client(url, kind, Path(log))
    if not 1 <= args.concurrency <= 256 or not 1 <= args.requests <= 100_000:
        parser.error("--concurrency must be in [1, 256] and --requests in [1, 100000]")
    if not 1 <= args.rounds <= 20 or not all(0 <= n <= MAX_NICE for n in args.nice):
        parser.error(f"--rounds must be in [1, 20] and --nice values in [0, {MAX_NICE}]")
    results: dict[str, Any] = {
        "argv": sys.argv[1:] if argv is None else argv,
        "requests": args.requests,
        "concurrency": args.concurrency,
        "rounds": args.rounds,
        "gates": args.gates,
        "cpus": os.cpu_count(),
        "load_before": load_average(),
        "note": args.note,
        "target_p99_shift_ms": TARGET_P99_SHIFT_MS,
        "runs": [],
    }
    for nice in args.nice:
        with tempfile.TemporaryDirectory(prefix="router-ml-heavy-") as tmp:
            results["runs"].append(measure(args, nice, Path(tmp)))
    results["load_after"] = load_average()
    results["error_kinds"] = dict(gateway_load.ERROR_KINDS)
    out = Path(args.out_dir)
    out.mkdir(parents=True, exist_ok=True)
    (out / "heavy_body.json").write_text(json.dumps(results, indent=2) + "\n")
    (out / "heavy_body.md").write_text(markdown(results))
    print(markdown(results))
    errors = sum(p["errors"] for run in results["runs"] for p in run["phases"])
    return 0 if errors == 0 else 1


if __name__ == "__main__":
    sys.exit(main())
