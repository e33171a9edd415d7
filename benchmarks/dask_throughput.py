"""Batch routing throughput: ``Router.route_batch`` in memory vs ``route-dataset`` on Dask workers.

The same requests (the shared request shapes, or any JSONL given) are split into partition files.
Three ways of routing them all, each timed ``--repeats`` times after a warm-up, median reported:

1. ``route_batch``: the requests already parsed from JSON in memory, routed in chunks of 512 by
   one ``Router`` in this process (the floor: no file I/O, no scheduling);
2. ``route-dataset`` in this process: read each partition file, route, write its decisions file;
3. ``route-dataset`` on a Dask ``LocalCluster`` of N single-threaded worker processes (1, then
   ``--workers``), cluster started before timing, the router loaded on each worker in the
   warm-up: what one worker delivers, and how it scales.

Throughput per worker = requests / wall time / workers. The machine is shared, so compare ratios
within one run, not absolute numbers across runs.

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


def timed(function, repeats: int) -> float:
    function()  # warm-up
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        function()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


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

    rows: list[tuple[str, int, float]] = [
        ("route_batch, in memory, this process", 1, timed(in_memory, args.repeats))
    ]
    with tempfile.TemporaryDirectory() as tmp:
        paths = write_partitions(lines, Path(tmp), args.partitions)
        out_dir = Path(tmp) / "out"
        out_dir.mkdir()
        function = functools.partial(
            route_partition, settings=RouterSettings(), out_dir=str(out_dir)
        )
        rows.append(
            (
                "route-dataset, this process",
                1,
                timed(lambda: map_partitions(function, paths), args.repeats),
            )
        )
        for workers in sorted({1, args.workers}):
            with (
                LocalCluster(
                    n_workers=workers, threads_per_worker=1, processes=True, dashboard_address=":0"
                ) as cluster,
                Client(cluster) as client,
            ):

                def on_dask(client: Client = client) -> None:
                    futures = client.map(function, paths, pure=False)
                    client.gather(futures)

                rows.append(
                    (
                        f"route-dataset on Dask, {workers} worker(s)",
                        workers,
                        timed(on_dask, args.repeats),
                    )
                )

    base = n / rows[0][2]
    table = [
        f"{n} requests ({', '.join(p.name for p in args.inputs)}) in {args.partitions} "
        f"partitions; median of {args.repeats} runs after a warm-up.",
        "",
        "| path | workers | wall s | requests/s | per worker | per worker vs route_batch |",
        "|---|---:|---:|---:|---:|---:|",
    ]
    for name, workers, seconds in rows:
        per_worker = n / seconds / workers
        table.append(
            f"| {name} | {workers} | {seconds:.2f} | {n / seconds:,.0f} | {per_worker:,.0f} "
            f"| {base / per_worker:.2f}x slower |"
            if per_worker < base
            else f"| {name} | {workers} | {seconds:.2f} | {n / seconds:,.0f} | {per_worker:,.0f} "
            f"| {per_worker / base:.2f}x faster |"
        )
    text = "\n".join(table) + "\n"
    print(text)
    if args.out:
        args.out.write_text(text, encoding="utf-8")
    return 0


if __name__ == "__main__":
    sys.exit(main())
