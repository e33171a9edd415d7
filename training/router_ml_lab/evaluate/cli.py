"""``router-ml eval`` and ``router-ml bench``: routing quality and speed against baselines.

Only the standard library is imported at module level, so ``router-ml --help`` stays fast and
works without the evaluation extras; the work happens in :mod:`router_ml_lab.evaluate.pipeline`.
"""

from __future__ import annotations

import argparse
import sys
from typing import Any

from router_ml.cli import add_model_arguments, require_modules
from router_ml_lab.quality import DEFAULT_DATA

ALL_BASELINES = (
    "always-economy",
    "always-premium",
    "random",
    "oracle",
    "length",
    "rules",
    "litellm-heuristic",
    "litellm-heuristic_v2",
    "knn",
)


def register_eval(subparsers: Any) -> None:
    """Add ``eval`` (entry point ``eval``): it needs the bench extra (plots, baselines)."""
    require_modules("matplotlib", extra="bench")
    evaluate = subparsers.add_parser(
        "eval",
        help="route labeled traffic with router-ml and baselines; write report.json/.md + plots",
        description="Route every labeled request with router-ml and each baseline and peer, and "
        "write report.json, report.md and PNG plots to --report. By default only the held-out "
        "test split is evaluated (records the model neither trained nor calibrated on); --split "
        "all/train/validation include data the model learned from, and the console and the "
        "report warn that those numbers are in-sample. The label rule, the output-token "
        "default and the split fractions and seed are the evaluated model's (metadata.json "
        "'contract'), so a model is measured by the rules it was trained and carded with.",
    )
    _common(evaluate, report_required=False)
    evaluate.add_argument(
        "--suite",
        metavar="FILE",
        help="instead of labeled traffic, route a sense suite (e.g. examples/sense.jsonl) and "
        "report hard-above-economy and easy-at-economy shares and every item; --report DIR also "
        "writes suite.json there",
    )
    evaluate.add_argument(
        "--policy", metavar="FILE", help="routing policy for --suite (default: the shipped one)"
    )
    evaluate.add_argument(
        "--data",
        nargs="+",
        metavar="PATH",
        help=f"traffic files or folders (default: {DEFAULT_DATA}/traffic)",
    )
    evaluate.add_argument(
        "--catalog",
        metavar="FILE",
        help=f"models.json with tiers and prices (default: {DEFAULT_DATA}/models.json)",
    )
    evaluate.add_argument(
        "--split",
        choices=("test", "all", "train", "validation"),
        default="test",
        help="which grouped split of the data to evaluate (default: test, held out from "
        "training; the others are in-sample for a model trained on this data)",
    )
    evaluate.add_argument(
        "--baselines",
        nargs="*",
        choices=ALL_BASELINES,
        default=ALL_BASELINES,
        metavar="NAME",
        help=f"baselines and peers to run (default: all of {', '.join(ALL_BASELINES)})",
    )
    evaluate.add_argument(
        "--rules-policy",
        default="examples/policy-rules.yaml",
        metavar="FILE",
        help="policy of the rule baseline (default: examples/policy-rules.yaml)",
    )
    evaluate.add_argument(
        "--sample",
        type=int,
        metavar="N",
        help="evaluate a seeded random sample of N labeled records (quick runs)",
    )
    evaluate.add_argument(
        "--as-follow-up",
        action="store_true",
        help="deliver each record as a conversation: its last user turn's material, an "
        "assistant acknowledgement, then its last paragraph, line or sentence as the ask "
        "(same labels; how routing holds when the ask is a follow-up)",
    )
    evaluate.add_argument(
        "--bench", action="store_true", help="also run the speed benchmark and put it in the report"
    )
    evaluate.set_defaults(func=run_eval)


def register_bench(subparsers: Any) -> None:
    """Add ``bench`` (entry point ``bench``): it needs the bench extra (plots)."""
    require_modules("matplotlib", extra="bench")
    bench = subparsers.add_parser(
        "bench",
        help="route() latency p50/p99 and batch throughput: router-ml vs baselines and LiteLLM",
        description="Time route() per request (one core, warm) for router-ml and every baseline "
        "on the real request shapes in requests/*.jsonl.gz and on generated 1k/10k/100k-char "
        "prompts; print one line per router and workload as it finishes; write bench.json, "
        "latency.png and report.md to --report (created if missing). --calls and --max-seconds "
        "bound each router and workload: --calls 200 --max-seconds 1 is a quick look.",
    )
    _common(bench)
    bench.add_argument(
        "--requests",
        nargs="+",
        metavar="FILE",
        help=f"request-shape files (default: {DEFAULT_DATA}/requests/*.jsonl.gz)",
    )
    bench.add_argument(
        "--baselines",
        nargs="*",
        default=ALL_BASELINES,
        metavar="NAME",
        choices=ALL_BASELINES,
        help="routers to time besides router-ml (the oracle "
        "and kNN are never timed: no lookup table / no training data here)",
    )
    bench.add_argument(
        "--rules-policy",
        default="examples/policy-rules.yaml",
        metavar="FILE",
        help="policy of the rule baseline",
    )
    bench.set_defaults(func=run_bench_command)


def _common(parser: argparse.ArgumentParser, report_required: bool = True) -> None:
    add_model_arguments(parser)
    parser.add_argument("--report", required=report_required, metavar="DIR", help="output folder")
    parser.add_argument(
        "--calls",
        type=int,
        default=1000,
        metavar="N",
        help="timed route() calls per router and workload (default: 1000)",
    )
    parser.add_argument(
        "--max-seconds",
        type=float,
        default=3.0,
        metavar="S",
        help="time cap per router and workload for each bench phase: warm-up, timed calls, "
        "batches (default: 3)",
    )
    parser.add_argument(
        "--no-pin", action="store_true", help="do not pin the benchmark to one CPU core"
    )


def run_eval(args: argparse.Namespace) -> int:
    if args.suite is not None:
        return run_suite_command(args)
    if args.report is None:
        print("router-ml eval: --report DIR is required (or --suite FILE)", file=sys.stderr)
        return 2
    from router_ml_lab.evaluate.pipeline import eval_command

    return eval_command(args)


def run_suite_command(args: argparse.Namespace) -> int:
    """``router-ml eval --suite FILE``: the sense suite with the chosen model and policy."""
    import json
    from pathlib import Path

    from router_ml.cli import load_router
    from router_ml_lab.quality.suite import format_summary, load_suite, run_suite, summarize

    try:
        items = load_suite(args.suite)
    except (OSError, ValueError) as exc:
        print(f"router-ml eval: {exc}", file=sys.stderr)
        return 1
    summary = summarize(run_suite(load_router(args), items))
    print(format_summary(summary))
    if args.report is not None:
        out = Path(args.report)
        out.mkdir(parents=True, exist_ok=True)
        (out / "suite.json").write_text(json.dumps(summary, indent=1) + "\n", encoding="utf-8")
    return 0


def run_bench_command(args: argparse.Namespace) -> int:
    from router_ml_lab.evaluate.pipeline import bench_command

    return bench_command(args)
