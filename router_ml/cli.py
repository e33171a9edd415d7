"""``router-ml``: route requests from the shell, and the entry point of every other subcommand.

Other subcommands register themselves through a ``register(subparsers)`` function in a module that
imports only the standard library at top level, so ``router-ml --help`` stays fast and works
without the optional extras installed. The gateway's commands are part of the runtime and are named
here; the offline side's (training, evaluation) are found through the ``router_ml.commands``
entry-point group, so the runtime never names the packages that provide them.
"""

from __future__ import annotations

import argparse
import importlib
import importlib.util
import json
import sys
import textwrap
from collections.abc import Iterator, Sequence
from importlib.metadata import entry_points
from pathlib import Path
from typing import IO, Any

from router_ml.progress import Progress

SMALL_CALIBRATION_SAMPLE = 500
"""Below this many requests, ``calibrate`` warns that the share it fixes is uncertain."""

RUNTIME_COMMAND_MODULES = ("router_ml.gateway.cli",)
COMMAND_GROUP = "router_ml.commands"
"""Entry-point group of the offline subcommands: ``name = "module:register"``."""


class CommandUnavailable(RuntimeError):
    """Raised by a ``register`` function whose optional dependencies are not installed."""


def require_modules(*modules: str, extra: str) -> None:
    """Raise :class:`CommandUnavailable` naming the extra to install if a module is missing.

    Uses ``find_spec`` (no import), so registering a command stays cheap.
    """
    missing = [name for name in modules if importlib.util.find_spec(name) is None]
    if missing:
        raise CommandUnavailable(
            f"needs the {extra} extra (pip install 'router-ml[{extra}]'); "
            f"missing: {', '.join(missing)}"
        )


def build_parser() -> tuple[argparse.ArgumentParser, dict[str, str]]:
    """The ``router-ml`` parser, and the offline commands that could not register, with why."""
    parser = argparse.ArgumentParser(
        prog="router-ml",
        description="Pick the cheapest LLM tier (economy < standard < premium) that will answer a\n"
        "chat request well, before the call.",
        formatter_class=argparse.RawDescriptionHelpFormatter,  # keeps the epilog's lines
    )
    parser.add_argument("--version", action="version", version=_version())
    subparsers = parser.add_subparsers(dest="command", metavar="COMMAND")
    _register_route(subparsers)
    _register_calibrate(subparsers)
    for module_name in RUNTIME_COMMAND_MODULES:
        importlib.import_module(module_name).register(subparsers)
    unavailable: dict[str, str] = {}
    offline = sorted(entry_points(group=COMMAND_GROUP), key=lambda ep: ep.name)
    for entry_point in offline:
        try:
            entry_point.load()(subparsers)
        except (CommandUnavailable, ModuleNotFoundError) as exc:
            unavailable[entry_point.name] = str(exc)
    parser.epilog = _availability_note(unavailable, found_any=bool(offline))
    return parser, unavailable


def _availability_note(unavailable: dict[str, str], found_any: bool) -> str | None:
    if not found_any:
        return textwrap.fill(
            "The offline commands (train, eval, bench) register through the "
            f"{COMMAND_GROUP!r} entry points of an installed router-ml; none are installed here "
            "(pip install 'router-ml[train,bench]', or pip install -e '.[dev]' in a checkout).",
            width=79,
        )
    if not unavailable:
        return None
    lines = [f"  {name}: {why}" for name, why in unavailable.items()]
    return "not available in this installation:\n" + "\n".join(lines)


def main(argv: Sequence[str] | None = None) -> int:
    parser, unavailable = build_parser()
    argv = sys.argv[1:] if argv is None else list(argv)
    if argv and argv[0] in unavailable:
        print(f"router-ml {argv[0]}: {unavailable[argv[0]]}", file=sys.stderr)
        return 2
    args = parser.parse_args(argv)
    if not getattr(args, "func", None):
        parser.print_help()
        return 2
    try:
        return int(args.func(args) or 0)
    except KeyboardInterrupt:
        return 130
    except BrokenPipeError:
        return 0


def _version() -> str:
    from router_ml import __version__

    return f"router-ml {__version__}"


def add_model_arguments(parser: argparse.ArgumentParser) -> None:
    """``--model`` and ``--operating-point``: every command that loads a model shares them."""
    parser.add_argument(
        "--model", metavar="DIR", help="model directory (default: the shipped model)"
    )
    parser.add_argument(
        "--operating-point",
        metavar="NAME|RATE",
        help="stored operating point name, or a target under-routing rate such as 0.02 "
        "(default: the model's default)",
    )


def load_router(args: argparse.Namespace) -> Any:
    from router_ml import Router
    from router_ml.model import parse_operating_point

    return Router.load(args.model, args.policy, parse_operating_point(args.operating_point))


def _register_route(subparsers: Any) -> None:
    parser = subparsers.add_parser(
        "route",
        help="route one request (JSON) or a JSONL batch",
        description="Route one OpenAI chat request (a JSON file or stdin) and print the decision "
        "as JSON, or route a JSONL batch with --batch. Each batch line is a request body or a "
        'record {"id": ..., "request": {...}}; bad lines are reported with their line number on '
        "stderr and written as error lines, and do not stop the batch.",
    )
    parser.add_argument("file", nargs="?", default="-", help="request JSON file, or - for stdin")
    parser.add_argument("--batch", metavar="IN.jsonl", help="route every line of a JSONL file")
    parser.add_argument(
        "--out", metavar="OUT.jsonl", help="where batch decisions go (default: stdout)"
    )
    parser.add_argument(
        "--table",
        action="store_true",
        help="print a readable table, not JSON; a batch table ends with the tier shares and the "
        "estimated cost versus sending everything to premium",
    )
    parser.add_argument(
        "--catalog",
        metavar="models.json",
        help="price catalog for the --table cost line (default: the shipped tier prices)",
    )
    parser.add_argument(
        "--policy", metavar="FILE", help="routing policy YAML (default: all to auto)"
    )
    add_model_arguments(parser)
    parser.set_defaults(func=_run_route)


def _run_route(args: argparse.Namespace) -> int:
    from router_ml.errors import RouterError

    try:
        router = load_router(args)
    except (RouterError, ValueError, OSError) as exc:
        print(f"router-ml: {exc}", file=sys.stderr)
        return 2
    if args.batch:
        return _route_batch(router, Path(args.batch), args.out, args.table, args.catalog)
    if args.out:
        print("router-ml: --out goes with --batch", file=sys.stderr)
        return 2
    try:
        body = sys.stdin.buffer.read() if args.file == "-" else Path(args.file).read_bytes()
    except OSError as exc:
        print(f"router-ml: cannot read {args.file}: {exc}", file=sys.stderr)
        return 2
    try:
        decision = router.route(body)
    except RouterError as exc:
        print(f"router-ml: invalid request: {exc}", file=sys.stderr)
        return 1
    if args.table:
        print_table([("-", decision.to_dict())], sys.stdout)
    else:
        print(json.dumps(decision.to_dict(), ensure_ascii=False))
    return 0


def _batch_lines(path: Path) -> Iterator[tuple[int, bytes]]:
    with path.open("rb") as handle:
        for line_no, line in enumerate(handle, start=1):
            if line.strip():
                yield line_no, line


def _route_batch(
    router: Any, path: Path, out: str | None, table: bool, catalog_path: str | None = None
) -> int:
    from router_ml.errors import InvalidRequest
    from router_ml.pricing import CatalogError, PriceCatalog
    from router_ml.request import load_json_body, parse_request

    try:
        catalog = PriceCatalog.load_default(catalog_path) if table else None
    except CatalogError as exc:
        print(f"router-ml: {exc}", file=sys.stderr)
        return 2

    try:
        total = sum(1 for _ in _batch_lines(path))
    except OSError as exc:
        print(f"router-ml: cannot read {path}: {exc}", file=sys.stderr)
        return 2
    try:
        sink = _open_out(out) if out else sys.stdout
    except OSError as exc:
        print(f"router-ml: cannot write {out}: {exc.strerror or exc}", file=sys.stderr)
        return 2
    n_bad = 0
    rows: list[tuple[str, dict[str, Any]]] = []
    parsed_requests: list[Any] = []
    try:
        with Progress(total, "routing", enabled=out is not None) as progress:
            for line_no, line in _batch_lines(path):
                record_id: Any = line_no
                try:
                    record = load_json_body(line)
                    request = record
                    if isinstance(record, dict) and "request" in record:
                        record_id, request = record.get("id", line_no), record["request"]
                    decision = router.route(request)
                    result: dict[str, Any] = {"id": record_id, **decision.to_dict()}
                    rows.append((str(record_id), result))
                    if table:
                        parsed_requests.append(parse_request(request))
                except InvalidRequest as exc:
                    n_bad += 1
                    print(f"router-ml: {path}:{line_no}: {_printable(exc)}", file=sys.stderr)
                    result = {"id": record_id, "line": line_no, "error": str(exc)}
                except Exception as exc:  # a bug must cost one line, not the batch
                    n_bad += 1
                    problem = f"internal error {type(exc).__name__}: {str(exc)[:200]}"
                    print(f"router-ml: {path}:{line_no}: {_printable(problem)}", file=sys.stderr)
                    result = {"id": record_id, "line": line_no, "error": problem}
                if not table:
                    sink.write(_json_line(result))
                progress.update()
        if table:
            print_table(rows, sink)
            assert catalog is not None
            print_spend(rows, parsed_requests, router, catalog, sink)
    finally:
        if out:
            sink.close()
    print(f"router-ml: routed {total - n_bad} of {total} lines; {n_bad} bad", file=sys.stderr)
    return 1 if n_bad else 0


def _open_out(out: str) -> IO[str]:
    """The batch output file, its folder created if missing."""
    path = Path(out)
    path.parent.mkdir(parents=True, exist_ok=True)
    return path.open("w", encoding="utf-8")


def _json_line(result: dict[str, Any]) -> str:
    """One JSONL line; a lone surrogate from the input is written escaped, not as a crash."""
    text = json.dumps(result, ensure_ascii=False)
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        text = json.dumps(result)
    return text + "\n"


def _printable(message: object) -> str:
    return str(message).encode("utf-8", "backslashreplace").decode("utf-8")


def _register_calibrate(subparsers: Any) -> None:
    parser = subparsers.add_parser(
        "calibrate",
        help="set an operating point from unlabeled traffic: a target premium share",
        description="Route a sample of your own requests (no outcomes needed) with the model and "
        "choose the risk threshold that sends --premium-share of them to premium, like "
        "RouteLLM's calibrate_threshold --strong-model-pct. The point is added to a copy of the "
        "model in --out (the source is never changed) and made its default. The shares are "
        "those the router gives with --policy's coverage rule and task table (out-of-"
        "distribution and task-kind decisions included). It fixes a spend "
        "share, not a quality: policy rules still apply on top, and under-routing is only "
        "known once you have outcomes (router-ml eval). Input lines: request bodies, or records "
        'with a "request" field (traffic records, decision-log lines with prompts); bad lines '
        "are reported and skipped.",
    )
    parser.add_argument(
        "--requests", required=True, metavar="IN.jsonl", help="your requests, one a line"
    )
    parser.add_argument(
        "--premium-share",
        required=True,
        type=float,
        metavar="SHARE",
        help="share of the requests to send to premium, in [0, 1] (e.g. 0.3)",
    )
    parser.add_argument(
        "--economy-share",
        type=float,
        metavar="SHARE",
        help="also fix the share sent to economy (default: keep the base point's economy "
        "threshold)",
    )
    parser.add_argument("--out", required=True, metavar="DIR", help="new model directory")
    parser.add_argument(
        "--keep-default",
        action="store_true",
        help="add the point without making it the copy's default",
    )
    parser.add_argument(
        "--policy",
        metavar="FILE",
        help="policy whose coverage and task_table sections apply (default: the shipped one)",
    )
    add_model_arguments(parser)
    parser.set_defaults(func=_run_calibrate)


def _run_calibrate(args: argparse.Namespace) -> int:
    import hashlib

    import numpy as np

    from router_ml import Router
    from router_ml.errors import InvalidRequest, RouterError
    from router_ml.features import FeatureExtractor
    from router_ml.model import TierModel, default_model_dir, parse_operating_point
    from router_ml.policy import Policy
    from router_ml.request import load_json_body, parse_request
    from router_ml.share_calibration import (
        calibrate_shares,
        operating_point_name,
        write_calibrated_copy,
    )

    path = Path(args.requests)
    try:
        model_dir = Path(args.model) if args.model else default_model_dir()
        model = TierModel.load(model_dir)
        base = model.operating_point(parse_operating_point(args.operating_point))
        total = sum(1 for _ in _batch_lines(path))
        digest = hashlib.sha256(path.read_bytes()).hexdigest()[:16]
    except (RouterError, ValueError, OSError) as exc:
        print(f"router-ml calibrate: {exc}", file=sys.stderr)
        return 2
    extractor = FeatureExtractor(embedding=model.text_embedding)
    rows, n_bad = [], 0
    with Progress(total, "features") as progress:
        for line_no, line in _batch_lines(path):
            try:
                record = load_json_body(line)
                request = record.get("request", record) if isinstance(record, dict) else record
                rows.append(extractor.extract_parsed(parse_request(request)))
            except InvalidRequest as exc:
                n_bad += 1
                print(f"router-ml calibrate: {path}:{line_no}: {exc}", file=sys.stderr)
            progress.update()
    if not rows:
        print(f"router-ml calibrate: {path}: no valid request", file=sys.stderr)
        return 2
    try:
        # The shares are those of the router users run: coverage rule and task table included.
        router = Router(model, Policy.load(args.policy))
        calibration = calibrate_shares(
            router.bounded_risks(np.vstack(rows)),
            args.premium_share,
            base.thresholds,
            args.economy_share,
        )
        point = calibration.operating_point(
            operating_point_name(args.premium_share, args.economy_share),
            {"requests": str(path), "sha256": digest, "base_operating_point": base.name},
        )
        out = write_calibrated_copy(model_dir, args.out, point, not args.keep_default)
    except (RouterError, ValueError, OSError) as exc:
        print(f"router-ml calibrate: {exc}", file=sys.stderr)
        return 2
    print(
        f"router-ml calibrate: {len(rows)} requests ({n_bad} bad lines skipped); wrote "
        f"{point['name']} into {out}",
        file=sys.stderr,
    )
    share = calibration.shares["premium"]
    spread = 2 * (share * (1 - share) / len(rows)) ** 0.5
    if len(rows) < SMALL_CALIBRATION_SAMPLE:
        print(
            f"router-ml calibrate: warning: only {len(rows)} requests; on new traffic of the same "
            f"kind expect a premium share of about {share:.0%} ± {spread:.0%} (2 standard "
            f"errors); calibrate on {SMALL_CALIBRATION_SAMPLE}+ requests for a firmer share",
            file=sys.stderr,
        )
    print(json.dumps({"out": str(out), **point}, indent=1))
    return 0


def print_table(rows: Sequence[tuple[str, dict[str, Any]]], sink: IO[str]) -> None:
    """A fixed-width table of decisions, for people."""
    header = (
        f"{'id':<28} {'tier':<9} {'model':<20} {'source':<22} {'P(econ/std/prem)':<18} {'µs':>7}"
    )
    sink.write(header + "\n" + "-" * len(header) + "\n")
    for record_id, d in rows:
        p = d.get("probabilities") or {}
        probs = "/".join(f"{p[t]:.2f}" for t in ("economy", "standard", "premium")) if p else "-"
        sink.write(
            f"{record_id[:28]:<28} {d['tier']:<9} {d['model'][:20]:<20} {d['source'][:22]:<22} "
            f"{probs:<18} {d['latency_us']:>7.0f}\n"
        )


def print_spend(
    rows: Sequence[tuple[str, dict[str, Any]]],
    requests: Sequence[Any],
    router: Any,
    catalog: Any,
    sink: IO[str],
) -> None:
    """Tier shares and estimated cost versus all-premium, under a decision table.

    Tokens are counted as every cost figure counts them (``router_ml.pricing``): input billed
    with tool schemas, output ``max_tokens`` or the model's recorded default.
    """
    import numpy as np

    from router_ml.pricing import SpendSummary, billed_input_tokens, expected_output_tokens

    default_output = router.model.contract.output_tokens_default
    input_tokens = np.array(
        [billed_input_tokens(r, router.token_counter) for r in requests], dtype=np.float64
    )
    output_tokens = np.array(
        [expected_output_tokens(r, default_output) for r in requests], dtype=np.float64
    )
    summary = SpendSummary.of(
        [d["tier"] for _, d in rows], input_tokens, output_tokens, catalog, router.tiers
    )
    sink.write("\n".join(summary.lines()) + "\n")
    shown = shown_path(catalog.source)
    sink.write(f"(input tokens counted, output estimated; prices from {shown})\n")


def shown_path(path: str) -> str:
    """``path`` relative to the working directory when it lies under it, else as given: the
    shipped catalog's absolute site path says nothing a reader of the table needs."""
    resolved = Path(path).resolve()
    try:
        return str(resolved.relative_to(Path.cwd().resolve()))
    except ValueError:
        return path


if __name__ == "__main__":
    sys.exit(main())
