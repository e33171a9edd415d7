"""The steps behind ``router-ml eval`` and ``bench``, callable from notebooks and scripts too.

read traffic → label and price it (:mod:`dataset`) → pick the split → build router-ml, the
baselines and the peers → route and score (:mod:`evaluate`) → time (:mod:`speed`) → write
``report.json``, ``bench.json``, ``report.md`` and the PNGs (:mod:`report`, :mod:`plots`).
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from router_ml.model import parse_operating_point
from router_ml.tiers import TIERS
from router_ml_lab.evaluate import plots
from router_ml_lab.evaluate import report as report_module
from router_ml_lab.evaluate.baselines import (
    AlwaysTier,
    LearnedRouter,
    LengthHeuristic,
    Oracle,
    RandomAtShares,
    TierRouter,
    load_learned_router,
)
from router_ml_lab.evaluate.cli import DEFAULT_DATA
from router_ml_lab.evaluate.evaluate import RouterRun, evaluate, run_router
from router_ml_lab.evaluate.peers import EmbeddingKNNRouter, PeerUnavailable, load_peers
from router_ml_lab.evaluate.speed import (
    GENERATED_SIZES,
    generated_prompt,
    load_request_shapes,
    pin_to_one_core,
    run_bench,
)
from router_ml_lab.quality.evidence import EvalSet, build_eval_set
from router_ml_lab.quality.metrics import tier_shares

DEFAULT_FRACTIONS = (0.70, 0.15, 0.15)
SAMPLE_SEED = 0
LITELLM_REFERENCE = "LiteLLM complexity (heuristic)"
BENCH_WORKLOAD_LIMIT = 500
"""Distinct requests per real-shape workload in the bench (cycled through for more calls)."""


@dataclass
class EvalData:
    """The labeled records of one split, plus the training records a fitted peer may learn from."""

    eval_set: EvalSet
    train_set: EvalSet | None
    context: dict[str, Any]


def load_eval_data(
    data: Sequence[str],
    catalog_path: str,
    split: str = "all",
    fractions: Sequence[float] = DEFAULT_FRACTIONS,
    seed: int = 0,
    per_tier: int = 3,
    output_tokens: int = 256,
    sample: int | None = None,
) -> EvalData:
    """Read, label, price and split the traffic in ``data``.

    Tier representatives (which models stand for each tier on a source) are chosen on all the
    records read: they define the label, from outcomes only, and no router sees them.
    """
    from router_ml_lab.quality.data import read_traffic
    from router_ml_lab.quality.labels import Catalog, TierRepresentatives
    from router_ml_lab.quality.splits import SPLIT_NAMES, TRAIN, assign_splits

    catalog = Catalog.from_file(catalog_path)
    records, read_report = read_traffic(data, known_models=set(catalog.model_tier))
    if read_report.n_bad:
        print(read_report.summary(), file=sys.stderr)
    representatives = TierRepresentatives.fit(records, catalog, per_tier=per_tier)
    full = build_eval_set(records, representatives, catalog.tier_prices, output_tokens)
    splits = assign_splits(list(full.requests), tuple(fractions), seed)
    train_set = full.subset(splits == TRAIN) if split == "test" else None
    eval_set = full if split == "all" else full.subset(splits == SPLIT_NAMES.index(split))
    if sample is not None and sample < len(eval_set):
        keep = np.zeros(len(eval_set), dtype=bool)
        keep[np.random.default_rng(SAMPLE_SEED).choice(len(eval_set), sample, replace=False)] = True
        eval_set = eval_set.subset(keep)
    context = {
        "data": [str(p) for p in data],
        "catalog": str(catalog_path),
        "split": split,
        "split_fractions": list(fractions),
        "split_seed": seed,
        "sample": sample,
        "records_read": read_report.n_read,
        "records_bad": read_report.n_bad,
        "label_rule": f"reference rule of the data README ({per_tier} best models per tier and "
        "source; cheapest tier within tolerance of the best)",
        "tier_prices": {t: list(catalog.tier_prices[t]) for t in TIERS},
        "default_output_tokens": output_tokens,
    }
    return EvalData(eval_set, train_set, context)


def model_split_settings(model_dir: str | None) -> tuple[tuple[float, float, float], int] | None:
    """The split fractions and seed the model's training recorded, if it recorded them.

    Training splits with ``assign_splits(requests, fractions, seed)``; using the same two values
    here gives exactly its test split.
    """
    from router_ml.model import default_model_dir

    directory = Path(model_dir) if model_dir else default_model_dir()
    metadata = json.loads((directory / "metadata.json").read_text(encoding="utf-8"))
    config = metadata.get("training_config") or {}
    fractions = (config.get("split") or {}).get("fractions")
    if not fractions:
        return None
    train, validation, test = (float(f) for f in fractions)
    return (train, validation, test), int(config.get("seed", 0))


def build_routers(
    ours: LearnedRouter,
    names: Sequence[str],
    eval_set: EvalSet | None,
    train_set: EvalSet | None,
    model_dir: str | None,
    rules_policy: str,
    operating_point: str | float | None = None,
) -> tuple[list[tuple[TierRouter, str]], dict[str, str]]:
    """``(router, kind)`` pairs in report order, and ``{name: reason}`` for those skipped."""
    routers: list[tuple[TierRouter, str]] = [(ours, "ours")]
    skipped: dict[str, str] = {}
    shares = None
    if eval_set is not None and "random" in names:
        shares = tier_shares(ours.route_batch(list(eval_set.requests)))
    for name in names:
        if name in ("always-economy", "always-premium"):
            routers.append((AlwaysTier(name.removeprefix("always-")), "baseline"))
        elif name == "random":
            matched = shares if shares is not None else np.full(len(TIERS), 1 / len(TIERS))
            routers.append((RandomAtShares(matched), "baseline"))
        elif name == "oracle":
            if eval_set is None:
                skipped["oracle"] = "needs labels: not a router, only the evaluation ceiling"
            else:
                routers.append((Oracle(eval_set.requests, eval_set.labels), "reference"))
        elif name == "length":
            routers.append((LengthHeuristic(), "baseline"))
        elif name == "rules":
            if not Path(rules_policy).is_file():
                skipped["rules"] = f"policy file {rules_policy} not found"
                continue
            rules = load_learned_router(
                model_dir,
                policy=rules_policy,
                name="example rule policy",
                operating_point=operating_point,
            )
            rules.description = f"{rules_policy}: rules first, router-ml for the rest"
            routers.append((rules, "baseline"))
        elif name.startswith("litellm-"):
            peers, why = load_peers([name])
            routers.extend((peer, "peer") for peer in peers)
            skipped.update(why)
        elif name == "knn":
            if train_set is None:
                skipped["knn"] = (
                    "needs a training split it is not evaluated on: run with --split test"
                )
                continue
            try:
                knn = EmbeddingKNNRouter().fit(list(train_set.requests), train_set.labels)
            except PeerUnavailable as exc:
                skipped["knn"] = str(exc)
                continue
            routers.append((knn, "peer"))
    return routers, skipped


def write_outputs(report_dir: Path) -> Path:
    """(Re)write report.md and the PNGs from the report.json and/or bench.json in ``report_dir``."""
    report_json = report_dir / "report.json"
    bench_json = report_dir / "bench.json"
    report = json.loads(report_json.read_text(encoding="utf-8")) if report_json.is_file() else None
    bench = json.loads(bench_json.read_text(encoding="utf-8")) if bench_json.is_file() else None
    figures: dict[str, str] = {}
    if report is not None:
        figures["Cost–quality"] = plots.cost_quality_plot(
            report, report_dir / "cost_quality.png"
        ).name
        figures["RouteLLM call–performance"] = plots.routellm_plot(
            report, report_dir / "routellm_curve.png"
        ).name
        figures[f"Confusion matrix ({report['routers'][0]['name']})"] = plots.confusion_plot(
            report["routers"][0], report_dir / "confusion.png"
        ).name
        figures["Under-routing, quality kept and cost per source"] = plots.per_source_plot(
            report, report_dir / "per_source.png"
        ).name
    if bench is not None:
        figures["Latency"] = plots.latency_plot(bench, report_dir / "latency.png").name
    markdown = report_dir / "report.md"
    if report is not None:
        markdown.write_text(report_module.render_markdown(report, bench, figures), encoding="utf-8")
    elif bench is not None:
        markdown.write_text(report_module.render_bench_markdown(bench, figures), encoding="utf-8")
    else:
        raise FileNotFoundError(f"neither report.json nor bench.json in {report_dir}")
    return markdown


def eval_command(args: argparse.Namespace) -> int:
    data_root = Path(DEFAULT_DATA)
    data = args.data or [str(data_root / "traffic")]
    catalog = args.catalog or str(_catalog_beside(data) or data_root / "models.json")
    recorded = model_split_settings(args.model)
    fractions = tuple(args.split_fractions or (recorded[0] if recorded else DEFAULT_FRACTIONS))
    seed = args.split_seed if args.split_seed is not None else (recorded[1] if recorded else 0)
    loaded = load_eval_data(
        data, catalog, args.split, fractions, seed, args.per_tier, args.output_tokens, args.sample
    )
    point = parse_operating_point(args.operating_point)
    ours = load_learned_router(args.model, operating_point=point)
    loaded.context.update(_model_context(ours, args.split))
    warning = _in_sample_warning(loaded.context)
    if warning:
        print(warning, file=sys.stderr)
    routers, skipped = build_routers(
        ours,
        args.baselines,
        loaded.eval_set,
        loaded.train_set,
        args.model,
        args.rules_policy,
        point,
    )
    for name, reason in skipped.items():
        print(f"skipped {name}: {reason}", file=sys.stderr)
    runs: list[RouterRun] = []
    for router, kind in routers:
        print(f"routing {len(loaded.eval_set)} records with {router.name}", file=sys.stderr)
        runs.append(run_router(router, loaded.eval_set, kind))
    report = evaluate(loaded.eval_set, runs, loaded.context, skipped)
    report_dir = Path(args.report)
    report_module.write_json(report, report_dir / "report.json")
    if args.bench:
        _bench(routers, args, report_dir)
    markdown = write_outputs(report_dir)
    print(report_module.headline_table(report, _read_bench(report_dir)))
    if warning:  # again after the table, where the eye lands
        print(f"\n{warning}", file=sys.stderr)
    print(f"\nwrote {markdown}", file=sys.stderr)
    return 0


def _in_sample_warning(context: dict[str, Any]) -> str | None:
    if not context.get("in_sample"):
        return None
    return (
        f"WARNING: in-sample evaluation: {context.get('in_sample_reason', '')}. These numbers "
        "are optimistic; run with --split test (the default) for held-out ones."
    )


def bench_command(args: argparse.Namespace) -> int:
    point = parse_operating_point(args.operating_point)
    ours = load_learned_router(args.model, operating_point=point)
    names = [n for n in args.baselines if n not in ("oracle", "knn")]
    routers, skipped = build_routers(ours, names, None, None, args.model, args.rules_policy, point)
    for name, reason in skipped.items():
        print(f"skipped {name}: {reason}", file=sys.stderr)
    report_dir = Path(args.report)
    _bench(routers, args, report_dir, args.requests)
    markdown = write_outputs(report_dir)
    bench = _read_bench(report_dir)
    for name, per_workload in (bench or {}).get("results", {}).items():
        cells = ", ".join(
            f"{w} p50 {r['p50_us']:.0f}µs p99 {r['p99_us']:.0f}µs" for w, r in per_workload.items()
        )
        print(f"{name}: {cells}")
    print(f"\nwrote {report_dir / 'bench.json'} and {markdown}", file=sys.stderr)
    return 0


def bench_workloads(request_files: Sequence[str] | None) -> dict[str, list[dict[str, Any]]]:
    """Real request shapes (first ``BENCH_WORKLOAD_LIMIT`` of each file) and generated prompts."""
    if request_files is None:
        folder = Path(DEFAULT_DATA) / "requests"
        request_files = sorted(str(p) for p in folder.glob("*.jsonl*"))
    workloads = load_request_shapes(request_files, limit=BENCH_WORKLOAD_LIMIT)
    for size in GENERATED_SIZES:
        workloads[f"generated {size // 1000}k chars"] = [
            generated_prompt(size, seed) for seed in range(20)
        ]
    return workloads


def _bench(
    routers: Sequence[tuple[TierRouter, str]],
    args: argparse.Namespace,
    report_dir: Path,
    request_files: Sequence[str] | None = None,
) -> None:
    timed = [router for router, kind in routers if kind != "reference"]
    cpu = None if args.no_pin else pin_to_one_core()
    workloads = bench_workloads(request_files)
    print(
        f"bench: {len(timed)} routers x {len(workloads)} workloads, up to {args.calls} calls and "
        f"{args.max_seconds:g} s per phase each",
        file=sys.stderr,
    )
    result = run_bench(
        timed,
        workloads,
        n_calls=args.calls,
        max_seconds=args.max_seconds,
        reference=LITELLM_REFERENCE,
        log=lambda line: print(line, file=sys.stderr, flush=True),
    )
    result["settings"]["pinned_cpu"] = cpu
    if result["reference"] is None:
        result["settings"]["reference_note"] = (
            f"{LITELLM_REFERENCE} did not run (not installed), so no ratios"
        )
    report_module.write_json(result, report_dir / "bench.json")


def _read_bench(report_dir: Path) -> dict[str, Any] | None:
    path = report_dir / "bench.json"
    return json.loads(path.read_text(encoding="utf-8")) if path.is_file() else None


def _model_context(ours: LearnedRouter, split: str) -> dict[str, Any]:
    router = ours.router
    metadata = router.model.metadata
    context = {
        "model": _display_path(router.model.source),
        "operating_point": router.operating_point.name,
        "thresholds": [float(t) for t in router.thresholds],
        "model_training_config": metadata.get("training_config"),
        "model_data_fingerprint": metadata.get("data_fingerprint"),
    }
    if split == "test":
        context["in_sample"] = False
        context["held_out_reason"] = (
            "the test split (grouped by question stem, the training pipeline's split function) "
            "that training holds out; valid for a model trained with these split settings"
        )
    else:
        context["in_sample"] = True
        context["in_sample_reason"] = (
            "the whole traffic folder, which the shipped model is trained on"
            if split == "all"
            else f"the {split} split, which training fits or calibrates on"
        )
    return context


def _display_path(path: str) -> str:
    """``path`` relative to the working directory when inside it: a report names no machine."""
    resolved = Path(path).resolve()
    try:
        return str(resolved.relative_to(Path.cwd().resolve()))
    except ValueError:
        return path


def _catalog_beside(data: Sequence[str]) -> Path | None:
    first = Path(data[0])
    candidate = (first if first.is_dir() else first.parent).parent / "models.json"
    return candidate if candidate.is_file() else None
