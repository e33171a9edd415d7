"""``router-ml serve``: config check, clear errors, and a real server process behind the SDK."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest
import yaml
from conftest import config_dict
from fake_upstream import FakeUpstream

from router_ml.cli import main

openai = pytest.importorskip("openai")
REPO = Path(__file__).resolve().parents[3]


def write_config(path: Path, config: dict) -> Path:
    path.write_text(yaml.safe_dump(config))
    return path


def test_check_validates_and_exits(
    fake: FakeUpstream, tiny_model_dir: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    config = write_config(
        tmp_path / "gw.yaml", config_dict(fake.base_url, tiny_model_dir, tmp_path / "d.jsonl")
    )
    assert main(["serve", "--config", str(config), "--check"]) == 0
    out = capsys.readouterr().out
    assert "tier economy: eco-model @ fake" in out and str(tiny_model_dir.resolve()) in out
    assert f"upstream fake: {fake.base_url}, no key" in out
    assert f"decision log: {(tmp_path / 'd.jsonl').resolve()}" in out
    assert "client auth: OFF" in out and "WARNING" not in out


def test_bad_config_is_a_clear_error(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    config = write_config(tmp_path / "gw.yaml", {"upstreams": {"x": {"base_url": "nope"}}})
    assert main(["serve", "--config", str(config), "--check"]) == 2
    assert "upstreams.x.base_url" in capsys.readouterr().err


def test_serve_process_answers_the_openai_sdk(
    fake: FakeUpstream, tiny_model_dir: Path, tmp_path: Path
) -> None:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    config = config_dict(fake.base_url, tiny_model_dir, tmp_path / "d.jsonl")
    config["server"]["port"] = port
    config["upstreams"]["fake"]["api_key_env"] = "FAKE_UPSTREAM_KEY"
    path = write_config(tmp_path / "gw.yaml", config)
    env = {**os.environ, "FAKE_UPSTREAM_KEY": "sk-from-env"}
    process = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "router_ml.cli",
            "serve",
            "--config",
            str(path),
            "--log-level",
            "warning",
        ],
        cwd=REPO,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
    )
    try:
        base = f"http://127.0.0.1:{port}"
        for _ in range(600):  # up to 60 s for a cold start on a busy machine
            if process.poll() is not None:
                pytest.fail(f"serve exited: {process.stdout.read().decode()}")
            try:
                if httpx.get(base + "/healthz", timeout=1.0).status_code == 200:
                    break
            except httpx.TransportError:
                time.sleep(0.1)
        sdk = openai.OpenAI(base_url=base + "/v1", api_key="client", max_retries=0)
        completion = sdk.chat.completions.create(
            model="auto",
            messages=[{"role": "user", "content": "hello"}],
            metadata={"force": "economy"},
        )
        assert completion.choices[0].message.content == "[eco-model] hello"
        assert fake.requests[-1]["headers"]["authorization"] == "Bearer sk-from-env"
    finally:
        process.terminate()
        process.wait(timeout=20)
    assert (tmp_path / "d.jsonl").read_text().count("\n") == 1
