"""Where a request body is prepared (``prepare``): inline, in a thread, or in a worker process.

By size (``limits``):

- up to ``inline_body_bytes`` (the common case): inline, a hand-off would cost more than the work;
- above ``process_body_bytes``: in one of ``process_workers`` worker processes, each with its
  own router loaded from the same model and policy. Decoding a 4 MB JSON holds the GIL for tens
  of milliseconds in any thread of the gateway's process, so only another process keeps that
  off the event loop's latency; the body goes there as bytes and only the compact
  :class:`~router_ml.gateway.prepare.Preparation` comes back (the decision, the log fields,
  the forwarded body's splice plan). At most ``process_queue`` more heavy bodies wait for a
  worker; one more is refused with a 503 (``server_busy``, ``retry-after: 1``);
- in between, or when the process pool is off (``process_workers: 0``, a gateway given its
  router object, which a worker could not load), broken (a worker died or failed to start:
  logged once, then threads for good) or the whole decoded body is needed afterwards (shadow
  replays, logged prompts, a user gate or answer check: ``Ask.keep_payload`` without
  ``payload_fields``): in ``route_workers`` threads, which keeps the event loop free but not the
  GIL. The built-in answer gates need a few fields (``AnswerGates.request_fields``), which a
  worker process returns beside the preparation.

The pool is created in the app's lifespan and its worker starts with the first heavy body
(importing the gateway and loading the model take about a second, once).
"""

from __future__ import annotations

import asyncio
import functools
import logging
import multiprocessing
import threading
from concurrent.futures import Future, ProcessPoolExecutor
from concurrent.futures.process import BrokenProcessPool

import anyio
import anyio.to_thread

from router_ml.gateway.answers import Rejected, error_body
from router_ml.gateway.config import GatewayConfig
from router_ml.gateway.prepare import Ask, Preparation, Preparer, prepare_in_worker, start_worker
from router_ml.gateway.prom import GatewayMetrics

logger = logging.getLogger("router_ml.gateway")


class Workers:
    """Runs ``preparer.prepare`` where a body's size says (see the module doc).

    Parameters
    ----------
    config : GatewayConfig
    preparer : Preparer
        The gateway process's own preparer (inline and threads).
    metrics : GatewayMetrics
        Counts the refused heavy bodies (``errors{kind="busy"}``) and a broken pool
        (``errors{kind="worker_pool"}``).
    processes : bool
        Whether worker processes may be used (they load the router from ``config``).
    """

    def __init__(
        self, config: GatewayConfig, preparer: Preparer, metrics: GatewayMetrics, processes: bool
    ) -> None:
        self.limits, self.preparer, self.metrics = config.limits, preparer, metrics
        self._config = config
        self._use_processes = processes and config.limits.process_workers > 0
        self._pool: ProcessPoolExecutor | None = None
        self._admitted = 0
        """Heavy bodies in a worker or waiting for one (``_lock``: released in another thread)."""
        self._lock = threading.Lock()
        self._threads = anyio.CapacityLimiter(config.limits.route_workers)

    @property
    def admitted(self) -> int:
        """Heavy bodies in a worker process or waiting for one."""
        with self._lock:
            return self._admitted

    def start(self) -> None:
        """Create the process pool (its worker starts with the first heavy body)."""
        if not self._use_processes:
            return
        key = self.preparer.repeat_key
        self._pool = ProcessPoolExecutor(
            self.limits.process_workers,
            multiprocessing.get_context("spawn"),
            initializer=start_worker,
            initargs=(self._config, key),
        )

    async def aclose(self) -> None:
        """Stop the workers; a body one of them is still preparing is waited for."""
        pool, self._pool = self._pool, None
        if pool is not None:
            shutdown = functools.partial(pool.shutdown, wait=True, cancel_futures=True)
            await anyio.to_thread.run_sync(shutdown)

    async def run(self, raw: bytes, ask: Ask) -> Preparation:
        """The preparation of ``raw``, done inline, in a worker process or in a thread."""
        size = len(raw)
        if size <= self.limits.inline_body_bytes:
            return self.preparer.prepare(raw, ask)
        pool = self._pool
        whole_payload = ask.keep_payload and ask.payload_fields is None
        if pool is not None and size > self.limits.process_body_bytes and not whole_payload:
            prepared = await self._in_process(pool, raw, ask)
            if prepared is not None:
                return prepared
        return await anyio.to_thread.run_sync(
            self.preparer.prepare, raw, ask, limiter=self._threads
        )

    async def _in_process(
        self, pool: ProcessPoolExecutor, raw: bytes, ask: Ask
    ) -> Preparation | None:
        """The preparation from a worker process; None when the pool broke (use a thread)."""
        if self.admitted >= self.limits.process_workers + self.limits.process_queue:
            self.metrics.errors.inc("busy")
            raise Rejected(
                503,
                "busy",
                error_body(
                    "too many large request bodies are being prepared; retry shortly",
                    kind="server_error",
                    code="server_busy",
                ),
                {"retry-after": "1"},
            )
        try:
            future = pool.submit(prepare_in_worker, raw, ask)
        except Exception as exc:  # broken, shut down, or a worker that cannot be started
            self._broken(pool, exc)
            return None
        with self._lock:
            self._admitted += 1
        future.add_done_callback(self._release)  # when the worker is done, even if we are not
        try:
            return await asyncio.wrap_future(future)
        except BrokenProcessPool as exc:
            self._broken(pool, exc)
            return None

    def _release(self, _future: Future[Preparation]) -> None:
        """Called in the pool's thread when a body leaves its worker (or its queue)."""
        with self._lock:
            self._admitted -= 1

    def _broken(self, pool: ProcessPoolExecutor, exc: BaseException) -> None:
        """A worker died or could not start: threads from now on (logged and counted once)."""
        if self._pool is not pool:
            return
        self._pool = None
        logger.error(
            "the worker process pool failed (%s: %s); large bodies are prepared in threads "
            "from now on",
            type(exc).__name__,
            exc,
        )
        self.metrics.errors.inc("worker_pool")
        pool.shutdown(wait=False, cancel_futures=True)
