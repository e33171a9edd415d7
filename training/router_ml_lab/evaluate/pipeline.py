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

from router_ml.model import (
    EvaluationContract,
    default_model_dir,
    parse_operating_point,
    read_metadata,
)
from router_ml.tiers import TIERS
from router_ml_lab.evaluate import plots
from router_ml_lab.evaluate import report as report_module
from router_ml_lab.evaluate.baselines import LearnedRouter, TierRouter, load_learned_router
from router_ml_lab.evaluate.evaluate import RouterRun, evaluate, request_kinds, run_router
from router_ml_lab.evaluate.registry import ROUTERS, RouterContext, build_routers
from router_ml_lab.evaluate.speed import (
    GENERATED_SIZES,
    generated_prompt,
    load_request_shapes,
    pin_to_one_core,
    run_bench,
)
from router_ml_lab.quality import DEFAULT_DATA
from router_ml_lab.quality.evidence import Evidence, build_evidence
from router_ml_lab.quality.follow_up import follow_up_set

SAMPLE_SEED = 0
LITELLM_REFERENCE = "LiteLLM complexity (heuristic)"
BENCH_WORKLOAD_LIMIT = 500
"""Distinct requests per real-shape workload in the bench (cycled through for more calls)."""


@dataclass
class EvalData:
    """The labeled records of one split, plus the training records a fitted peer may learn from."""

    eval_set: Evidence
    train_set: Evidence | None
    context: dict[str, Any]
    kinds: np.ndarray | None = None
    """Traffic kind of each evaluated record when it is not read from ``eval_set``'s requests
    (``--as-follow-up``: the kinds of the requests as recorded)."""


def load_eval_data(
    data: Sequence[str],
    catalog_path: str,
    contract: EvaluationContract,
    split: str = "all",
    sample: int | None = None,
    as_follow_up: bool = False,
) -> EvalData:
    """Read, label, price and split the traffic in ``data`` by the evaluated model's ``contract``.

    Tier representatives (which models stand for each tier on a source) are chosen on all the
    records read, as training chooses them: they define the label, from outcomes only, and no
    router sees them. The label rule, output-token default and split come from the contract.
    ``as_follow_up`` delivers the chosen records as conversations (:mod:`.follow_up`), after the
    split: the same records as without it.
    """
    from router_ml_lab.quality.data import read_traffic
    from router_ml_lab.quality.labels import Catalog, TierRepresentatives
    from router_ml_lab.quality.splits import SPLIT_NAMES, TRAIN, assign_splits

    catalog = Catalog.from_file(catalog_path)
    records, read_report = read_traffic(data, known_models=set(catalog.model_tier))
    if read_report.n_bad:
        print(read_report.summary(), file=sys.stderr)
    representatives = TierRepresentatives.fit(
        records, catalog, contract.label_per_tier, contract.label_tolerance
    )
    full = build_evidence(
        records, representatives, catalog.tier_prices, contract.output_tokens_default
    )
    splits = assign_splits(list(full.requests), contract.split_fractions, contract.split_seed)
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
        "contract": contract.to_dict(),
        "sample": sample,
        "records_read": read_report.n_read,
        "records_bad": read_report.n_bad,
        "label_rule": f"reference rule of the data README ({contract.label_per_tier} best models "
        "per tier and source; cheapest tier within tolerance of the best)",
        "tier_prices": {t: list(catalog.tier_prices[t]) for t in TIERS},
    }
    if not as_follow_up:
        return EvalData(eval_set, train_set, context)
    kinds = request_kinds(eval_set)
    eval_set, converted = follow_up_set(eval_set)
    context["as_follow_up"] = {"converted": converted, "records": len(eval_set)}
    return EvalData(eval_set, train_set, context, kinds)


def model_contract(model_dir: str | None) -> EvaluationContract:
    """The label, cost and split contract recorded in the evaluated model's metadata."""
    directory = Path(model_dir) if model_dir else default_model_dir()
    return EvaluationContract.from_metadata(read_metadata(directory))


@dataclass(frozen=True)
class EvalOptions:
    """What ``router-ml eval`` does, as typed parameters (the CLI fills these from its flags)."""

    data: Sequence[str] = ()
    """Traffic files or folders (empty: the default data folder's traffic/)."""
    catalog: str | None = None
    """models.json with tiers and prices (None: beside the data, else the default folder's)."""
    split: str = "test"
    model: str | None = None
    operating_point: str | float | None = None
    baselines: Sequence[str] = tuple(ROUTERS)
    rules_policy: str = "examples/policy-rules.yaml"
    sample: int | None = None
    as_follow_up: bool = False
    """Deliver each record's last user turn as material, acknowledgement, ask (``follow_up``)."""


@dataclass
class Evaluation:
    """An evaluation run: the records, the routers that ran, those skipped, and the report."""

    data: EvalData
    routers: list[tuple[TierRouter, str]]
    skipped: dict[str, str]
    report: dict[str, Any]


def run_evaluation(options: EvalOptions) -> Evaluation:
    """Route the evaluated records with router-ml and every baseline and score them all."""
    data_root = Path(DEFAULT_DATA)
    data = list(options.data) or [str(data_root / "traffic")]
    catalog = options.catalog or str(_catalog_beside(data) or data_root / "models.json")
    loaded = load_eval_data(
        data,
        catalog,
        model_contract(options.model),
        options.split,
        options.sample,
        options.as_follow_up,
    )
    ours = load_learned_router(options.model, operating_point=options.operating_point)
    loaded.context.update(model_context(ours, options.split))
    warning = _in_sample_warning(loaded.context)
    if warning:
        print(warning, file=sys.stderr)
    ctx = RouterContext(
        ours,
        loaded.eval_set,
        loaded.train_set,
        options.model,
        options.rules_policy,
        options.operating_point,
    )
    routers, skipped = build_routers(options.baselines, ctx)
    for name, reason in skipped.items():
        print(f"skipped {name}: {reason}", file=sys.stderr)
    runs: list[RouterRun] = []
    for router, kind in routers:
        print(f"routing {len(loaded.eval_set)} records with {router.name}", file=sys.stderr)
        runs.append(run_router(router, loaded.eval_set, kind))
    report = evaluate(loaded.eval_set, runs, loaded.context, skipped, loaded.kinds)
    return Evaluation(loaded, routers, skipped, report)


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
    options = EvalOptions(
        data=args.data or (),
        catalog=args.catalog,
        split=args.split,
        model=args.model,
        operating_point=parse_operating_point(args.operating_point),
        baselines=args.baselines,
        rules_policy=args.rules_policy,
        sample=args.sample,
        as_follow_up=args.as_follow_up,
    )
    result = run_evaluation(options)
    report_dir = Path(args.report)
    report_module.write_json(result.report, report_dir / "report.json")
    if args.bench:
        _bench(result.routers, args, report_dir)
    markdown = write_outputs(report_dir)
    print(report_module.headline_table(result.report, _read_bench(report_dir)))
    warning = _in_sample_warning(result.report["context"])
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
    ctx = RouterContext(ours, None, None, args.model, args.rules_policy, point)
    routers, skipped = build_routers(names, ctx)
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


def model_context(ours: LearnedRouter, split: str) -> dict[str, Any]:
    """What the report says about the evaluated model and whether its records are held out."""
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
