"""Run a per-partition function here or on Dask, results in partition order either way.

The single-process path and the Dask path call the same function on the same partitions and
return its results in the order of the partitions, so everything computed from them afterwards
is identical (not merely close: no floating-point sum is reordered). ``scheduler=None`` runs in
this process; ``"local"`` starts a ``LocalCluster``; anything else is a scheduler address
(``tcp://host:8786``). Dask comes from the ``dask`` extra and is imported only when asked for.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any, TypeVar

from router_ml.progress import Progress

T = TypeVar("T")

LOCAL = "local"
DASK_MISSING = (
    "running on Dask needs the dask extra: pip install 'router-ml[dask]' "
    "(dask[distributed], pyarrow)"
)


class DaskUnavailable(RuntimeError):
    """``--dask`` was asked for but the ``dask`` extra is not installed."""


def map_partitions(
    function: Callable[[Path], T],
    paths: Sequence[Path],
    scheduler: str | None = None,
    workers: int | None = None,
    processes: bool = True,
    label: str = "partitions",
) -> list[T]:
    """``[function(p) for p in paths]``, on Dask when ``scheduler`` is given.

    Parameters
    ----------
    function : callable
        Picklable (a module-level function or a ``functools.partial`` of one).
    scheduler : str or None
        None: this process; ``"local"``: a LocalCluster of ``workers`` single-threaded
        workers (default: one per core); else the address of a running scheduler.
    processes : bool
        LocalCluster workers as processes (True) or threads of this process (False, for tests).
    """
    if scheduler is None:
        with Progress(len(paths), label) as progress:
            results = []
            for path in paths:
                results.append(function(path))
                progress.update()
            return results
    try:
        from dask.distributed import Client, LocalCluster, as_completed
    except ModuleNotFoundError as exc:
        raise DaskUnavailable(DASK_MISSING) from exc
    cluster = None
    if scheduler == LOCAL:
        cluster = LocalCluster(
            n_workers=workers or os.cpu_count() or 1,
            threads_per_worker=1,
            processes=processes,
            dashboard_address=":0",
        )
        client = Client(cluster)
    else:
        client = Client(scheduler)
    try:
        futures = client.map(function, list(paths), pure=False)
        with Progress(len(paths), f"{label} on dask") as progress:
            for _ in as_completed(futures):
                progress.update()
        return list(client.gather(futures))
    finally:
        client.close()
        if cluster is not None:
            cluster.close()


def add_dask_arguments(parser: Any) -> None:
    """``--dask [ADDRESS]`` and ``--workers``: every command that accepts a partitioned dataset."""
    parser.add_argument(
        "--dask",
        nargs="?",
        const=LOCAL,
        metavar="ADDRESS",
        help="run on Dask: a LocalCluster when given alone, else the scheduler at ADDRESS "
        "(tcp://host:8786); needs the dask extra. Results equal the single-process run.",
    )
    parser.add_argument(
        "--workers",
        type=int,
        metavar="N",
        help="LocalCluster workers, one thread each (default: one per core)",
    )
