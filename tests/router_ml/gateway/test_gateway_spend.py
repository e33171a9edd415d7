"""Spend and shadow mode against the decision log: the counters equal the logged costs summed."""

from __future__ import annotations

import re
import time
from collections import defaultdict
from pathlib import Path
from typing import Any

import httpx
import pytest
from conftest import TIER_MODELS, RunningGateway, config_dict, start_gateway
from fake_upstream import FakeUpstream

from router_ml.gateway.config import GatewayConfig, GatewayConfigError

PRICES = {
    "_tiers": {
        "economy": {"input_usd_per_mtok": 1.0, "output_usd_per_mtok": 5.0},
        "standard": {"input_usd_per_mtok": 3.0, "output_usd_per_mtok": 15.0},
        "premium": {"input_usd_per_mtok": 15.0, "output_usd_per_mtok": 75.0},
    },
    "eco-model": {"tier": "economy", "input_usd_per_mtok": 0.5, "output_usd_per_mtok": 2.0},
    "std-model": {"tier": "standard", "input_usd_per_mtok": 2.5, "output_usd_per_mtok": 10.0},
    "outside-model": {"tier": None, "input_usd_per_mtok": 7.0, "output_usd_per_mtok": 7.0},
}
METRIC_LINE = re.compile(r"^(\w+)\{([^}]*)\} (\S+)$")


def metrics(gateway: RunningGateway) -> dict[str, dict[tuple[tuple[str, str], ...], float]]:
    text = httpx.get(gateway.base_url + "/metrics").text
    series: dict[str, dict[tuple[tuple[str, str], ...], float]] = defaultdict(dict)
    for line in text.splitlines():
        match = METRIC_LINE.match(line)
        if match:
            labels = tuple(re.findall(r'(\w+)="([^"]*)"', match.group(2)))
            series[match.group(1)][labels] = float(match.group(3))
    return series


def chat(gateway: RunningGateway, model: str, text: str, **extra: Any) -> httpx.Response:
    body = {"model": model, "messages": [{"role": "user", "content": text}], **extra}
    return httpx.post(gateway.base_url + "/v1/chat/completions", json=body, timeout=10)


def wait_for_lines(gateway: RunningGateway, n: int) -> list[dict[str, Any]]:
    for _ in range(500):
        lines = gateway.log_lines()
        if len(lines) >= n:
            return lines
        time.sleep(0.01)
    raise AssertionError(f"expected {n} log lines, got {len(gateway.log_lines())}")


@pytest.fixture()
def priced(fake: FakeUpstream, tiny_model_dir: Path, tmp_path: Path):
    config = config_dict(
        fake.base_url, tiny_model_dir, tmp_path / "decisions.jsonl", pricing={"models": PRICES}
    )
    running, server = start_gateway(config, tmp_path)
    try:
        yield running
    finally:
        server.stop()


def test_cost_counters_equal_the_decision_log_summed(priced: RunningGateway) -> None:
    for tier in ("economy", "standard", "premium"):
        assert chat(priced, "auto", f"a {tier} question here", metadata={"force": tier}).is_success
    streamed = chat(
        priced,
        "auto",
        "stream this one please",
        metadata={"force": "economy"},
        stream=True,
        stream_options={"include_usage": True},
    )
    assert streamed.is_success
    assert chat(priced, "outside-model", "a passthrough to a listed model").is_success
    rejected = httpx.post(
        priced.base_url + "/v1/chat/completions", json={"model": "auto", "messages": []}
    )
    assert rejected.status_code == 400  # no upstream call, no cost
    lines = wait_for_lines(priced, 6)
    served = [line for line in lines if line.get("cost")]
    assert len(served) == 5 and lines[-1]["status"] == 400 and "cost" not in lines[-1]

    eco = next(line for line in served if line["model"] == "eco-model" and not line["stream"])
    assert eco["cost"]["priced_as"] == "model"
    usage = eco["usage"]
    assert eco["cost"]["usd"] == pytest.approx(
        (usage["prompt_tokens"] * 0.5 + usage["completion_tokens"] * 2.0) / 1e6
    )
    pro = next(line for line in served if line["model"] == TIER_MODELS["premium"])
    assert pro["cost"]["priced_as"] == "tier"  # pro-model is not in the catalog
    assert pro["cost"]["usd"] == pro["cost"]["premium_usd"]

    series = metrics(priced)
    cost: dict[tuple[str, str], float] = defaultdict(float)
    premium: dict[tuple[str, str], float] = defaultdict(float)
    tokens: dict[tuple[str, str, str], float] = defaultdict(float)
    for line in served:
        key = (line["tier"], line["model"])
        cost[key] += line["cost"]["usd"]
        premium[key] += line["cost"]["premium_usd"]
        tokens[(*key, "input")] += line["cost"]["input_tokens"]
        tokens[(*key, "output")] += line["cost"]["output_tokens"]
    counted = series["router_ml_cost_usd_total"]
    assert {(dict(k)["tier"], dict(k)["model"]): v for k, v in counted.items()} == pytest.approx(
        dict(cost)
    )
    assert {
        (dict(k)["tier"], dict(k)["model"]): v
        for k, v in series["router_ml_premium_cost_usd_total"].items()
    } == pytest.approx(dict(premium))
    assert {
        (dict(k)["tier"], dict(k)["model"], dict(k)["kind"]): v
        for k, v in series["router_ml_tokens_total"].items()
    } == dict(tokens)
    total_saving = sum(premium.values()) - sum(cost.values())
    assert total_saving > 0
    shares = {dict(k)["tier"]: v for k, v in series["router_ml_rolling_tier_share"].items()}
    assert shares == pytest.approx({"economy": 0.5, "standard": 0.25, "premium": 0.25})


def test_shadow_observe_serves_what_was_asked_and_replays_one_tier_down(
    fake: FakeUpstream, tiny_model_dir: Path, tmp_path: Path
) -> None:
    config = config_dict(
        fake.base_url,
        tiny_model_dir,
        tmp_path / "decisions.jsonl",
        pricing={"models": PRICES},
        shadow={"mode": "observe", "serve_tier": "premium", "replay_fraction": 1.0},
    )
    config["decision_log"]["include_prompts"] = True
    gateway, server = start_gateway(config, tmp_path)
    try:
        economy = {"force": "economy"}
        routed = chat(gateway, "auto", "what would the router pick", metadata=economy)
        named = chat(gateway, "std-model", "asked for a model by name", metadata=economy)
        assert routed.headers["x-router-tier"] == "premium"  # the router did not decide
        assert named.json()["choices"][0]["message"]["content"].startswith("[std-model]")
        lines = wait_for_lines(gateway, 4)
        series = metrics(gateway)
    finally:
        server.stop()

    by_id = {line["id"]: line for line in lines}
    replays = [line for line in lines if line["endpoint"] == "shadow.replay"]
    served = [line for line in lines if line["endpoint"] == "chat.completions"]
    assert len(replays) == 2 and len(served) == 2
    for line in served:
        assert line["shadow"]["tier"] == "economy" and line["decision"]["tier"] == "economy"
        tokens = line["cost"]
        assert line["shadow"]["cost_usd"] == pytest.approx(
            (tokens["input_tokens"] * 0.5 + tokens["output_tokens"] * 2.0) / 1e6
        )
        assert line["answer"]["content"].startswith(f"[{line['model']}]")
    assert [line["model"] for line in served] == [TIER_MODELS["premium"], "std-model"]
    for replay in replays:
        original = by_id[replay["replay_of"]]
        assert original["shadow_replay"]["tier"] == replay["tier"]
        expected = {"premium": "standard", "standard": "economy"}[original["tier"]]
        assert replay["tier"] == expected and replay["status"] == 200
        assert replay["answer"]["content"].startswith(f"[{replay['model']}]")
        assert replay["cost"]["usd"] > 0
    # the client never saw a replay: one upstream call per replay, none relayed
    assert sorted(fake.models_called()) == sorted(
        [TIER_MODELS["premium"], "std-model", "std-model", "eco-model"]
    )
    shadow_total = sum(series["router_ml_shadow_cost_usd_total"].values())
    assert shadow_total == pytest.approx(sum(line["shadow"]["cost_usd"] for line in served))
    replay_total = sum(series["router_ml_shadow_replay_cost_usd_total"].values())
    assert replay_total == pytest.approx(sum(r["cost"]["usd"] for r in replays))
    served_total = sum(series["router_ml_cost_usd_total"].values())
    assert served_total == pytest.approx(sum(line["cost"]["usd"] for line in served))
    assert series["router_ml_shadow_replays_total"][(("outcome", "ok"),)] == 2


@pytest.mark.parametrize(
    "section, message",
    [
        ({"pricing": {"catalog": "missing.json"}}, "cannot read"),
        ({"pricing": {"models": {"x": {}}}}, "_tiers"),
        ({"pricing": {"catalog": "a", "models": {}}}, "either"),
        ({"shadow": {"mode": "sometimes"}}, "shadow.mode"),
        ({"shadow": {"replay_fraction": 2}}, "replay_fraction"),
        ({"shadow": {"serve_tier": "gold"}}, "serve_tier"),
    ],
)
def test_bad_pricing_and_shadow_sections_fail_at_load(
    section: dict[str, Any], message: str, tiny_model_dir: Path, tmp_path: Path
) -> None:
    config = config_dict("http://127.0.0.1:9", tiny_model_dir, tmp_path / "d.jsonl", **section)
    with pytest.raises(GatewayConfigError, match=message):
        GatewayConfig.from_dict(config, base_dir=tmp_path)
