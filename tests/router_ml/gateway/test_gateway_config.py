"""Gateway config validation: every mistake fails at load, naming the key; secrets come from env."""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any

import pytest
import yaml

from router_ml.gateway.config import Escalation, GatewayConfig, GatewayConfigError

BASE: dict[str, Any] = {
    "upstreams": {"main": {"base_url": "http://127.0.0.1:9/v1/", "api_key_env": "UP_KEY"}},
    "tiers": {
        "economy": {"upstream": "main", "model": "e"},
        "standard": {"upstream": "main", "model": "s"},
        "premium": {"upstream": "main", "model": "p"},
    },
}
ENV = {"UP_KEY": "sk-secret"}


def load(
    changes: dict[str, Any] | None = None,
    env: dict[str, str] | None = None,
    base_dir: Path | str = ".",
) -> GatewayConfig:
    raw = copy.deepcopy(BASE)
    raw.update(changes or {})
    return GatewayConfig.from_dict(raw, base_dir=base_dir, environ=ENV if env is None else env)


def test_minimal_config_gets_safe_defaults() -> None:
    config = load()
    assert config.upstreams["main"].base_url == "http://127.0.0.1:9/v1"
    assert config.upstreams["main"].api_key == "sk-secret"
    assert "sk-secret" not in repr(config)
    assert config.policy.tiers == {"economy": "e", "standard": "s", "premium": "p"}
    assert config.policy.default_tier == "auto" and config.safe_tier == "premium"
    assert config.aliases == frozenset({"auto"})
    assert config.escalation.max_retries == 1 and config.client_tokens == frozenset()
    assert config.decision_log.path is None and config.decision_log.include_prompts is False
    assert config.target_for_model("s").tier == "standard"
    assert config.target_for_model("zzz") is None


def test_keep_alive_outlasts_the_clients_pool_expiry() -> None:
    """A server closing idle connections no later than the client's pool expires them races the
    client's reuse: the reused connection is reset (``httpx.ReadError``, the load test's flake)."""
    httpx = pytest.importorskip("httpx")
    client_expiry = httpx.Limits().keepalive_expiry  # also the OpenAI SDK's
    assert load().limits.client_idle_timeout_s >= client_expiry + 10.0


@pytest.mark.parametrize(
    ("changes", "env", "fragment"),
    [
        (
            {"upstreams": {"main": {"base_url": "http://x/v1", "api_key": "sk-1"}}},
            ENV,
            "secrets do not belong",
        ),
        ({}, {}, "UP_KEY is not set"),
        ({"upstreams": {"main": {"base_url": "ftp://x"}}}, ENV, "http(s) URL"),
        ({"upstreams": {}}, ENV, "at least one upstream"),
        (
            {"tiers": {"economy": {"upstream": "main", "model": "e"}}},
            ENV,
            "missing ['standard', 'premium']",
        ),
        (
            {"tiers": {**BASE["tiers"], "premium": {"upstream": "other", "model": "p"}}},
            ENV,
            "unknown upstream 'other'",
        ),
        ({"escalation": {"chain": ["premium", "economy"]}}, ENV, "in that order"),
        ({"escalation": {"retry_on": ["http_4xx"]}}, ENV, "escalation.retry_on"),
        ({"escalation": {"max_retries": 5}}, ENV, "escalation.max_retries"),
        ({"limits": {"first_byte_timeout_s": 0}}, ENV, "limits.first_byte_timeout_s"),
        ({"limits": {"max_body": 10}}, ENV, "limits: unknown keys ['max_body']"),
        ({"limits": {"process_worker_nice": 20}}, ENV, "limits.process_worker_nice"),
        ({"limits": {"process_worker_nice": -1}}, ENV, "limits.process_worker_nice"),
        ({"auth": {"client_tokens_env": "TOKENS"}}, ENV, "TOKENS is not set"),
        ({"aliases": ["auto", "e"]}, ENV, "also tier model names"),
        ({"passthrough": {"upstream": "nope"}}, ENV, "passthrough.upstream"),
        (
            {
                "router": {
                    "policy": {"rules": [{"name": "x", "match": {"nope": 1}, "tier": "economy"}]}
                }
            },
            ENV,
            "unknown match key",
        ),
        (
            {"router": {"policy": {"tiers": {"economy": "E", "standard": "s", "premium": "p"}}}},
            ENV,
            "differs from the policy's economy model",
        ),
        ({"surprise": 1}, ENV, "config: unknown keys ['surprise']"),
        ({"router": {"coverage": {"escalate_to": "gold"}}}, ENV, "router.coverage.escalate_to"),
    ],
)
def test_mistakes_fail_at_load_naming_the_key(
    changes: dict[str, Any], env: dict[str, str], fragment: str
) -> None:
    with pytest.raises(GatewayConfigError) as info:
        load(changes, env)
    assert fragment in str(info.value)


def test_secrets_and_urls_from_environment() -> None:
    config = load(
        {
            "upstreams": {
                "main": {
                    "base_url": "http://default/v1",
                    "base_url_env": "UP_URL",
                    "api_key_env": "UP_KEY",
                }
            },
            "auth": {"client_tokens_env": "TOKENS"},
        },
        env={**ENV, "UP_URL": "http://127.0.0.1:1234/v1", "TOKENS": "a, b,,c"},
    )
    assert config.upstreams["main"].base_url == "http://127.0.0.1:1234/v1"
    assert config.client_tokens == frozenset({"a", "b", "c"})


def test_tier_models_may_come_from_a_policy_file(tmp_path: Path) -> None:
    (tmp_path / "policy.yaml").write_text(
        yaml.safe_dump(
            {
                "tiers": {"economy": "e", "standard": "s", "premium": "p"},
                "rules": [{"name": "agents", "match": {"tools": True}, "tier": "premium"}],
                "default": {"tier": "auto"},
                "safe_tier": "standard",
            }
        )
    )
    tiers = {tier: {"upstream": "main"} for tier in ("economy", "standard", "premium")}
    config = load(
        {
            "tiers": tiers,
            "router": {"policy": "policy.yaml"},
            "decision_log": {"path": "logs/d.jsonl"},
        },
        base_dir=tmp_path,
    )
    assert config.tiers["standard"].model == "s"
    assert config.safe_tier == "standard" and config.policy.rules[0].name == "agents"
    assert config.decision_log.path == tmp_path / "logs" / "d.jsonl"


def test_escalation_chain_skips_to_the_next_listed_tier() -> None:
    chain = Escalation(chain=("economy", "premium"))
    assert chain.next_tier("economy") == "premium"
    assert chain.next_tier("standard") == "premium"
    assert chain.next_tier("premium") is None


def test_example_config_is_valid() -> None:
    example = Path(__file__).resolve().parents[3] / "examples" / "gateway.yaml"
    env = {"OPENAI_API_KEY": "sk-test", "ROUTER_ML_CLIENT_TOKENS": "t1,t2"}
    config = GatewayConfig.load(example, environ=env)
    assert config.port == 8080 and "auto" in config.aliases
    assert config.upstreams["openai"].base_url == "https://api.openai.com/v1"


def test_gates_are_off_unless_configured_and_the_example_turns_structural_ones_on() -> None:
    assert load().gates.names == ()
    config = load(
        {
            "gates": {
                "json": True,
                "tools": {"stream": "off"},
                "truncation": {"enabled": False},
                "refusal": {"patterns": ["^I'm sorry"], "stream": "buffer"},
                "judge": {"model": "judge-m", "threshold": 6},
            }
        }
    )
    assert config.gates.names == ("json", "tools", "refusal", "judge")
    modes = {gate.name: gate.stream for gate in config.gates.gates}
    assert modes == {"json": "buffer", "tools": "off", "refusal": "buffer"}
    assert config.gates.judge is not None and config.gates.judge.upstream == "main"
    example = GatewayConfig.load(
        Path(__file__).resolve().parents[3] / "examples" / "gateway.yaml",
        environ={"OPENAI_API_KEY": "x", "ROUTER_ML_CLIENT_TOKENS": "t"},
    )
    assert set(example.gates.names) >= {"json", "tools", "truncation", "empty"}
    assert example.gates.judge is None


@pytest.mark.parametrize(
    ("changes", "fragment"),
    [
        ({"gates": {"jsn": True}}, "gates: unknown keys"),
        ({"gates": {"json": {"stream": "later"}}}, "gates.json.stream"),
        ({"gates": {"refusal": {"patterns": ["("]}}}, "refusal pattern"),
        ({"gates": {"user": True}}, "gates.user.callable"),
        ({"gates": {"user": {"callable": "no_such_module:f"}}}, "cannot import"),
        ({"gates": {"judge": {"threshold": 5}}}, "gates.judge.model"),
        ({"gates": {"judge": {"model": "j", "upstream": "other"}}}, "unknown upstream"),
        ({"gates": {"judge": {"model": "j", "prompt": "rate it"}}}, "{answer}"),
        ({"overrides": {"header": "yes"}}, "overrides.header"),
        ({"recovery": {"repeat_window_s": -1}}, "recovery.repeat_window_s"),
        (
            {"router": {"policy": {"rules": [], "default": {"tier": "cascade"}}}},
            "no gate is enabled",
        ),
    ],
)
def test_bad_gate_override_and_recovery_settings_fail_at_load(
    changes: dict[str, Any], fragment: str
) -> None:
    with pytest.raises(GatewayConfigError, match=fragment.replace("{", r"\{").replace("}", r"\}")):
        load(changes)


def test_overrides_can_be_turned_off_per_source() -> None:
    assert load().overrides.header and load().overrides.metadata
    off = load({"overrides": {"enabled": False}}).overrides
    assert not off.enabled
    header_only = load({"overrides": {"metadata": False}}).overrides
    assert header_only.header and not header_only.metadata


def test_router_coverage_overrides_the_policy() -> None:
    from router_ml.coverage import CoverageRule

    assert load().coverage is None
    config = load({"router": {"coverage": {"enabled": False}}})
    assert config.coverage == CoverageRule(enabled=False)
