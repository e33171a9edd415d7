"""Bounded load: 2,000 requests from 32 concurrent clients through the gateway, none lost.

Latency is measured by ``benchmarks/gateway_load.py`` in separate processes; this test checks
correctness under concurrency only (no timing assertions): every request succeeds, reaches the
upstream once, and has exactly one decision-log line.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from conftest import RunningGateway, config_dict, start_gateway
from fake_upstream import FakeUpstream

N_REQUESTS = 2000
CONCURRENCY = 32


@pytest.fixture()
def gateway(fake: FakeUpstream, tiny_model_dir: Path, tmp_path: Path) -> Iterator[RunningGateway]:
    """The gateway with production timeouts: a busy CI machine must not turn into 504s here."""
    limits = {
        "connect_timeout_s": 30.0,
        "first_byte_timeout_s": 60.0,
        "idle_timeout_s": 60.0,
        "total_timeout_s": 120.0,
    }
    config = config_dict(fake.base_url, tiny_model_dir, tmp_path / "decisions.jsonl", limits=limits)
    running, server = start_gateway(config, tmp_path)
    try:
        yield running
    finally:
        server.stop()


def test_two_thousand_requests_from_32_clients(gateway: RunningGateway, fake: FakeUpstream) -> None:
    url = gateway.base_url + "/v1/chat/completions"
    statuses: list[int] = []
    ids: list[str] = []

    async def run() -> None:
        jobs = iter(range(N_REQUESTS))
        # the pool's idle expiry (5 s) is below the gateway's keep-alive: no reuse races a close
        limits = httpx.Limits(max_connections=CONCURRENCY)
        async with httpx.AsyncClient(limits=limits, timeout=30.0) as client:

            async def worker() -> None:
                for index in jobs:
                    response = await client.post(
                        url,
                        json={
                            "model": "auto",
                            "stream": index % 4 == 0,
                            "messages": [
                                {"role": "user", "content": f"request {index}: add 2 and 3"}
                            ],
                        },
                    )
                    await response.aread()
                    statuses.append(response.status_code)
                    ids.append(response.headers["x-router-request-id"])

            await asyncio.gather(*(worker() for _ in range(CONCURRENCY)))

    asyncio.run(run())
    assert statuses == [200] * N_REQUESTS
    assert len(fake.requests) == N_REQUESTS
    lines = gateway.log_lines()
    assert sorted(line["id"] for line in lines) == sorted(ids) and len(set(ids)) == N_REQUESTS
    assert all(line["outcome"] == "ok" for line in lines)
