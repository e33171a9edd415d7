"""Batch routing throughput: ``Router.route_batch`` in memory vs ``route-dataset`` on Dask workers.

The same requests (the shared request shapes, or any JSONL given) are split into partition files.
Four ways of routing them all, each timed ``--repeats`` times after a warm-up, median reported:

1. ``route_batch``: the requests already parsed from JSON in memory, routed in chunks of 512 by
   one ``Router`` in this process (the floor: no file I/O, no scheduling); and the same from the
   JSONL lines (each decoded first: what routing a file in one process costs at least);
2. ``route-dataset`` in this process: read each partition file, route, write its decisions file;
3. ``route-dataset`` on a Dask ``LocalCluster`` of N single-threaded worker processes (1, then
   ``--workers``), cluster started before timing, the router loaded on each worker in the
   warm-up: what one worker delivers, and how it scales.

The paths take turns round by round. Throughput per worker = requests / wall time / workers; on
a shared machine the CPU time (this process plus the workers, ``time.process_time``) is the
steadier measure of the work each path does per request. Compare ratios within one run.

    python benchmarks/dask_throughput.py [--partitions 8] [--workers 2] [--repeats 3] [FILES...]
"""

from __future__ import annotations

import argparse
import functools
import gzip
import json
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
DEFAULT_INPUTS = sorted((REPO.parent / "shared" / "data" / "requests").glob("*.jsonl.gz"))


def read_lines(paths: list[Path]) -> list[str]:
    lines: list[str] = []
    for path in paths:
        opener = gzip.open if path.name.endswith(".gz") else open
        with opener(path, "rt", encoding="utf-8") as handle:
            lines += [line for line in handle if line.strip()]
    return lines


def write_partitions(lines: list[str], directory: Path, n: int) -> list[Path]:
    """Round-robin the lines into ``n`` files so every partition has the same mix."""
    paths = [directory / f"part-{k:03d}.jsonl" for k in range(n)]
    for k, path in enumerate(paths):
        path.write_text("".join(lines[k::n]), encoding="utf-8")
    return paths


def measure(
    paths: dict[str, Callable[[], float]], repeats: int
) -> dict[str, list[tuple[float, float]]]:
    """(wall s, CPU s) of every path per round; the paths take turns, so a burst of load on the
    shared machine hits all of them alike. Each callable runs once to warm up, then returns the
    CPU seconds it used (this process, plus the Dask workers')."""
    for run in paths.values():
        run()
    results: dict[str, list[tuple[float, float]]] = {name: [] for name in paths}
    for _ in range(repeats):
        for name, run in paths.items():
            start = time.perf_counter()
            cpu = run()
            results[name].append((time.perf_counter() - start, cpu))
    return results


def cpu_here(function: Callable[[], object]) -> Callable[[], float]:
    def run() -> float:
        start = time.process_time()
        function()
        return time.process_time() - start

    return run


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("inputs", nargs="*", type=Path, default=DEFAULT_INPUTS)
    parser.add_argument("--partitions", type=int, default=8)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--out", type=Path, help="also write the table as markdown here")
    args = parser.parse_args()
    if not args.inputs:
        print(
            "no inputs (the shared data is not beside the repo); pass JSONL files", file=sys.stderr
        )
        return 2

    from dask.distributed import Client, LocalCluster

    from router_ml.router import Router
    from router_ml_lab.measure.batch import route_partition
    from router_ml_lab.measure.runner import map_partitions
    from router_ml_lab.measure.scan import CHUNK, RouterSettings

    lines = read_lines(args.inputs)
    records = [json.loads(line) for line in lines]
    requests = [r.get("request", r) for r in records]
    n = len(requests)
    router = Router.load()

    def in_memory() -> None:
        for start in range(0, n, CHUNK):
            router.route_batch(requests[start : start + CHUNK])

    def from_lines() -> None:
        for start in range(0, n, CHUNK):
            decoded = [json.loads(line) for line in lines[start : start + CHUNK]]
            router.route_batch([r.get("request", r) for r in decoded])

    with tempfile.TemporaryDirectory() as tmp:
        parts = write_partitions(lines, Path(tmp), args.partitions)
        out_dir = Path(tmp) / "out"
        out_dir.mkdir()
        function = functools.partial(
            route_partition, settings=RouterSettings(), out_dir=str(out_dir)
        )
        paths: dict[str, Callable[[], float]] = {
            "route_batch, in memory, this process": cpu_here(in_memory),
            "route_batch on the JSONL lines (decode + route), this process": cpu_here(from_lines),
            "route-dataset, this process": cpu_here(lambda: map_partitions(function, parts)),
        }
        clusters = []
        try:
            for workers in sorted({1, args.workers}):
                cluster = LocalCluster(
                    n_workers=workers, threads_per_worker=1, processes=True, dashboard_address=":0"
                )
                client = Client(cluster)
                clusters.append((cluster, client))

                def on_dask(client: Client = client) -> float:
                    before = sum(client.run(time.process_time).values())
                    here = time.process_time()
                    client.gather(client.map(function, parts, pure=False))
                    after = sum(client.run(time.process_time).values())
                    return after - before + time.process_time() - here

                paths[f"route-dataset on Dask, {workers} worker(s)"] = on_dask
            results = measure(paths, args.repeats)
        finally:
            for cluster, client in clusters:
                client.close()
                cluster.close()

    workers_of = {
        name: int(name.split(", ")[-1].split()[0]) if "Dask" in name else 1 for name in results
    }
    base_name = "route_batch, in memory, this process"
    base_wall = statistics.median(w for w, _ in results[base_name])
    base_cpu = statistics.median(c for _, c in results[base_name])
    table = [
        f"{n} requests ({', '.join(p.name for p in args.inputs)}) in {args.partitions} "
        f"partitions; medians of {args.repeats} interleaved rounds after a warm-up. CPU = this "
        "process plus the Dask workers (the machine is shared: wall time depends on the load, "
        "CPU time much less).",
        "",
        "| path | workers | wall s | requests/s (wall) | per worker (wall) | CPU s "
        "| requests per CPU-second | vs route_batch (wall per worker / CPU) |",
        "|---|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for name, rows in results.items():
        workers = workers_of[name]
        wall = statistics.median(w for w, _ in rows)
        cpu = statistics.median(c for _, c in rows)
        table.append(
            f"| {name} | {workers} | {wall:.2f} | {n / wall:,.0f} | {n / wall / workers:,.0f} "
            f"| {cpu:.2f} | {n / cpu:,.0f} | {wall * workers / base_wall:.2f}x / "
            f"{cpu / base_cpu:.2f}x |"
        )
    text = "\n".join(table) + "\n"
    print(text)
    if args.out:
        args.out.write_text(text, encoding="utf-8")
    return 0


if __name__ == "__main__":
    sys.exit(main())
