"""``router-ml analyze``, ``router-ml drift`` and ``router-ml route-dataset``.

Registered through the ``router_ml.commands`` entry point; imports only the standard library at
top level so ``router-ml --help`` stays fast.
"""

from __future__ import annotations

import argparse
import functools
import json
import sys
import time
from pathlib import Path
from typing import Any

EXIT_OK, EXIT_DRIFT, EXIT_ERROR = 0, 1, 2


def register(subparsers: Any) -> None:
    """Add every measure subcommand to ``router-ml``."""
    register_analyze(subparsers)
    register_drift(subparsers)
    register_route_dataset(subparsers)


def register_analyze(subparsers: Any) -> None:
    """``router-ml analyze`` (needs matplotlib, from the ``measure`` extra)."""
    from router_ml.cli import add_model_arguments, require_modules

    require_modules("matplotlib", extra="measure")
    from router_ml_lab.measure.runner import add_dask_arguments

    analyze = subparsers.add_parser(
        "analyze",
        help="traffic by request type, spend before/after routing (HTML + markdown report)",
        description="Measure before you route: read a decision log or request JSONL files "
        "(also .jsonl.gz, Parquet, or directories of them), sort the traffic by request type, "
        "volume, tokens and share of the bill, and show the tier mix and projected monthly "
        "spend under the current policy and each operating point. Writes report.html "
        "(self-contained), summary.md, summary.json and traffic_types.png into --out.",
    )
    analyze.add_argument("inputs", nargs="+", metavar="FILE|DIR|GLOB", help="the traffic")
    analyze.add_argument(
        "--catalog",
        metavar="models.json",
        help="price catalog in the models.json format (default: the shipped tier prices)",
    )
    analyze.add_argument(
        "--out", metavar="DIR", default="analysis", help="report directory (default: analysis)"
    )
    analyze.add_argument(
        "--window-days",
        type=float,
        metavar="DAYS",
        help="days of traffic the input holds, for the monthly projection (default: the span "
        "of logged timestamps, else one day)",
    )
    _common(analyze, add_model_arguments, add_dask_arguments)
    analyze.set_defaults(func=run_analyze)


def register_drift(subparsers: Any) -> None:
    """``router-ml drift``."""
    from router_ml.cli import add_model_arguments
    from router_ml_lab.measure.runner import add_dask_arguments

    drift = subparsers.add_parser(
        "drift",
        help="compare a window of traffic with a baseline; exit 1 on drift (for cron or CI)",
        description="Population stability (PSI) of every feature and of the text representation "
        "(when the model has one), tier-mix shift and out-of-distribution share of --current "
        "against --baseline, each against a threshold. Exit code 0: no drift, 1: drift, "
        "2: error.",
    )
    drift.add_argument("--baseline", nargs="+", required=True, metavar="FILE|DIR|GLOB")
    drift.add_argument("--current", nargs="+", required=True, metavar="FILE|DIR|GLOB")
    drift.add_argument("--feature-psi", type=float, default=0.25, help="default 0.25")
    drift.add_argument("--text-psi", type=float, default=0.25, help="default 0.25")
    drift.add_argument(
        "--tier-share-change",
        type=float,
        default=0.10,
        help="largest allowed change of a tier's share (default 0.10)",
    )
    drift.add_argument(
        "--ood-share-increase",
        type=float,
        default=0.05,
        help="largest allowed rise of the OOD share (default 0.05)",
    )
    drift.add_argument("--out", metavar="DIR", help="also write drift.md and drift.json into DIR")
    drift.add_argument("--json", action="store_true", help="print JSON instead of markdown")
    _common(drift, add_model_arguments, add_dask_arguments)
    drift.set_defaults(func=run_drift)


def register_route_dataset(subparsers: Any) -> None:
    """``router-ml route-dataset``."""
    from router_ml.cli import add_model_arguments
    from router_ml_lab.measure.runner import add_dask_arguments

    batch = subparsers.add_parser(
        "route-dataset",
        help="route a partitioned dataset (JSONL/Parquet files), optionally on Dask",
        description="Route every request of every partition file and write one "
        "<partition>.decisions.jsonl per input into --out. With --dask the partitions are "
        "routed on a Dask cluster; the files are identical to a single-process run.",
    )
    batch.add_argument("inputs", nargs="+", metavar="FILE|DIR|GLOB")
    batch.add_argument("--out", required=True, metavar="DIR", help="where decisions files go")
    _common(batch, add_model_arguments, add_dask_arguments)
    batch.set_defaults(func=run_route_dataset)


def _common(parser: argparse.ArgumentParser, add_model: Any, add_dask: Any) -> None:
    parser.add_argument("--policy", metavar="FILE", help="routing policy YAML (default: auto)")
    add_model(parser)
    add_dask(parser)


def _settings(args: argparse.Namespace) -> Any:
    from router_ml.model import parse_operating_point
    from router_ml_lab.measure.scan import RouterSettings

    return RouterSettings(
        str(Path(args.model).resolve()) if args.model else None,
        str(Path(args.policy).resolve()) if args.policy else None,
        parse_operating_point(args.operating_point),
    )


def scan_inputs(inputs: list[str], args: argparse.Namespace, label: str) -> Any:
    """Scan every partition of ``inputs`` (here or on Dask) into one PartitionScan."""
    from router_ml_lab.measure.dataset import partitions
    from router_ml_lab.measure.runner import map_partitions
    from router_ml_lab.measure.scan import PartitionScan, scan_partition

    paths = partitions(inputs)
    function = functools.partial(scan_partition, settings=_settings(args))
    scans = map_partitions(function, paths, args.dask, args.workers, label=label)
    return PartitionScan.concat(scans)


def _fail(exc: BaseException) -> int:
    print(f"router-ml: {exc}", file=sys.stderr)
    return EXIT_ERROR


def _errors() -> tuple[type[BaseException], ...]:
    from router_ml.errors import RouterError
    from router_ml.pricing import CatalogError
    from router_ml_lab.measure.dataset import DatasetError
    from router_ml_lab.measure.runner import DaskUnavailable

    return (RouterError, CatalogError, DatasetError, DaskUnavailable, ValueError, OSError)


def run_analyze(args: argparse.Namespace) -> int:
    from router_ml.pricing import PriceCatalog
    from router_ml_lab.measure.analyze import analyze
    from router_ml_lab.measure.report import write_report
    from router_ml_lab.measure.scan import load_router

    start = time.perf_counter()
    try:
        catalog = PriceCatalog.load_default(args.catalog)
        router = load_router(_settings(args))
        scan = scan_inputs(args.inputs, args, "analyzing")
        result = analyze(scan, router, catalog, args.window_days)
        paths = write_report(result, Path(args.out))
    except _errors() as exc:
        return _fail(exc)
    for example in result["bad_line_examples"]:
        print(f"router-ml: skipped {example}", file=sys.stderr)
    current = next(r for r in result["scenarios"] if r["scenario"] == "current policy")
    print(
        f"analyzed {result['requests']} requests ({result['bad_lines']} unusable lines) in "
        f"{time.perf_counter() - start:.1f} s; routed spend {current['cost_vs_premium']:.1%} of "
        f"all-premium, {current['monthly_cost_usd']:,.2f} USD/month vs "
        f"{result['scenarios'][0]['monthly_cost_usd']:,.2f}"
    )
    print(f"wrote {paths['html']}, {paths['markdown']}, {paths['json']}, {paths['plot']}")
    return EXIT_OK


def run_drift(args: argparse.Namespace) -> int:
    from router_ml_lab.measure.drift import Thresholds, drift, markdown
    from router_ml_lab.measure.scan import load_router

    try:
        router = load_router(_settings(args))
        baseline = scan_inputs(args.baseline, args, "baseline")
        current = scan_inputs(args.current, args, "current")
        thresholds = Thresholds(
            args.feature_psi, args.text_psi, args.tier_share_change, args.ood_share_increase
        )
        result = drift(baseline, current, router, thresholds)
    except _errors() as exc:
        return _fail(exc)
    text = markdown(result)
    print(json.dumps(result, indent=2) if args.json else text, end="" if not args.json else "\n")
    if args.out:
        out = Path(args.out)
        out.mkdir(parents=True, exist_ok=True)
        (out / "drift.md").write_text(text, encoding="utf-8")
        (out / "drift.json").write_text(json.dumps(result, indent=2) + "\n", encoding="utf-8")
    return EXIT_DRIFT if result["drift"] else EXIT_OK


def run_route_dataset(args: argparse.Namespace) -> int:
    from router_ml_lab.measure.batch import route_partition
    from router_ml_lab.measure.dataset import partitions
    from router_ml_lab.measure.runner import map_partitions

    start = time.perf_counter()
    try:
        paths = partitions(args.inputs)
        Path(args.out).mkdir(parents=True, exist_ok=True)
        function = functools.partial(
            route_partition, settings=_settings(args), out_dir=str(Path(args.out).resolve())
        )
        results = map_partitions(function, paths, args.dask, args.workers, label="routing")
    except _errors() as exc:
        return _fail(exc)
    routed = sum(r.routed for r in results)
    bad = sum(r.bad for r in results)
    elapsed = time.perf_counter() - start
    print(
        f"routed {routed} requests ({bad} bad) from {len(results)} partitions in {elapsed:.1f} s "
        f"({routed / elapsed:,.0f}/s) into {args.out}",
        file=sys.stderr,
    )
    return 1 if bad else 0
