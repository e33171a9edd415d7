"""The gateway's one YAML file: router, tiers, upstreams, escalation, limits, auth, decision log,
pricing and shadow mode.

Everything is validated at load so a typo fails the deploy with the key that is wrong, not a
request at 3 a.m. Secrets never live in the file: an upstream names the environment variable
holding its API key (``api_key_env``), client tokens come from ``auth.client_tokens_env``, and a
literal ``api_key`` in the YAML is refused. Relative paths resolve against the config file's
directory, so a config and its policy can move together.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from router_ml.coverage import CoverageRule
from router_ml.errors import PolicyError
from router_ml.gateway.gates import (
    GATE_NAMES,
    STREAM_MODES,
    STRUCTURAL_GATES,
    AnswerGates,
    JudgeSpec,
    build_gates,
)
from router_ml.policy import Policy
from router_ml.pricing import CatalogError, PriceCatalog
from router_ml.safe_yaml import YamlError, load_yaml_file
from router_ml.tiers import TIERS, next_tier

RETRY_REASONS = ("http_5xx", "http_429", "timeout", "connection")
"""Failure kinds that may be retried on the next tier; 4xx client errors never are."""


class GatewayConfigError(ValueError):
    """The gateway config is invalid; the message starts with the offending key path."""


@dataclass(frozen=True)
class Upstream:
    """An OpenAI-compatible endpoint; ``api_key`` is read from ``api_key_env`` at load."""

    name: str
    base_url: str
    api_key: str | None = field(default=None, repr=False)
    api_key_env: str | None = None
    headers: Mapping[str, str] = field(default_factory=dict)
    base_url_env: str | None = None
    base_url_env_used: bool = False
    """Whether ``base_url`` came from ``base_url_env`` (e.g. ROUTER_ML_UPSTREAM_URL)."""


@dataclass(frozen=True)
class TierTarget:
    """Where a tier's requests go: the upstream and the model name sent to it."""

    tier: str
    model: str
    upstream: str


@dataclass(frozen=True)
class Escalation:
    """Retry on the next tier of ``chain`` after a retryable failure, at most ``max_retries``."""

    chain: tuple[str, ...] = TIERS
    max_retries: int = 1
    retry_on: frozenset[str] = frozenset(RETRY_REASONS)

    def next_tier(self, tier: str) -> str | None:
        """The first chain tier more capable than ``tier``, or None when there is none."""
        return next_tier(tier, self.chain)


@dataclass(frozen=True)
class Limits:
    """Sizes and timeouts, towards clients and towards upstreams.

    Upstream side: ``first_byte_timeout_s`` bounds headers plus the first chunk, ``idle_timeout_s``
    the silence between chunks, ``total_timeout_s`` all attempts plus streaming,
    ``max_connections`` the pool per upstream, ``max_upstream_response_bytes`` an answer's size.
    Client side: a client must send its headers within ``client_header_timeout_s`` and its body
    within ``client_body_timeout_s`` (a slow client is cut off, answered 408 when possible); an
    idle keep-alive connection closes after ``client_idle_timeout_s``, which must stay above
    the idle expiry of the clients' pools (httpx and the OpenAI SDK: 5 s): at equal values a
    client reuses a connection just as the server closes it and gets a connection reset
    (``httpx.ReadError``) instead of an answer; beyond ``max_client_connections`` open
    connections or in-flight requests new ones get a 503.
    Bodies larger than ``inline_body_bytes`` are parsed and routed off the event loop: those
    above ``process_body_bytes`` in ``process_workers`` worker processes (decoding a 4 MB JSON
    holds the GIL for tens of milliseconds in any thread of the gateway's own process), with
    at most ``process_queue`` more waiting for one (then a 503), at niceness
    ``process_worker_nice`` (0-19; 10: when cores are short, the scheduler gives the normal
    requests' event loop the CPU first, and a heavy body waits instead); the others, and all of them
    when ``process_workers`` is 0, in a pool of ``route_workers`` threads (see ``workers``).
    """

    max_body_bytes: int = 4 * 1024 * 1024
    connect_timeout_s: float = 5.0
    first_byte_timeout_s: float = 120.0
    idle_timeout_s: float = 120.0
    total_timeout_s: float = 600.0
    max_connections: int = 512
    max_upstream_response_bytes: int = 64 * 1024 * 1024
    client_header_timeout_s: float = 10.0
    client_body_timeout_s: float = 30.0
    client_idle_timeout_s: float = 20.0
    max_client_connections: int = 1024
    inline_body_bytes: int = 16 * 1024
    route_workers: int = 4
    process_body_bytes: int = 256 * 1024
    process_workers: int = 1
    process_queue: int = 4
    process_worker_nice: int = 10


INT_LIMITS = frozenset(
    {
        "max_body_bytes",
        "max_connections",
        "max_upstream_response_bytes",
        "max_client_connections",
        "inline_body_bytes",
        "route_workers",
        "process_body_bytes",
        "process_workers",
        "process_queue",
        "process_worker_nice",
    }
)
ZERO_LIMITS = frozenset(
    {
        "inline_body_bytes",
        "process_body_bytes",
        "process_workers",
        "process_queue",
        "process_worker_nice",
    }
)
"""Integer limits that may be 0 (the others must be at least 1)."""
MAX_NICE = 19
"""The largest niceness Linux gives a process (the lowest CPU priority)."""


@dataclass(frozen=True)
class DecisionLogConfig:
    """JSONL decision log; prompts are only written when the operator opts in."""

    path: Path | None = None
    max_bytes: int = 100 * 1024 * 1024
    backups: int = 5
    include_prompts: bool = False
    include_features: bool = True


SHADOW_MODES = ("off", "observe")


@dataclass(frozen=True)
class ShadowConfig:
    """Shadow mode: route without deciding, and replay a sample on the next cheaper tier.

    ``mode: observe`` routes every chat request and logs the router's choice and its cost under
    ``shadow``, but serves what the client asked for: a named model as usual, a routing alias on
    ``serve_tier``. ``replay_fraction`` of the routed (or, observing, shadow-routed) requests
    are sent again in the background to the tier below the one that served them, never shown to
    the client; both answers are logged for judging (``decision_log`` module docstring).
    """

    mode: str = "off"
    serve_tier: str = "premium"
    replay_fraction: float = 0.0
    max_replays_in_flight: int = 8
    seed: int | None = None

    @property
    def observing(self) -> bool:
        return self.mode == "observe"


@dataclass(frozen=True)
class Overrides:
    """Per-request pins of a tier or operating point (A/B tests, tenants), and where from.

    Headers ``x-router-tier`` / ``x-router-operating-point``, or the request's ``metadata``
    fields ``router_tier`` / ``router_operating_point``; each source can be turned off.
    """

    header: bool = True
    metadata: bool = True

    @property
    def enabled(self) -> bool:
        return self.header or self.metadata


@dataclass(frozen=True)
class Recovery:
    """The request-hash cache behind the policy's ``retry`` key: the same request from the same
    client within ``repeat_window_s`` counts as a retry (0 turns the cache off)."""

    repeat_window_s: float = 120.0
    cache_size: int = 10_000


@dataclass(frozen=True)
class GatewayConfig:
    """A validated gateway configuration (see ``examples/gateway.yaml``)."""

    tiers: Mapping[str, TierTarget]
    upstreams: Mapping[str, Upstream]
    policy: Policy
    host: str = "127.0.0.1"
    port: int = 8080
    model_dir: Path | None = None
    operating_point: str | float | None = None
    coverage: CoverageRule | None = None
    """``router.coverage``: overrides the policy's coverage rule when given."""
    aliases: frozenset[str] = frozenset({"auto"})
    passthrough_upstream: str | None = None
    passthrough_models: frozenset[str] | None = frozenset()
    """Model names clients may call on the passthrough upstream; None (``["*"]``): any."""
    passthrough_endpoints: tuple[str, ...] = ()
    """Other OpenAI endpoints relayed to the passthrough upstream (``embeddings``, ...)."""
    escalation: Escalation = Escalation()
    limits: Limits = Limits()
    decision_log: DecisionLogConfig = DecisionLogConfig()
    client_tokens: frozenset[str] = field(default=frozenset(), repr=False)
    pricing: PriceCatalog = field(default_factory=PriceCatalog.load_default, repr=False)
    """Model and tier prices for the cost of every request (``pricing.catalog``)."""
    shadow: ShadowConfig = ShadowConfig()
    gates: AnswerGates = field(default_factory=AnswerGates)
    overrides: Overrides = Overrides()
    recovery: Recovery = Recovery()
    protect_metrics: bool = False
    """Whether ``/metrics`` requires a client token too (``/healthz`` never does)."""

    @property
    def safe_tier(self) -> str:
        return self.policy.safe_tier

    def passthrough_allows(self, model: str) -> bool:
        """Whether ``model`` may be sent to the passthrough upstream."""
        return self.passthrough_models is None or model in self.passthrough_models

    def target_for_model(self, model: str) -> TierTarget | None:
        """The tier whose model is ``model`` (explicit model names pass through to it)."""
        for target in self.tiers.values():
            if target.model == model:
                return target
        return None

    @classmethod
    def load(
        cls, path: str | os.PathLike[str], environ: Mapping[str, str] | None = None
    ) -> GatewayConfig:
        """Read and validate a YAML config file; ``environ`` defaults to ``os.environ``."""
        path = Path(path)
        try:
            raw = load_yaml_file(path)  # bounded: alias bombs and deep nesting fail fast
        except OSError as exc:
            raise GatewayConfigError(f"{path}: cannot read: {exc}") from exc
        except YamlError as exc:
            raise GatewayConfigError(f"invalid YAML: {exc}") from exc
        return cls.from_dict(raw, base_dir=path.parent, environ=environ)

    @classmethod
    def from_dict(
        cls,
        raw: Any,
        base_dir: str | os.PathLike[str] = ".",
        environ: Mapping[str, str] | None = None,
    ) -> GatewayConfig:
        """Validate a parsed config mapping; relative paths resolve against ``base_dir``."""
        env = os.environ if environ is None else environ
        base = Path(base_dir)
        root = _mapping(raw, "config")
        _known(
            root,
            "config",
            {
                "server",
                "router",
                "aliases",
                "upstreams",
                "tiers",
                "passthrough",
                "escalation",
                "limits",
                "auth",
                "decision_log",
                "pricing",
                "shadow",
                "gates",
                "overrides",
                "recovery",
            },
        )
        server = _mapping(root.get("server", {}), "server")
        _known(server, "server", {"host", "port"})
        router = _mapping(root.get("router", {}), "router")
        _known(router, "router", {"model_dir", "operating_point", "policy", "coverage"})

        upstreams = _upstreams(root.get("upstreams"), env)
        policy_spec = router.get("policy")
        tier_specs = _mapping(root.get("tiers"), "tiers")
        policy = _policy(policy_spec, tier_specs, base)
        tiers = _tiers(tier_specs, policy, upstreams)
        passthrough_upstream, passthrough_models, passthrough_endpoints = _passthrough(
            root.get("passthrough", {}), upstreams
        )
        aliases = root.get("aliases", ["auto"])
        if (
            not isinstance(aliases, list)
            or not aliases
            or not all(isinstance(a, str) and a for a in aliases)
        ):
            raise GatewayConfigError("aliases: expected a non-empty list of model names")
        clash = [a for a in aliases if any(t.model == a for t in tiers.values())]
        if clash:
            raise GatewayConfigError(f"aliases: {clash} are also tier model names")
        model_dir = router.get("model_dir")
        auth = _mapping(root.get("auth", {}), "auth")
        operating_point = router.get("operating_point")
        if operating_point is not None and (
            isinstance(operating_point, bool) or not isinstance(operating_point, str | int | float)
        ):
            raise GatewayConfigError("router.operating_point: expected a name or a number")
        gates = _gates(root.get("gates", {}), upstreams, tiers)
        if not gates.names and _uses_cascade(policy):
            raise GatewayConfigError(
                "router.policy: a rule or the default asks for a cascade, which steps up when an "
                "answer fails a gate, but no gate is enabled; enable gates (e.g. json, tools, "
                "truncation, empty)"
            )
        coverage = None
        if router.get("coverage") is not None:
            try:
                coverage = CoverageRule.from_config(router["coverage"])
            except ValueError as exc:
                raise GatewayConfigError(f"router.{exc}") from None
        return cls(
            gates=gates,
            overrides=_overrides(root.get("overrides", {})),
            recovery=_recovery(root.get("recovery", {})),
            tiers=tiers,
            upstreams=upstreams,
            policy=policy,
            host=_str(server.get("host", "127.0.0.1"), "server.host"),
            port=_int(server.get("port", 8080), "server.port", 0, 65535),
            model_dir=None if model_dir is None else base / _str(model_dir, "router.model_dir"),
            operating_point=operating_point,
            coverage=coverage,
            aliases=frozenset(aliases),
            passthrough_upstream=passthrough_upstream,
            passthrough_models=passthrough_models,
            passthrough_endpoints=passthrough_endpoints,
            escalation=_escalation(root.get("escalation", {})),
            limits=_limits(root.get("limits", {})),
            decision_log=_decision_log(root.get("decision_log", {}), base),
            pricing=_pricing(root.get("pricing", {}), base),
            shadow=_shadow(root.get("shadow", {})),
            client_tokens=_client_tokens(auth, env),
            protect_metrics=_bool(auth.get("protect_metrics", False), "auth.protect_metrics"),
        )


def _shown(value: Any, limit: int = 80) -> str:
    """``repr(value)`` cut to ``limit`` characters: config errors never echo a whole value."""
    if isinstance(value, Mapping | list) and len(value) > 20:
        return f"<{type(value).__name__} of {len(value)} items>"
    text = repr(value)
    return text if len(text) <= limit else f"{text[:limit]}... ({len(text)} chars)"


def _mapping(value: Any, where: str) -> Mapping[str, Any]:
    if not isinstance(value, Mapping):
        shown = "nothing" if value is None else type(value).__name__
        raise GatewayConfigError(f"{where}: expected a mapping, got {shown}")
    return value


def _known(section: Mapping[str, Any], where: str, allowed: set[str]) -> None:
    unknown = set(section) - allowed
    if unknown:
        raise GatewayConfigError(
            f"{where}: unknown keys {_shown(sorted(map(str, unknown)))}; known: {sorted(allowed)}"
        )


def _str(value: Any, where: str) -> str:
    if not isinstance(value, str) or not value:
        raise GatewayConfigError(f"{where}: expected a non-empty string, got {_shown(value)}")
    return value


def _int(value: Any, where: str, low: int, high: int | None = None) -> int:
    if (
        isinstance(value, bool)
        or not isinstance(value, int)
        or value < low
        or (high is not None and value > high)
    ):
        bound = f"in [{low}, {high}]" if high is not None else f">= {low}"
        raise GatewayConfigError(f"{where}: expected an integer {bound}, got {_shown(value)}")
    return value


def _seconds(value: Any, where: str) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float) or not value > 0:
        raise GatewayConfigError(
            f"{where}: expected a positive number of seconds, got {_shown(value)}"
        )
    return float(value)


def _bool(value: Any, where: str) -> bool:
    if not isinstance(value, bool):
        raise GatewayConfigError(f"{where}: expected true or false, got {_shown(value)}")
    return value


PASSTHROUGH_ENDPOINTS = ("embeddings", "completions", "responses")
"""OpenAI endpoints besides chat that the gateway can relay unrouted to the passthrough upstream."""


def _passthrough(
    raw: Any, upstreams: Mapping[str, Upstream]
) -> tuple[str | None, frozenset[str] | None, tuple[str, ...]]:
    """Where explicit model names go, which names are allowed, and which endpoints are relayed.

    Passthrough spends the operator's key on the client's choice of model, so it takes an
    explicit allowlist (``models: ["*"]`` opts into any name).
    """
    spec = _mapping(raw, "passthrough")
    _known(spec, "passthrough", {"upstream", "models", "endpoints"})
    upstream = spec.get("upstream")
    if upstream is None:
        if spec:
            raise GatewayConfigError("passthrough: models and endpoints need an upstream")
        return None, frozenset(), ()
    if upstream not in upstreams:
        raise GatewayConfigError(
            f"passthrough.upstream: unknown upstream {_shown(upstream)}; "
            f"defined: {sorted(upstreams)}"
        )
    models = spec.get("models")
    if not isinstance(models, list) or not all(isinstance(m, str) and m for m in models):
        raise GatewayConfigError(
            "passthrough.models: list the model names clients may call through the passthrough "
            f'upstream on its key (["*"] allows any), got {_shown(models)}'
        )
    endpoints = spec.get("endpoints", list(PASSTHROUGH_ENDPOINTS))
    if not isinstance(endpoints, list) or not all(e in PASSTHROUGH_ENDPOINTS for e in endpoints):
        raise GatewayConfigError(
            f"passthrough.endpoints: expected a list from {list(PASSTHROUGH_ENDPOINTS)}, "
            f"got {_shown(endpoints)}"
        )
    allowed = None if "*" in models else frozenset(models)
    return upstream, allowed, tuple(dict.fromkeys(endpoints))


def _upstreams(raw: Any, env: Mapping[str, str]) -> dict[str, Upstream]:
    specs = _mapping(raw, "upstreams")
    if not specs:
        raise GatewayConfigError("upstreams: define at least one upstream")
    upstreams = {}
    for name, raw_spec in specs.items():
        where = f"upstreams.{name}"
        spec = _mapping(raw_spec, where)
        if "api_key" in spec:
            raise GatewayConfigError(
                f"{where}.api_key: secrets do not belong in the config; put the key in an "
                "environment variable and name it with api_key_env"
            )
        _known(spec, where, {"base_url", "base_url_env", "api_key_env", "headers"})
        base_url = _str(spec.get("base_url"), f"{where}.base_url") if "base_url" in spec else None
        variable, from_env = None, False
        if "base_url_env" in spec:
            variable = _str(spec["base_url_env"], f"{where}.base_url_env")
            from_env = bool(env.get(variable))
            base_url = env.get(variable) or base_url
        if not base_url:
            raise GatewayConfigError(f"{where}: set base_url (or base_url_env to a set variable)")
        if not base_url.startswith(("http://", "https://")):
            raise GatewayConfigError(
                f"{where}.base_url: expected an http(s) URL, got {_shown(base_url)}"
            )
        api_key = None
        key_env = spec.get("api_key_env")
        if key_env is not None:
            key_env = _str(key_env, f"{where}.api_key_env")
            api_key = env.get(key_env)
            if not api_key:
                raise GatewayConfigError(
                    f"{where}.api_key_env: environment variable {key_env} is not set"
                )
        headers = _mapping(spec.get("headers", {}), f"{where}.headers")
        if any(k.lower() == "authorization" for k in headers):
            raise GatewayConfigError(f"{where}.headers: authorization comes from api_key_env only")
        upstreams[str(name)] = Upstream(
            str(name),
            base_url.rstrip("/"),
            api_key,
            key_env,
            {str(k): str(v) for k, v in headers.items()},
            variable,
            from_env,
        )
    return upstreams


def _policy(spec: Any, tier_specs: Mapping[str, Any], base: Path) -> Policy:
    """The routing policy; without one, every request goes to the learned model."""
    models = {tier: s.get("model") for tier, s in tier_specs.items() if isinstance(s, Mapping)}
    try:
        if spec is None:
            return Policy.from_dict({"tiers": models, "default": {"tier": "auto"}}, source="config")
        if isinstance(spec, str):
            path = base / spec
            if not path.is_file():
                raise GatewayConfigError(f"router.policy: no such file {path}")
            return Policy.load(path)
        spec = dict(_mapping(spec, "router.policy"))
        spec.setdefault("tiers", models)
        return Policy.from_dict(spec, source="config router.policy")
    except PolicyError as exc:
        raise GatewayConfigError(f"router.policy: {exc}") from exc


def _tiers(
    specs: Mapping[str, Any], policy: Policy, upstreams: Mapping[str, Upstream]
) -> dict[str, TierTarget]:
    missing = [t for t in TIERS if t not in specs]
    unknown = [t for t in specs if t not in TIERS]
    if missing or unknown:
        raise GatewayConfigError(f"tiers: missing {missing}, unknown {unknown}")
    targets = {}
    for tier in TIERS:
        where = f"tiers.{tier}"
        spec = _mapping(specs[tier], where)
        _known(spec, where, {"upstream", "model"})
        upstream = _str(spec.get("upstream"), f"{where}.upstream")
        if upstream not in upstreams:
            raise GatewayConfigError(
                f"{where}.upstream: unknown upstream {upstream!r}; defined: {sorted(upstreams)}"
            )
        model = spec.get("model", policy.tiers[tier])
        model = _str(model, f"{where}.model")
        if model != policy.tiers[tier]:
            raise GatewayConfigError(
                f"{where}.model: {model!r} differs from the policy's {tier} model "
                f"{policy.tiers[tier]!r} ({policy.source}); name each tier's model once"
            )
        targets[tier] = TierTarget(tier, model, upstream)
    return targets


def _escalation(raw: Any) -> Escalation:
    spec = _mapping(raw, "escalation")
    _known(spec, "escalation", {"chain", "max_retries", "retry_on"})
    chain = spec.get("chain", list(TIERS))
    if (
        not isinstance(chain, list)
        or not all(t in TIERS for t in chain)
        or chain != sorted(set(chain), key=TIERS.index)
    ):
        raise GatewayConfigError(
            f"escalation.chain: expected distinct tiers from {list(TIERS)} in that order, "
            f"got {_shown(chain)}"
        )
    retry_on = spec.get("retry_on", list(RETRY_REASONS))
    if not isinstance(retry_on, list) or not all(r in RETRY_REASONS for r in retry_on):
        raise GatewayConfigError(
            f"escalation.retry_on: expected a list from {list(RETRY_REASONS)}, "
            f"got {_shown(retry_on)}"
        )
    return Escalation(
        tuple(chain),
        _int(spec.get("max_retries", 1), "escalation.max_retries", 0, 2),
        frozenset(retry_on),
    )


def _limits(raw: Any) -> Limits:
    spec = _mapping(raw, "limits")
    defaults = Limits()
    _known(spec, "limits", set(defaults.__dataclass_fields__))
    values: dict[str, Any] = {}
    for key, value in spec.items():
        if key in INT_LIMITS:
            high = MAX_NICE if key == "process_worker_nice" else None
            values[key] = _int(value, f"limits.{key}", 0 if key in ZERO_LIMITS else 1, high)
        else:
            values[key] = _seconds(value, f"limits.{key}")
    return Limits(**values)


def _decision_log(raw: Any, base: Path) -> DecisionLogConfig:
    spec = _mapping(raw, "decision_log")
    _known(
        spec,
        "decision_log",
        {"path", "max_bytes", "backups", "include_prompts", "include_features"},
    )
    path = spec.get("path")
    return DecisionLogConfig(
        path=None if path is None else base / _str(path, "decision_log.path"),
        max_bytes=_int(
            spec.get("max_bytes", DecisionLogConfig.max_bytes), "decision_log.max_bytes", 1024
        ),
        backups=_int(spec.get("backups", DecisionLogConfig.backups), "decision_log.backups", 0),
        include_prompts=_bool(spec.get("include_prompts", False), "decision_log.include_prompts"),
        include_features=_bool(spec.get("include_features", True), "decision_log.include_features"),
    )


def _client_tokens(raw: Any, env: Mapping[str, str]) -> frozenset[str]:
    spec = _mapping(raw, "auth")
    _known(spec, "auth", {"client_tokens_env", "protect_metrics"})
    variable = spec.get("client_tokens_env")
    if variable is None:
        return frozenset()
    variable = _str(variable, "auth.client_tokens_env")
    tokens = frozenset(t.strip() for t in env.get(variable, "").split(",") if t.strip())
    if not tokens:
        raise GatewayConfigError(
            f"auth.client_tokens_env: environment variable {variable} is not set or holds no token "
            "(comma-separated); remove auth to run without client authentication"
        )
    return tokens


def _pricing(raw: Any, base: Path) -> PriceCatalog:
    """``pricing: {catalog: models.json}`` or ``pricing: {models: {...}}`` (same format inline);
    without either, the shipped tier prices."""
    spec = _mapping(raw, "pricing")
    _known(spec, "pricing", {"catalog", "models"})
    if "catalog" in spec and "models" in spec:
        raise GatewayConfigError("pricing: give either catalog (a file) or models (inline)")
    try:
        if "catalog" in spec:
            return PriceCatalog.load(base / _str(spec["catalog"], "pricing.catalog"))
        if "models" in spec:
            return PriceCatalog.from_dict(spec["models"], source="config pricing.models")
        return PriceCatalog.load_default()
    except CatalogError as exc:
        raise GatewayConfigError(f"pricing: {exc}") from exc


def _shadow(raw: Any) -> ShadowConfig:
    spec = _mapping(raw, "shadow")
    defaults = ShadowConfig()
    _known(spec, "shadow", set(defaults.__dataclass_fields__))
    mode = spec.get("mode", defaults.mode)
    if mode not in SHADOW_MODES:
        raise GatewayConfigError(f"shadow.mode: expected one of {list(SHADOW_MODES)}, got {mode!r}")
    serve_tier = spec.get("serve_tier", defaults.serve_tier)
    if serve_tier not in TIERS:
        raise GatewayConfigError(f"shadow.serve_tier: expected one of {list(TIERS)}")
    fraction = spec.get("replay_fraction", defaults.replay_fraction)
    if (
        isinstance(fraction, bool)
        or not isinstance(fraction, int | float)
        or not 0 <= fraction <= 1
    ):
        raise GatewayConfigError(
            f"shadow.replay_fraction: expected a number in [0, 1], got {fraction!r}"
        )
    seed = spec.get("seed")
    if seed is not None:
        seed = _int(seed, "shadow.seed", 0)
    return ShadowConfig(
        mode=mode,
        serve_tier=serve_tier,
        replay_fraction=float(fraction),
        max_replays_in_flight=_int(
            spec.get("max_replays_in_flight", defaults.max_replays_in_flight),
            "shadow.max_replays_in_flight",
            1,
        ),
        seed=seed,
    )


def _uses_cascade(policy: Policy) -> bool:
    return bool(policy.default_cascade) or any(rule.cascade for rule in policy.rules)


def _gate_switch(raw: Any, where: str, allowed: set[str]) -> tuple[bool, Mapping[str, Any]]:
    """A gate entry is ``true``/``false`` or a mapping with ``enabled`` (default true)."""
    if isinstance(raw, bool):
        return raw, {}
    spec = _mapping(raw, where)
    _known(spec, where, {"enabled", "stream", *allowed})
    return _bool(spec.get("enabled", True), f"{where}.enabled"), spec


def _stream_mode(spec: Mapping[str, Any], where: str) -> str | None:
    mode = spec.get("stream")
    if mode is not None and mode not in STREAM_MODES:
        raise GatewayConfigError(f"{where}.stream: expected one of {list(STREAM_MODES)}")
    return mode


def _gates(
    raw: Any, upstreams: Mapping[str, Upstream], tiers: Mapping[str, TierTarget]
) -> AnswerGates:
    """The answer gates; every gate is off unless the section turns it on."""
    spec = _mapping(raw, "gates")
    _known(spec, "gates", {*GATE_NAMES, "stream_buffer_bytes"})
    enabled: list[str] = []
    modes: dict[str, str] = {}
    patterns: list[str] = []
    user_target = None
    for name in (*STRUCTURAL_GATES, "refusal", "user"):
        if name not in spec:
            continue
        where = f"gates.{name}"
        extra = {"refusal": {"patterns"}, "user": {"callable"}}.get(name, set())
        on, options = _gate_switch(spec[name], where, extra)
        if not on:
            continue
        enabled.append(name)
        mode = _stream_mode(options, where)
        if mode is not None:
            modes[name] = mode
        if name == "refusal":
            patterns = options.get("patterns", [])
            if not isinstance(patterns, list) or not all(isinstance(p, str) for p in patterns):
                raise GatewayConfigError(f"{where}.patterns: expected a list of regexes")
        if name == "user":
            user_target = _str(options.get("callable"), f"{where}.callable")
    judge, judge_stream = _judge(spec.get("judge", False), upstreams, tiers)
    try:
        return build_gates(
            enabled,
            patterns,
            user_target,
            modes,
            judge,
            judge_stream,
            _int(spec.get("stream_buffer_bytes", 4 * 1024 * 1024), "gates.stream_buffer_bytes", 1),
        )
    except ValueError as exc:
        raise GatewayConfigError(f"gates: {exc}") from exc


def _judge(
    raw: Any, upstreams: Mapping[str, Upstream], tiers: Mapping[str, TierTarget]
) -> tuple[JudgeSpec | None, str]:
    where = "gates.judge"
    on, spec = _gate_switch(raw, where, {"model", "upstream", "threshold", "prompt", "timeout_s"})
    if not on:
        return None, "off"
    model = _str(spec.get("model"), f"{where}.model")
    default_upstream = next(iter(tiers.values())).upstream
    upstream = _str(spec.get("upstream", default_upstream), f"{where}.upstream")
    if upstream not in upstreams:
        raise GatewayConfigError(f"{where}.upstream: unknown upstream {upstream!r}")
    threshold = spec.get("threshold", 7)
    if isinstance(threshold, bool) or not isinstance(threshold, int | float):
        raise GatewayConfigError(f"{where}.threshold: expected a number from 0 to 10")
    judge = JudgeSpec(model, upstream, float(threshold))
    if "prompt" in spec:
        prompt = _str(spec["prompt"], f"{where}.prompt")
        if "{answer}" not in prompt:
            raise GatewayConfigError(f"{where}.prompt: must contain {{answer}} (and {{request}})")
        judge = JudgeSpec(model, upstream, float(threshold), prompt)
    if "timeout_s" in spec:
        judge = JudgeSpec(
            judge.model,
            judge.upstream,
            judge.threshold,
            judge.prompt,
            _seconds(spec["timeout_s"], f"{where}.timeout_s"),
        )
    return judge, _stream_mode(spec, where) or "off"


def _overrides(raw: Any) -> Overrides:
    if isinstance(raw, bool):
        return Overrides(raw, raw)
    spec = _mapping(raw, "overrides")
    _known(spec, "overrides", {"enabled", "header", "metadata"})
    enabled = _bool(spec.get("enabled", True), "overrides.enabled")
    return Overrides(
        enabled and _bool(spec.get("header", True), "overrides.header"),
        enabled and _bool(spec.get("metadata", True), "overrides.metadata"),
    )


def _recovery(raw: Any) -> Recovery:
    spec = _mapping(raw, "recovery")
    _known(spec, "recovery", {"repeat_window_s", "cache_size"})
    window = spec.get("repeat_window_s", Recovery.repeat_window_s)
    if isinstance(window, bool) or not isinstance(window, int | float) or window < 0:
        raise GatewayConfigError("recovery.repeat_window_s: expected seconds >= 0 (0: off)")
    return Recovery(
        float(window), _int(spec.get("cache_size", Recovery.cache_size), "recovery.cache_size", 1)
    )
