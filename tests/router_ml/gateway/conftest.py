"""Gateway fixtures: a fake upstream and the real gateway under uvicorn, both on 127.0.0.1."""

from __future__ import annotations

import json
import socket
import threading
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

pytest.importorskip("starlette")
pytest.importorskip("uvicorn")

import uvicorn
from fake_upstream import FakeUpstream

from router_ml.gateway.app import Gateway
from router_ml.gateway.config import GatewayConfig, Limits
from router_ml.gateway.server import server_config

TIER_MODELS = {"economy": "eco-model", "standard": "std-model", "premium": "pro-model"}
FORCE_RULES = [
    {"name": f"force-{tier}", "match": {"metadata": {"force": tier}}, "tier": tier}
    for tier in TIER_MODELS
]
"""Rules that pin a request's tier through ``metadata.force``, so fault tests do not depend on
what the model would decide."""


def config_dict(
    upstream_url: str, model_dir: Path, log_path: Path, **overrides: Any
) -> dict[str, Any]:
    """A gateway config for tests: one fake upstream serving all three tiers, short timeouts."""
    config: dict[str, Any] = {
        "server": {"host": "127.0.0.1", "port": 0},
        "router": {
            "model_dir": str(model_dir),
            "policy": {"rules": FORCE_RULES, "default": {"tier": "auto"}},
        },
        "aliases": ["auto", "router-ml"],
        "upstreams": {"fake": {"base_url": upstream_url}},
        "tiers": {
            tier: {"upstream": "fake", "model": model} for tier, model in TIER_MODELS.items()
        },
        "passthrough": {"upstream": "fake", "models": ["some-real-model", "outside-model"]},
        "limits": {
            "connect_timeout_s": 1.0,
            "first_byte_timeout_s": 1.0,
            "idle_timeout_s": 1.0,
            "total_timeout_s": 5.0,
        },
        "decision_log": {"path": str(log_path)},
    }
    config.update(overrides)
    return config


@dataclass
class RunningGateway:
    """A gateway served by uvicorn on a loopback port, with its log and metrics reachable."""

    gateway: Gateway
    base_url: str
    log_path: Path

    def log_lines(self) -> list[dict[str, Any]]:
        if not self.log_path.exists():
            return []
        return [json.loads(line) for line in self.log_path.read_text().splitlines() if line]


class ServerThread:
    """uvicorn in a daemon thread on an already-bound loopback socket; stops on ``stop``."""

    def __init__(self, app: Any, limits: Limits | None = None) -> None:
        self.socket = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self.socket.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.socket.bind(("127.0.0.1", 0))
        self.port = self.socket.getsockname()[1]
        config = server_config(app, limits or Limits(), log_level="warning", lifespan="on")
        self.server = uvicorn.Server(config)
        self.thread = threading.Thread(
            target=self.server.run, kwargs={"sockets": [self.socket]}, daemon=True
        )

    def start(self) -> ServerThread:
        self.thread.start()
        for _ in range(500):
            if self.server.started:
                return self
            if not self.thread.is_alive():
                break
            threading.Event().wait(0.01)
        raise RuntimeError("uvicorn did not start")

    def stop(self) -> None:
        self.server.should_exit = True
        self.thread.join(timeout=10)
        self.socket.close()


@pytest.fixture(scope="session")
def upstream() -> Iterator[FakeUpstream]:
    with FakeUpstream(stall_s=3.0) as fake:
        yield fake


@pytest.fixture()
def fake(upstream: FakeUpstream) -> FakeUpstream:
    """The session's fake upstream with no leftover plans or recorded requests."""
    upstream.reset()
    return upstream


def start_gateway(
    config: dict[str, Any], tmp_path: Path, environ: dict[str, str] | None = None
) -> tuple[RunningGateway, ServerThread]:
    """Serve ``config`` on a loopback port; the caller stops the returned server."""
    gateway = Gateway(GatewayConfig.from_dict(config, base_dir=tmp_path, environ=environ or {}))
    server = ServerThread(gateway.app, gateway.config.limits).start()
    running = RunningGateway(
        gateway, f"http://127.0.0.1:{server.port}", Path(config["decision_log"]["path"])
    )
    return running, server


@pytest.fixture()
def gateway(fake: FakeUpstream, tiny_model_dir: Path, tmp_path: Path) -> Iterator[RunningGateway]:
    running, server = start_gateway(
        config_dict(fake.base_url, tiny_model_dir, tmp_path / "decisions.jsonl"), tmp_path
    )
    try:
        yield running
    finally:
        server.stop()
