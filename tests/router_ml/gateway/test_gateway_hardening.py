"""Hostile clients and files: every request gets an answer and one log line, none steers or stalls.

Real sockets on 127.0.0.1 throughout: the slow-client tests speak raw HTTP/1.1 to uvicorn.
"""

from __future__ import annotations

import json
import multiprocessing
import os
import socket
import threading
import time
import tracemalloc
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from concurrent.futures.process import BrokenProcessPool
from pathlib import Path
from typing import Any

import httpx
import pytest
from conftest import RunningGateway, config_dict, start_gateway
from fake_upstream import FakeUpstream
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from router_ml.gateway.config import GatewayConfig, GatewayConfigError

CHAT = "/v1/chat/completions"


def post(gateway: RunningGateway, body: Any, path: str = CHAT, **kwargs: Any) -> httpx.Response:
    content = body if isinstance(body, bytes) else json.dumps(body).encode()
    return httpx.post(gateway.base_url + path, content=content, timeout=10.0, **kwargs)


@pytest.mark.parametrize("model", ["eco\r\nx-evil: 1", "a\nb", "nul\x00", "caf\u00e9\u2603", ""])
@pytest.mark.parametrize("stream", [False, True])
def test_model_names_unfit_for_a_header_are_a_400(
    gateway: RunningGateway, fake: FakeUpstream, model: str, stream: bool
) -> None:
    body = {"model": model, "stream": stream, "messages": [{"role": "user", "content": "hi"}]}
    response = post(gateway, body)
    assert response.status_code == 400 and response.json()["error"]["param"] == "model"
    assert fake.requests == []
    (line,) = gateway.log_lines()
    assert line["status"] == 400 and line["outcome"] == "invalid_request"


def test_lone_surrogates_and_huge_values_never_give_a_500(
    gateway: RunningGateway, fake: FakeUpstream
) -> None:
    bodies = [
        b'{"model": "auto", "messages": [{"role": "user", "content": "\\ud800 lone"}]}',
        b'{"model": "auto", "max_tokens": 1e400, "messages": [{"role": "user", "content": "x"}]}',
        b'{"model": "auto", "max_tokens": ' + b"9" * 5000 + b', "messages": []}',
        b'{"model": "auto", "messages": [{"role": "user", "content": [{"type": ["x"]}]}]}',
        b'{"model": "\\ud800", "messages": []}',
    ]
    for body in bodies:
        response = post(gateway, body)
        assert response.status_code < 500, (body[:80], response.text[:200])
    assert len(gateway.log_lines()) == len(bodies)


def test_echoed_client_input_is_truncated(gateway: RunningGateway, fake: FakeUpstream) -> None:
    body = {"model": "auto", "tool_choice": "x" * 3_000_000, "messages": []}
    response = post(gateway, body)
    assert response.status_code == 400 and len(response.content) < 5_000


def test_passthrough_takes_an_allowlist(gateway: RunningGateway, fake: FakeUpstream) -> None:
    body = {"model": "o1-pro", "n": 128, "messages": [{"role": "user", "content": "hi"}]}
    response = post(gateway, body)
    assert response.status_code == 404 and "allowlist" in response.json()["error"]["message"]
    assert fake.requests == []


def test_upstream_key_errors_are_not_relayed_nor_logged_and_headers_are_clean(
    gateway: RunningGateway, fake: FakeUpstream
) -> None:
    fake.plan("eco-model", "401")
    body = {"model": "auto", "metadata": {"force": "economy"}, "messages": [{"role": "user"}]}
    body["messages"][0]["content"] = "hi"
    response = post(gateway, body)
    assert response.status_code == 502
    assert response.json()["error"]["code"] == "upstream_credentials"
    assert "sk-" not in response.text
    assert "sk-live" not in gateway.log_path.read_text()
    ok = post(gateway, body)
    assert ok.status_code == 200
    for name in ("date", "server"):
        assert len(ok.headers.get_list(name)) == 1, name
    assert fake.requests[-1]["body"]["metadata"] == {"force": "economy"}


def test_upstream_router_headers_are_dropped(gateway: RunningGateway, fake: FakeUpstream) -> None:
    fake.plan("eco-model", "401")
    body = {"model": "eco-model", "messages": [{"role": "user", "content": "hi"}]}
    response = post(gateway, body)
    assert response.headers.get_list("x-router-tier") == ["economy"]


def test_other_endpoints_pass_through_to_the_upstream(
    gateway: RunningGateway, fake: FakeUpstream
) -> None:
    body = {"model": "some-real-model", "input": "embed me"}
    response = post(gateway, body, "/v1/embeddings")
    # the fake upstream serves chat only: its 404 proves the request reached /v1/embeddings
    assert response.status_code == 404 and "/v1/embeddings" in response.text
    assert fake.requests[-1]["body"] == body
    assert (
        post(gateway, {"model": "not-allowed", "input": "x"}, "/v1/embeddings").status_code == 404
    )
    assert [line["endpoint"] for line in gateway.log_lines()] == ["embeddings", "embeddings"]


HEAVY_MESSAGES = 10_000
"""The most messages a request may have: with ~390 characters each, a 3.9 MB body."""


def heavy_body() -> dict[str, Any]:
    text = "please add these two numbers and explain each step of the sum " * 6
    roles = ("user", "assistant")
    messages = [{"role": roles[i % 2], "content": f"{i}: {text}"} for i in range(HEAVY_MESSAGES)]
    return {"model": "auto", "messages": messages}


@pytest.fixture()
def thread_gateway(
    fake: FakeUpstream, tiny_model_dir: Path, tmp_path: Path
) -> Iterator[RunningGateway]:
    """A gateway without worker processes: heavy bodies are prepared in its threads."""
    config = config_dict(
        fake.base_url, tiny_model_dir, tmp_path / "d.jsonl", limits={"process_workers": 0}
    )
    running, server = start_gateway(config, tmp_path)
    try:
        yield running
    finally:
        server.stop()


@pytest.mark.parametrize("heavy_path", [CHAT, "/v1/route"])
def test_a_heavy_body_being_routed_in_a_thread_does_not_hold_up_other_requests(
    thread_gateway: RunningGateway,
    fake: FakeUpstream,
    monkeypatch: pytest.MonkeyPatch,
    heavy_path: str,
) -> None:
    """The heavy body's routing is held inside the router until small requests have completed:
    they can only complete if its parsing and routing run off the event loop."""
    gateway = thread_gateway
    body = json.dumps(heavy_body()).encode()
    assert gateway.gateway.config.limits.inline_body_bytes < len(body) < 4 * 1024 * 1024
    routing, release = threading.Event(), threading.Event()
    route = gateway.gateway.router.route_or_safe

    def held_route(request: Any, *args: Any, **kwargs: Any) -> Any:
        if len(request.messages) == HEAVY_MESSAGES:
            routing.set()
            release.wait(30.0)
        return route(request, *args, **kwargs)

    monkeypatch.setattr(gateway.gateway.router, "route_or_safe", held_route)
    with ThreadPoolExecutor(1) as pool:
        heavy = pool.submit(post, gateway, body, heavy_path)
        try:
            assert routing.wait(30.0), "the heavy body never reached the router"
            answers = [post(gateway, SMALL), post(gateway, SMALL, "/v1/route")]
            assert not heavy.done()  # still held in the router while both were answered
        finally:
            release.set()
        assert [a.status_code for a in answers] == [200, 200]
        assert heavy.result(timeout=30.0).status_code == 200
    lines = {line["id"]: line for line in gateway.log_lines()}
    assert len(lines) == 3 and all(line["outcome"] == "ok" for line in lines.values())
    held = lines[heavy.result().headers["x-router-request-id"]]
    assert held["endpoint"] == ("chat.completions" if heavy_path == CHAT else "route")
    assert held["decision"]["tier"] and len(held["features"]) > 0
    assert gateway.gateway.metrics.route_latency.count() == 3


SMALL = {"model": "auto", "messages": [{"role": "user", "content": "add 2 and 3"}]}


@pytest.mark.parametrize("heavy_path", [CHAT, "/v1/route"])
def test_a_heavy_body_is_decoded_and_routed_in_a_worker_process(
    gateway: RunningGateway, fake: FakeUpstream, monkeypatch: pytest.MonkeyPatch, heavy_path: str
) -> None:
    """The gateway's own router refuses the heavy body here: it is answered all the same, with
    the worker's decision, log fields and metrics, and the client's bytes forwarded."""
    messages = json.dumps(heavy_body()["messages"], ensure_ascii=False).encode()
    body = b'{\n  "messages" : ' + messages + b',\n  "model" :  "auto" , "n": 1\n}\n'
    assert gateway.gateway.config.limits.process_body_bytes < len(body)
    route = gateway.gateway.router.route_or_safe

    def small_only(request: Any, *args: Any, **kwargs: Any) -> Any:
        assert len(request.messages) < HEAVY_MESSAGES, "a heavy body routed in the gateway"
        return route(request, *args, **kwargs)

    monkeypatch.setattr(gateway.gateway.router, "route_or_safe", small_only)
    heavy = post(gateway, body, heavy_path)
    assert heavy.status_code == 200 and post(gateway, SMALL).status_code == 200
    lines = {line["id"]: line for line in gateway.log_lines()}
    held = lines[heavy.headers["x-router-request-id"]]
    assert held["outcome"] == "ok" and held["decision"]["tier"] == heavy.headers["x-router-tier"]
    assert len(held["features"]) > 0
    metrics = gateway.gateway.metrics
    assert metrics.route_latency.count() == 2
    assert metrics.decisions.value(held["decision"]["tier"], held["decision"]["source"]) >= 1
    if heavy_path == CHAT:
        sent = fake.requests[0]["raw"]
        model = json.dumps(heavy.headers["x-router-model"]).encode()
        assert sent == body.replace(b'"model" :  "auto"', b'"model" :  ' + model)


def test_the_worker_process_runs_at_the_configured_lower_cpu_priority(
    gateway: RunningGateway,
) -> None:
    """Heavy bodies yield the CPU to the gateway's event loop where cores are short."""
    assert post(gateway, json.dumps(heavy_body()).encode()).status_code == 200
    pool = gateway.gateway.workers._pool
    assert pool is not None
    raised = gateway.gateway.config.limits.process_worker_nice
    assert raised > 0
    assert pool.submit(os.nice, 0).result(timeout=30) == min(os.nice(0) + raised, 19)


def test_with_answer_gates_a_heavy_body_is_still_prepared_in_the_worker_and_gated(
    fake: FakeUpstream, tiny_model_dir: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The built-in gates read a few fields, which the worker returns with its preparation."""
    gates = {"json": True, "tools": True}
    config = config_dict(fake.base_url, tiny_model_dir, tmp_path / "d.jsonl", gates=gates)
    gateway, server = start_gateway(config, tmp_path)
    route = gateway.gateway.router.route_or_safe

    def small_only(request: Any, *args: Any, **kwargs: Any) -> Any:
        assert len(request.messages) < HEAVY_MESSAGES, "a heavy body routed in the gateway"
        return route(request, *args, **kwargs)

    monkeypatch.setattr(gateway.gateway.router, "route_or_safe", small_only)
    body = heavy_body()
    body.update(response_format={"type": "json_object"}, metadata={"force": "economy"})
    fake.plan("eco-model", "broken_json")
    try:
        answer = post(gateway, body)
    finally:
        server.stop()
    assert answer.status_code == 200, answer.text[:300]
    assert answer.headers["x-router-escalated"] == "true"
    assert answer.headers["x-router-tier"] == "standard"
    assert fake.models_called() == ["eco-model", "std-model"]
    (line,) = gateway.log_lines()
    assert [a["gate"]["passed"] for a in line["attempts"]] == [False, True]


def blocking_worker(gateway: RunningGateway, release: Any) -> Any:
    """Occupy the gateway's only worker process until ``release`` (a manager Event) is set."""
    pool = gateway.gateway.workers._pool
    assert pool is not None
    return pool.submit(release.wait, 30.0)


def test_heavy_bodies_wait_for_the_worker_and_beyond_the_queue_get_a_503(
    fake: FakeUpstream, tiny_model_dir: Path, tmp_path: Path
) -> None:
    limits = {"process_workers": 1, "process_queue": 0}
    config = config_dict(fake.base_url, tiny_model_dir, tmp_path / "d.jsonl", limits=limits)
    gateway, server = start_gateway(config, tmp_path)
    body = json.dumps(heavy_body()).encode()
    try:
        with multiprocessing.Manager() as manager, ThreadPoolExecutor(1) as pool:
            release = manager.Event()
            blocker = blocking_worker(gateway, release)
            try:
                waiting = pool.submit(post, gateway, body)
                for _ in range(3000):  # until the gateway holds it for the worker
                    if gateway.gateway.workers.admitted == 1:
                        break
                    threading.Event().wait(0.01)
                assert gateway.gateway.workers.admitted == 1
                refused = post(gateway, body)
                assert post(gateway, SMALL).status_code == 200
                assert not waiting.done()
            finally:
                release.set()
            assert blocker.result(timeout=30.0)
            assert waiting.result(timeout=60.0).status_code == 200
    finally:
        server.stop()
    assert refused.status_code == 503 and refused.headers["retry-after"] == "1"
    assert refused.json()["error"]["code"] == "server_busy"
    lines = {line["id"]: line for line in gateway.log_lines()}
    assert lines[refused.headers["x-router-request-id"]]["outcome"] == "busy"
    assert sorted(line["status"] for line in lines.values()) == [200, 200, 503]
    assert gateway.gateway.metrics.errors.value("busy") == 1


def test_a_dead_worker_leaves_heavy_bodies_to_the_threads(
    gateway: RunningGateway, fake: FakeUpstream, caplog: pytest.LogCaptureFixture
) -> None:
    pool = gateway.gateway.workers._pool
    assert pool is not None
    with pytest.raises(BrokenProcessPool):
        pool.submit(os._exit, 1).result(timeout=60.0)
    body = json.dumps(heavy_body()).encode()
    assert [post(gateway, body).status_code for _ in range(2)] == [200, 200]
    assert gateway.gateway.metrics.errors.value("worker_pool") == 1
    assert len([r for r in caplog.records if "worker process pool failed" in r.message]) == 1
    assert [line["outcome"] for line in gateway.log_lines()] == ["ok", "ok"]


def test_a_heavy_body_sent_again_is_routed_as_a_repeat(
    gateway: RunningGateway, fake: FakeUpstream
) -> None:
    """The worker has no repeat cache: it reports the digest, the gateway asks the cache."""
    body = heavy_body()
    first = post(gateway, body)
    body["metadata"] = {"trace": "another id"}  # not part of the conversation
    again = post(gateway, body)
    assert [first.status_code, again.status_code] == [200, 200]
    lines = {line["id"]: line for line in gateway.log_lines()}
    assert "repeated" not in lines[first.headers["x-router-request-id"]]
    assert lines[again.headers["x-router-request-id"]]["repeated"] is True


@pytest.mark.parametrize("path", [CHAT, "/v1/route"])
def test_a_heavy_invalid_body_is_a_400_from_the_worker_too(
    gateway: RunningGateway, fake: FakeUpstream, path: str
) -> None:
    body = heavy_body()
    body["messages"].append({"role": "user", "content": "one too many"})
    response = post(gateway, body, path)
    assert response.status_code == 400 and response.json()["error"]["param"] == "messages"
    (line,) = gateway.log_lines()
    assert line["status"] == 400 and line["outcome"] == "invalid_request"
    assert fake.requests == []


@pytest.fixture()
def slow_gateway(
    fake: FakeUpstream, tiny_model_dir: Path, tmp_path: Path
) -> Iterator[RunningGateway]:
    limits = {
        "client_header_timeout_s": 0.5,
        "client_body_timeout_s": 0.5,
        "client_idle_timeout_s": 0.5,
        "first_byte_timeout_s": 2.0,
    }
    config = config_dict(fake.base_url, tiny_model_dir, tmp_path / "d.jsonl", limits=limits)
    running, server = start_gateway(config, tmp_path)
    try:
        yield running
    finally:
        server.stop()


def _read_until_closed(sock: socket.socket, bound_s: float = 10.0) -> tuple[bytes, float]:
    """Everything the server sends until it closes the connection (bounded), and the wait."""
    start = time.monotonic()
    sock.settimeout(bound_s)
    data = b""
    while True:
        try:
            chunk = sock.recv(65536)
        except TimeoutError:
            break
        if not chunk:
            break
        data += chunk
    return data, time.monotonic() - start


def _connect(gateway: RunningGateway) -> socket.socket:
    port = int(gateway.base_url.rsplit(":", 1)[1])
    return socket.create_connection(("127.0.0.1", port), timeout=5.0)


def test_slowloris_body_is_cut_off_with_a_408(slow_gateway: RunningGateway) -> None:
    with _connect(slow_gateway) as sock:
        sock.sendall(
            b"POST /v1/chat/completions HTTP/1.1\r\nhost: x\r\ncontent-type: application/json\r\n"
            b"content-length: 1000\r\n\r\n" + b'{"model": '
        )
        data, waited = _read_until_closed(sock)
    assert data.startswith(b"HTTP/1.1 408"), data[:100]
    assert waited < 10.0  # closed by the gateway, not by this test's bound
    (line,) = slow_gateway.log_lines()
    assert line["status"] == 408 and line["outcome"] == "body_timeout"


@pytest.mark.parametrize("sent", [b"", b"POST /v1/chat/completions HTTP/1.1\r\nhost:"])
def test_silent_and_dribbling_header_clients_are_closed(
    slow_gateway: RunningGateway, sent: bytes
) -> None:
    with _connect(slow_gateway) as sock:
        sock.sendall(sent)
        data, waited = _read_until_closed(sock)
    assert data == b"" and waited < 10.0
    assert httpx.get(slow_gateway.base_url + "/healthz").status_code == 200


BOMB = """\
a: &a ["lol","lol","lol","lol","lol","lol","lol","lol","lol"]
b: &b [*a,*a,*a,*a,*a,*a,*a,*a,*a]
c: &c [*b,*b,*b,*b,*b,*b,*b,*b,*b]
d: &d [*c,*c,*c,*c,*c,*c,*c,*c,*c]
e: &e [*d,*d,*d,*d,*d,*d,*d,*d,*d]
f: &f [*e,*e,*e,*e,*e,*e,*e,*e,*e]
g: &g [*f,*f,*f,*f,*f,*f,*f,*f,*f]
h: &h [*g,*g,*g,*g,*g,*g,*g,*g,*g]
i: &i [*h,*h,*h,*h,*h,*h,*h,*h,*h]
"""


@pytest.mark.parametrize("text", [BOMB, "upstreams: " + "[" * 50_000, "x: " + "9" * 5000])
def test_hostile_config_yaml_is_refused_fast(tmp_path: Path, text: str) -> None:
    path = tmp_path / "gateway.yaml"
    path.write_text(text)
    tracemalloc.start()
    start = time.process_time()
    with pytest.raises(GatewayConfigError) as info:
        GatewayConfig.load(path, environ={})
    cpu = time.process_time() - start
    peak = tracemalloc.get_traced_memory()[1]
    tracemalloc.stop()
    assert cpu < 5.0 and peak < 64 * 1024 * 1024  # a bomb expanded would take minutes and GiBs
    assert len(str(info.value)) < 2000


def test_config_errors_do_not_echo_whole_values(tmp_path: Path, fake: FakeUpstream) -> None:
    raw = config_dict(fake.base_url, tmp_path, tmp_path / "d.jsonl")
    raw["server"] = {"host": "h", "port": "9" * 10_000}
    with pytest.raises(GatewayConfigError) as info:
        GatewayConfig.from_dict(raw, base_dir=tmp_path, environ={})
    assert len(str(info.value)) < 300


def test_metrics_can_require_the_token_and_healthz_stays_open(
    fake: FakeUpstream, tiny_model_dir: Path, tmp_path: Path
) -> None:
    config = config_dict(
        fake.base_url,
        tiny_model_dir,
        tmp_path / "d.jsonl",
        auth={"client_tokens_env": "TOKENS", "protect_metrics": True},
    )
    running, server = start_gateway(config, tmp_path, environ={"TOKENS": "s3cret"})
    try:
        assert httpx.get(running.base_url + "/healthz").status_code == 200
        assert httpx.get(running.base_url + "/metrics").status_code == 401
        ok = httpx.get(running.base_url + "/metrics", headers={"authorization": "Bearer s3cret"})
        assert ok.status_code == 200 and "router_ml_requests_total" in ok.text
    finally:
        server.stop()


JSON_VALUES = st.recursive(
    st.none()
    | st.booleans()
    | st.integers(min_value=-(10**30), max_value=10**30)
    | st.floats(allow_nan=False)
    | st.text(max_size=20),
    lambda inner: (
        st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner, max_size=4)
    ),
    max_leaves=12,
)
MESSAGE = st.fixed_dictionaries(
    {"role": st.sampled_from(["user", "system", "assistant", "tool", "robot", 3])},
    optional={"content": JSON_VALUES | st.text(max_size=50), "name": JSON_VALUES},
)
BODIES = st.one_of(
    st.binary(max_size=64),
    st.fixed_dictionaries(
        {"model": st.sampled_from(["auto", "eco-model", "some-real-model", "x\r\ny", 7, None])},
        optional={
            "messages": st.lists(MESSAGE, max_size=3) | JSON_VALUES,
            "tools": JSON_VALUES,
            "tool_choice": JSON_VALUES,
            "max_tokens": JSON_VALUES,
            "metadata": JSON_VALUES,
            "response_format": JSON_VALUES,
            "stream": st.booleans() | JSON_VALUES,
        },
    ),
    JSON_VALUES,
)


@pytest.fixture(scope="module")
def fuzz_gateway(
    upstream: FakeUpstream, tiny_model_dir: Path, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[RunningGateway]:
    tmp = tmp_path_factory.mktemp("fuzz")
    running, server = start_gateway(
        config_dict(upstream.base_url, tiny_model_dir, tmp / "d.jsonl"), tmp
    )
    try:
        yield running
    finally:
        server.stop()


@settings(
    max_examples=100,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(body=BODIES)
def test_every_body_gets_an_answer_and_exactly_one_log_line(
    fuzz_gateway: RunningGateway, body: Any
) -> None:
    before = fuzz_gateway.gateway.log.lines_written
    content = body if isinstance(body, bytes) else json.dumps(body).encode()
    response = httpx.post(fuzz_gateway.base_url + CHAT, content=content, timeout=10.0)
    assert response.status_code != 500, response.text[:300]
    if response.status_code >= 400:  # an OpenAI-shaped error; 5xx only for upstream trouble
        error = response.json()["error"]
        assert response.status_code < 500 or error["type"] == "upstream_error"
    assert fuzz_gateway.gateway.log.lines_written == before + 1
