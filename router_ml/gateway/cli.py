"""``router-ml serve`` (the gateway) and ``router-ml export-log`` (decision log → training data).

Only the standard library is imported at top level so ``router-ml --help`` stays fast and works
without the ``serve`` extra; each command imports what it needs when it runs.
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from router_ml.gateway.app import Gateway
    from router_ml.gateway.config import GatewayConfig

CONFIG_ENV_VAR = "ROUTER_ML_GATEWAY_CONFIG"
"""How ``--workers N`` hands the config path to each worker process's app factory."""


def register(subparsers: argparse._SubParsersAction) -> None:
    serve = subparsers.add_parser(
        "serve",
        help="run the OpenAI-compatible routing gateway (needs the serve extra)",
        description="Serve POST /v1/chat/completions (model 'auto' is routed to a tier, other "
        "models pass through), POST /v1/route (decision only), GET /healthz and GET /metrics. "
        "Upstream API keys come from the environment variables the config names.",
    )
    serve.add_argument(
        "--config", required=True, metavar="FILE", help="gateway YAML (see examples/gateway.yaml)"
    )
    serve.add_argument("--host", help="listen address (default: server.host of the config)")
    serve.add_argument("--port", type=int, help="listen port (default: server.port of the config)")
    serve.add_argument(
        "--workers",
        type=int,
        default=1,
        help="worker processes (default 1); each loads its own model and writes its own "
        "decision log, <name>.<pid>.jsonl",
    )
    serve.add_argument(
        "--log-level", default="info", choices=("critical", "error", "warning", "info", "debug")
    )
    serve.add_argument(
        "--check",
        action="store_true",
        help="validate the config and load the model, then exit without serving",
    )
    serve.set_defaults(func=run_serve)

    export = subparsers.add_parser(
        "export-log",
        help="turn a gateway decision log (gate verdicts, outcomes) into training traffic JSONL",
        description="Write one traffic record per logged request that has evidence, in the "
        "format `router-ml train` reads. The log must have been written with "
        "decision_log.include_prompts: true (training needs the request). Evidence: every "
        "answer-gate verdict in the log (a failed gate = that tier was not enough; a pass, next "
        "to a failure, = the tier that fixed it), and an optional outcomes file, one line per "
        "request: "
        '{"id": <x-router-request-id>, "tier": "economy|standard|premium"}, or {"id", '
        '"outcomes": {model: score}}, or {"id", "score": s} (the served model\'s score in '
        "[0, 1]). Evidence about served models is written per tier (tier_outcomes), so the "
        "records need no catalog entry for your model names. Malformed outcome lines are "
        "reported and skipped; what could not be joined is warned about on stderr.",
    )
    export.add_argument(
        "--log",
        required=True,
        nargs="+",
        metavar="FILE",
        help="the active decision log(s) (one per worker with --workers); rotated backups "
        "are read too",
    )
    export.add_argument(
        "--outcomes", metavar="FILE", help="outcomes JSONL (optional: gate verdicts alone count)"
    )
    export.add_argument("--out", required=True, metavar="FILE", help="traffic JSONL to write")
    export.add_argument("--source", default="gateway", help="source field of the records")
    export.add_argument(
        "--config",
        metavar="FILE",
        help="the gateway YAML: its tier models name the tier of models scored in the outcomes "
        "file that the log never served",
    )
    export.add_argument(
        "--gate-passes",
        action="store_true",
        help="also use requests whose gates all passed (score 1 for the tier): by default a "
        "pass counts only next to a failure, since every answer is gated and solo passes would "
        "teach the router its own decisions back",
    )
    export.add_argument(
        "--no-gates",
        dest="use_gates",
        action="store_false",
        help="ignore answer-gate verdicts; export only requests with an outcome",
    )
    export.set_defaults(func=run_export)


def run_serve(args: argparse.Namespace) -> int:
    try:
        import uvicorn

        from router_ml.gateway.app import Gateway
        from router_ml.gateway.config import GatewayConfig, GatewayConfigError
        from router_ml.gateway.server import (
            HEADER_TIMEOUT_ENV_VAR,
            server_config,
            server_options,
        )
    except ModuleNotFoundError as exc:
        print(
            f"router-ml serve needs the serve extra (pip install 'router-ml[serve]'): {exc}",
            file=sys.stderr,
        )
        return 2
    from router_ml.errors import RouterError

    try:
        config = GatewayConfig.load(args.config)
        if args.check or args.workers == 1:
            gateway = Gateway(config)
    except (GatewayConfigError, RouterError, ValueError) as exc:
        print(f"router-ml serve: {exc}", file=sys.stderr)
        return 2
    host = args.host or config.host
    port = config.port if args.port is None else args.port
    if args.check:
        for line in describe(config, gateway):
            print(line)
        print(f"config ok; would listen on {host}:{port}")
        return 0
    if args.workers < 1:
        print("router-ml serve: --workers must be >= 1", file=sys.stderr)
        return 2
    for line in describe(config, gateway if args.workers == 1 else None):
        print(line, file=sys.stderr)
    if args.workers == 1:
        options = {"host": host, "port": port, "log_level": args.log_level}
        uvicorn.Server(server_config(gateway.app, config.limits, **options)).run()
    else:
        os.environ[CONFIG_ENV_VAR] = os.path.abspath(args.config)
        os.environ[HEADER_TIMEOUT_ENV_VAR] = str(config.limits.client_header_timeout_s)
        uvicorn.run(
            "router_ml.gateway.cli:app_from_env",
            factory=True,
            host=host,
            port=port,
            workers=args.workers,
            log_level=args.log_level,
            http="router_ml.gateway.server:HeaderDeadlineFromEnv",
            **server_options(config.limits),
        )
    return 0


def describe(config: GatewayConfig, gateway: Gateway | None = None) -> list[str]:
    """What the gateway will run with, for ``serve`` at start and ``serve --check``.

    The model directory, the operating point, every upstream's resolved URL (after
    ``base_url_env`` overrides such as ``ROUTER_ML_UPSTREAM_URL``), the decision-log path and
    whether prompts are logged (a warning: prompts are personal data).
    """
    model_dir = config.model_dir.resolve() if config.model_dir is not None else None
    if gateway is not None:
        point = gateway.router.operating_point
        shown_point = f"{point.name} (thresholds {', '.join(f'{t:.4f}' for t in point.thresholds)})"
        shown_model = str(Path(gateway.router.model.source).resolve())
    else:
        shown_point = str(config.operating_point or "model default")
        shown_model = str(model_dir or "the shipped default")
    lines = [
        f"router-ml gateway: model {shown_model}",
        f"  operating point: {shown_point}",
    ]
    for name, upstream in config.upstreams.items():
        source = f" (from ${upstream.base_url_env})" if upstream.base_url_env_used else ""
        key = f", key from ${upstream.api_key_env}" if upstream.api_key_env else ", no key"
        lines.append(f"  upstream {name}: {upstream.base_url}{source}{key}")
    for tier, target in config.tiers.items():
        lines.append(f"  tier {tier}: {target.model} @ {target.upstream}")
    if config.passthrough_upstream is not None:
        allowed = (
            "any model"
            if config.passthrough_models is None
            else (", ".join(sorted(config.passthrough_models)) or "tier models only")
        )
        endpoints = ", ".join(config.passthrough_endpoints) or "none"
        lines.append(
            f"  passthrough: {config.passthrough_upstream} for {allowed}; endpoints {endpoints}"
        )
    log = config.decision_log
    lines.append(f"  decision log: {log.path.resolve() if log.path else 'off (not written)'}")
    auth = "on" if config.client_tokens else "OFF (anyone reaching the port may call upstreams)"
    lines.append(f"  client auth: {auth}")
    if log.include_prompts:
        lines.append(
            "  WARNING: decision_log.include_prompts is true: request bodies (personal data) "
            "are written to the decision log"
        )
    return lines


def app_from_env():
    """App factory for multi-worker uvicorn: each worker loads the config named by the env var.

    Each worker writes its own decision log (``decisions.jsonl`` → ``decisions.<pid>.jsonl``):
    processes rotating one shared file would rename it under each other's feet.
    """
    import dataclasses

    from router_ml.gateway.app import create_app
    from router_ml.gateway.config import GatewayConfig

    config = GatewayConfig.load(os.environ[CONFIG_ENV_VAR])
    path = config.decision_log.path
    if path is not None:
        own = path.with_name(f"{path.stem}.{os.getpid()}{path.suffix}")
        config = dataclasses.replace(
            config, decision_log=dataclasses.replace(config.decision_log, path=own)
        )
    return create_app(config)


def run_export(args: argparse.Namespace) -> int:
    from router_ml.gateway.export import export_traffic, tier_models_from_config

    try:
        tier_models = tier_models_from_config(args.config) if args.config else None
        report = export_traffic(
            args.log,
            args.outcomes,
            args.out,
            source=args.source,
            tier_models=tier_models,
            use_gates=args.use_gates,
            gate_passes=args.gate_passes,
        )
    except (OSError, ValueError) as exc:
        print(f"router-ml export-log: {exc}", file=sys.stderr)
        return 2
    print(report.summary())
    for warning in report.warnings():
        prefix = "" if warning.startswith(" ") else "router-ml export-log: warning: "
        print(prefix + warning, file=sys.stderr)
    return 0 if report.written else 1
