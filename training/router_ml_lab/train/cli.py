"""``router-ml train``: the argparse wiring of the training pipeline.

Only the standard library (and ``router_ml.cli``) is imported at module level, so
``router-ml --help`` stays fast; the pipeline (numpy, LightGBM, ONNX) loads when the command runs.
"""

from __future__ import annotations

import argparse
import json
import sys

from router_ml.cli import require_modules
from router_ml_lab.quality import DEFAULT_DATA


def register(subparsers: argparse._SubParsersAction) -> None:
    """Add the ``train`` subcommand to the ``router-ml`` parser (entry point ``train``)."""
    require_modules("sklearn", "lightgbm", "onnx", "onnxmltools", extra="train")
    parser = subparsers.add_parser(
        "train",
        help="train a tier model from labeled traffic",
        description=(
            "Train, calibrate and export a tier model: read labeled traffic (JSONL, optionally "
            "gzip'd: id, source, category, request, outcomes and/or tier), label it with the "
            "reference rule, fit an escalation-biased LightGBM, calibrate risks and operating "
            "points on a validation split, export model.onnx + metadata.json + estimator.joblib "
            "+ MODEL_CARD.md into --out. Deterministic for a given seed."
        ),
    )
    parser.add_argument(
        "--data",
        nargs="+",
        default=[str(DEFAULT_DATA / "traffic")],
        metavar="PATH",
        help="traffic files or directories of *.jsonl[.gz] (default: %(default)s)",
    )
    parser.add_argument(
        "--catalog",
        default=str(DEFAULT_DATA / "models.json"),
        metavar="FILE",
        help="model catalog: model -> tier and prices (default: %(default)s)",
    )
    parser.add_argument("--out", required=True, metavar="DIR", help="model directory to write")
    parser.add_argument(
        "--suite",
        nargs="+",
        default=[],
        metavar="FILE",
        help="sense suites (e.g. examples/sense.jsonl examples/sense-check.jsonl) routed with the "
        "new model; their results go into metadata.json and the model card",
    )
    parser.add_argument(
        "--unlabeled",
        nargs="*",
        default=[],
        metavar="PATH",
        help="unlabeled request files or directories (e.g. ../shared/data/requests): the model "
        "card reports the share of each source flagged out of the training distribution",
    )
    parser.add_argument(
        "--config",
        default=None,
        metavar="FILE",
        help="hyperparameter YAML (default: router_ml_lab/train/config.yaml)",
    )
    parser.add_argument(
        "--target-under-routing",
        type=float,
        default=None,
        metavar="RATE",
        help="default operating point's maximum under-routing on validation "
        "(default: the config's, 0.05); added to the stored operating points",
    )
    parser.add_argument("--seed", type=int, default=0, help="random seed (default: %(default)s)")
    parser.add_argument(
        "--sample",
        type=int,
        default=None,
        metavar="N",
        help="train on a seeded sample of N records (quick CI runs)",
    )
    progress = parser.add_mutually_exclusive_group()
    progress.add_argument(
        "--progress",
        dest="progress",
        action="store_true",
        default=None,
        help="always show progress bars on stderr",
    )
    progress.add_argument(
        "--no-progress",
        dest="progress",
        action="store_false",
        help="never show progress bars (default: only on a terminal)",
    )
    parser.set_defaults(func=run_train)


def run_train(args: argparse.Namespace) -> int:
    """Run the pipeline; print the bad-line report and the headline test metrics."""
    from router_ml_lab.train.export import ExportError
    from router_ml_lab.train.pipeline import train

    if args.sample is not None and args.sample < 1:
        print("router-ml train: --sample must be a positive number of records", file=sys.stderr)
        return 2
    try:
        result = train(
            args.data,
            args.catalog,
            args.out,
            config_path=args.config,
            target_under_routing=args.target_under_routing,
            seed=args.seed,
            sample=args.sample,
            progress=args.progress,
            unlabeled=args.unlabeled,
            suites=args.suite,
        )
    except (OSError, ValueError, ExportError) as exc:
        print(f"router-ml train: {exc}", file=sys.stderr)
        return 1
    if result.report.n_bad:
        print(result.report.summary(), file=sys.stderr)
    metadata = result.metadata
    for warning in metadata["data_warnings"]:
        print(f"router-ml train: warning: {warning}", file=sys.stderr)
    pooled = metadata["metrics"]["test"][metadata["default_operating_point"]]["pooled"]
    headline = {
        "out": str(result.out_dir),
        "operating_point": metadata["default_operating_point"],
        "test_pooled": {
            k: pooled[k]
            for k in (
                "n",
                "accuracy",
                "majority_accuracy",
                "under_routing",
                "tier_shares",
                "below_premium_share",
                "cost_vs_premium",
                "quality_kept",
                "apgr",
            )
        },
        "test_pooled_ci95": pooled.get("ci95", {}),
        "test_ece_needs_above_economy": pooled["ece"]["needs_above_economy"],
    }
    print(json.dumps(headline, indent=1))
    return 0
