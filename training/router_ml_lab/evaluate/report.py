"""``report.json`` and a ``report.md`` that reads on its own: headline table first, then detail.

The Markdown states what data the numbers come from and whether the model trained on it, because
an in-sample accuracy next to a held-out one is the most common way a router report misleads.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

from router_ml.tiers import TIERS
from router_ml_lab.evaluate.cascade import cascade_markdown

HEADLINE_WORKLOAD_PREFERENCE = ("tau_airline", "arena_hard")


def write_json(report: dict[str, Any], path: Path) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    text = json.dumps(_finite(report), indent=2, default=_json_default, allow_nan=False)
    path.write_text(text + "\n", encoding="utf-8")
    return path


def _finite(value: Any) -> Any:
    """NaN (an undefined metric) becomes null: strict JSON has no NaN."""
    if isinstance(value, float) and value != value:
        return None
    if isinstance(value, dict):
        return {k: _finite(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_finite(v) for v in value]
    return value


def _json_default(value: Any) -> Any:
    if hasattr(value, "tolist"):
        return value.tolist()
    raise TypeError(f"not JSON serialisable: {type(value).__name__}")


def _per_source_table(
    title: str,
    routers: list[dict[str, Any]],
    sources: list[str],
    cell: Callable[[dict[str, Any]], str],
) -> list[str]:
    """A Markdown table: one row per router, one column per source, ``cell`` of its metrics."""
    header = "| router | " + " | ".join(sources) + " |"
    lines = [title, "", header, "|---|" + "---:|" * len(sources)]
    for router in routers:
        cells = [cell(router["per_source"][s]) for s in sources]
        lines.append(f"| {router['name']} | " + " | ".join(cells) + " |")
    return lines


def _pct(value: float | None) -> str:
    return "—" if value is None or value != value else f"{value:.1%}"


def _num(value: float | None, digits: int = 3) -> str:
    return "—" if value is None or value != value else f"{value:.{digits}f}"


def _us(value: float | None) -> str:
    if value is None:
        return "—"
    return f"{value / 1000:.2f} ms" if value >= 1000 else f"{value:.0f} µs"


def headline_rows(report: dict[str, Any], bench: dict[str, Any] | None) -> list[dict[str, Any]]:
    """One row per router: the numbers a reader compares first."""
    workload = _headline_workload(bench)
    rows = []
    for router in report["routers"]:
        pooled = router["pooled"]
        rl = router["routellm"] or {}
        latency = None
        if bench is not None and workload is not None:
            latency = bench["results"].get(router["name"], {}).get(workload, {}).get("p50_us")
        rows.append(
            {
                "router": router["name"],
                "kind": router["kind"],
                "accuracy": pooled["accuracy"],
                "under_routing": pooled["under_routing"],
                "over_routing": pooled["over_routing"],
                "cost_vs_premium": pooled["cost_vs_premium"],
                "quality_kept": pooled["quality_kept"],
                "premium_share": pooled["tier_shares"]["premium"],
                "apgr": rl.get("apgr"),
                "aiq": router["cost_quality"]["aiq"],
                "p50_us": latency,
            }
        )
    return rows


def _headline_workload(bench: dict[str, Any] | None) -> str | None:
    if not bench or not bench.get("results"):
        return None
    workloads = list(next(iter(bench["results"].values())))
    for name in HEADLINE_WORKLOAD_PREFERENCE:
        if name in workloads:
            return name
    return workloads[0] if workloads else None


def headline_table(report: dict[str, Any], bench: dict[str, Any] | None) -> str:
    workload = _headline_workload(bench)
    latency_header = f"p50 route() ({workload})" if workload else "p50 route()"
    lines = [
        f"| router | accuracy | under-routing | over-routing | cost vs premium | quality kept "
        f"| premium share | APGR | AIQ | {latency_header} |",
        "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for row in headline_rows(report, bench):
        lines.append(
            f"| {row['router']} | {_pct(row['accuracy'])} | {_pct(row['under_routing'])} "
            f"| {_pct(row['over_routing'])} | {_pct(row['cost_vs_premium'])} "
            f"| {_pct(row['quality_kept'])} | {_pct(row['premium_share'])} | {_num(row['apgr'])} "
            f"| {_num(row['aiq'])} | {_us(row['p50_us'])} |"
        )
    return "\n".join(lines)


def render_markdown(
    report: dict[str, Any], bench: dict[str, Any] | None, figures: dict[str, str]
) -> str:
    """The whole report as Markdown; ``figures`` maps a title to a PNG path relative to it."""
    context = report["context"]
    out = ["# router-ml evaluation", ""]
    out += _data_section(report, context)
    out += ["## Headline", "", headline_table(report, bench), ""]
    out += [
        f"Accuracy target: {report['accuracy_target']:.0%}; always answering the majority label "
        f"scores {_pct(_majority(report))} on these records. Cost and quality are relative to "
        "sending everything to premium. APGR is economy vs premium on records where both ran "
        "(0.5 = random); AIQ is the area under the cost–quality hull over the range from "
        "all-economy to all-premium cost (only for routers with a threshold to sweep).",
        "",
    ]
    out += _noise_section(report)
    out += _per_kind_section(report)
    out += _per_source_section(report)
    out += _routellm_section(report)
    out += cascade_markdown(report.get("cascade") or [])
    if bench is not None:
        out += _bench_section(bench)
    out += _routers_section(report)
    if figures:
        out += ["## Figures", ""]
        for title, relative in figures.items():
            out += [f"### {title}", "", f"![{title}]({relative})", ""]
    out += _definitions()
    return "\n".join(out).rstrip() + "\n"


def render_bench_markdown(bench: dict[str, Any], figures: dict[str, str]) -> str:
    """report.md of a ``bench`` run on its own (no routing-quality report in the folder)."""
    out = ["# router-ml speed benchmark", "", *_bench_section(bench)]
    note = bench["settings"].get("reference_note")
    if note:
        out += [f"Note: {note}.", ""]
    for title, relative in figures.items():
        out += [f"## {title}", "", f"![{title}]({relative})", ""]
    return "\n".join(out).rstrip() + "\n"


def _majority(report: dict[str, Any]) -> float | None:
    return report["routers"][0]["pooled"]["majority_accuracy"] if report["routers"] else None


def _follow_up_line(context: dict[str, Any]) -> list[str]:
    """The ``--as-follow-up`` delivery, when the evaluation used it."""
    follow_up = context.get("as_follow_up")
    if not follow_up:
        return []
    return [
        f"- Delivered as follow-ups (`--as-follow-up`, router_ml_lab/quality/follow_up.py): "
        f"{follow_up['converted']} of {follow_up['records']} requests had their last user turn "
        "split into the material and, after an assistant acknowledgement, the ask (same labels); "
        "traffic kinds are those of the requests as recorded."
    ]


def _data_section(report: dict[str, Any], context: dict[str, Any]) -> list[str]:
    out = ["## What was evaluated", ""]
    if context.get("in_sample"):
        out += [
            "> **In-sample warning.** These records include data the model was trained on "
            f"({context.get('in_sample_reason', '')}). Its numbers here are optimistic and are "
            "not a measure of how it routes unseen traffic; see a `--split test` report for "
            "that.",
            "",
        ]
    else:
        out += [f"> Held-out evaluation: {context.get('held_out_reason', '')}", ""]
    out += [
        f"- Data: {', '.join(context.get('data', []))} — {report['n_records']} labeled records "
        f"(split: {context.get('split', 'all')}).",
        f"- Model: `{context.get('model', '?')}`; operating point "
        f"`{context.get('operating_point', '?')}`.",
        *_follow_up_line(context),
        f"- Labels: {context.get('label_rule', '')}.",
        f"- Cost: catalog tier prices {context.get('tier_prices', {})} (USD per million "
        f"input/output tokens); input tokens of the whole request (tool schemas included) counted "
        f"with o200k, output tokens = `max_tokens` or "
        f"{context.get('contract', {}).get('cost', {}).get('output_tokens_default')} when absent "
        "(the model's contract).",
        "",
        "Label shares (economy / standard / premium):",
        "",
        "| set | n | economy | standard | premium |",
        "|---|---:|---:|---:|---:|",
    ]
    ours = report["routers"][0] if report["routers"] else None
    for name, shares in report["label_shares"].items():
        n = (
            report["n_records"]
            if name == "pooled"
            else (ours["per_source"][name]["n"] if ours else "")
        )
        out.append(f"| {name} | {n} | " + " | ".join(_pct(shares[t]) for t in TIERS) + " |")
    return [*out, ""]


def _noise_section(report: dict[str, Any]) -> list[str]:
    rows = report["noise_reference"]
    if not rows:
        return []
    out = [
        "## Label noise reference",
        "",
        "Two near-identical snapshots of one model, same prompts: how often they pass or fail "
        "alike. A router cannot be expected to agree with single-run labels much more often.",
        "",
        "| source | models | prompts | agreement |",
        "|---|---|---:|---:|",
    ]
    for row in rows:
        out.append(
            f"| {row['source']} | {' vs '.join(row['models'])} | {row['n']} "
            f"| {_pct(row['agreement'])} |"
        )
    return [*out, ""]


def _per_kind_section(report: dict[str, Any]) -> list[str]:
    """Per traffic kind (benchmark-shaped, open-ended chat, agent/tool, long-document)."""
    routers = [r for r in report["routers"] if r.get("per_kind")]
    if not routers:
        return []
    kinds = list(routers[0]["per_kind"])
    counts = ", ".join(f"{k} {routers[0]['per_kind'][k]['n']}" for k in kinds)
    out = [
        "## Per traffic kind",
        "",
        f"Kinds from the request's shape (router_ml_lab/quality/kinds.py); records: {counts}.",
        "",
    ]
    out += _per_source_table(
        "Under-routing / economy share / APGR per kind:",
        [{**r, "per_source": r["per_kind"]} for r in routers],
        kinds,
        lambda m: (
            f"{_pct(m['under_routing'])} / {_pct(m['tier_shares']['economy'])} / {_num(m['apgr'])}"
        ),
    )
    return [*out, ""]


def _per_source_section(report: dict[str, Any]) -> list[str]:
    out = ["## Per source", ""]
    routers = report["routers"]
    if not routers:
        return out
    sources = sorted(routers[0]["per_source"])
    out += _per_source_table(
        "Under-routing (accuracy) per source: an escalation-biased router is judged by the "
        "first number.",
        routers,
        sources,
        lambda m: f"{_pct(m['under_routing'])} ({_pct(m['accuracy'])})",
    )
    out += [""]
    out += _per_source_table(
        "Cost vs premium / quality kept per source:",
        routers,
        sources,
        lambda m: f"{_pct(m['cost_vs_premium'])} / {_pct(m['quality_kept'])}",
    )
    majority = [_pct(routers[0]["per_source"][s]["majority_accuracy"]) for s in sources]
    out += [
        "",
        "| majority-label accuracy | " + " | ".join(majority) + " |",
        "|---|" + "---:|" * len(sources),
        "",
    ]
    ours = routers[0]
    out += [
        f"Confusion matrix of {ours['name']} (rows: label, columns: chosen):",
        "",
        "| label \\ chosen | " + " | ".join(TIERS) + " |",
        "|---|---:|---:|---:|",
    ]
    for tier, row in zip(TIERS, ours["pooled"]["confusion"], strict=True):
        out.append(f"| {tier} | " + " | ".join(str(v) for v in row) + " |")
    out += ["", f"Macro-F1: {_num(ours['pooled']['macro_f1'])}.", ""]
    return out


def _routellm_section(report: dict[str, Any]) -> list[str]:
    out = [
        "## RouteLLM metrics (economy vs premium)",
        "",
        "| router | records | score swept | APGR | CPT(50%) | CPT(80%) |",
        "|---|---:|---|---:|---:|---:|",
    ]
    for router in report["routers"]:
        rl = router["routellm"]
        if rl is None:
            continue
        out.append(
            f"| {router['name']} | {rl['n']} | {router['routellm_score']} "
            f"| {_num(rl['apgr'])} | {_pct(rl['cpt50'])} | {_pct(rl['cpt80'])} |"
        )
    out += [
        "",
        "A router without a continuous score is swept over its tier index (ties broken "
        "at random), so its curve is the straight line through its one operating point.",
        "",
    ]
    return out


def _bench_section(bench: dict[str, Any]) -> list[str]:
    results = bench["results"]
    workloads = list(next(iter(results.values()))) if results else []
    reference = bench.get("reference")
    out = [
        "## Speed (route() per request, one core, warm)",
        "",
        "p50 / p99 per call; batch = `route_batch` requests per second"
        + (f"; × = p50 relative to {reference}" if reference else "")
        + ".",
        "",
        "| router | " + " | ".join(workloads) + " |",
        "|---|" + "---:|" * len(workloads),
    ]
    for name, per_workload in results.items():
        cells = []
        for w in workloads:
            r = per_workload[w]
            cell = f"{_us(r['p50_us'])} / {_us(r['p99_us'])}, {r['batch_rps']:,.0f}/s"
            if reference:
                cell += f", ×{bench['ratio_to_reference_p50'][name][w]:.2f}"
            cells.append(cell)
        out.append(f"| {name} | " + " | ".join(cells) + " |")
    settings = bench["settings"]
    out += [
        "",
        f"Settings: up to {settings['n_calls']} timed calls after {settings['warmup']} "
        f"warm-up calls (each phase at most {settings['max_seconds']} s) per router and "
        f"workload; batch throughput is the median of up to {settings['batch_repeats']} batches "
        f"of up to {settings['batch_size']} requests, within the same time cap. Workload sizes: "
        f"{settings['workload_sizes']}.",
        "",
    ]
    return out


def _routers_section(report: dict[str, Any]) -> list[str]:
    out = ["## Routers", ""]
    for router in report["routers"]:
        out.append(f"- **{router['name']}** ({router['kind']}): {router['description']}")
    for name, reason in report.get("skipped", {}).items():
        out.append(f"- **{name}**: skipped — {reason}")
    return [*out, ""]


def _definitions() -> list[str]:
    return [
        "## Definitions",
        "",
        "- *Accuracy*: share routed exactly to the label tier. *Under-routing*: share sent to a "
        "tier below the label; *over-routing*: above it.",
        "- *Quality kept*: mean outcome of the chosen tier's representative models divided by "
        "always-premium's. Where a record has no model of the chosen tier, the request is served "
        "(scored and paid) by the next more capable tier that has one, else the next cheaper.",
        "- *Cost vs premium*: total cost of the serving tiers at the catalog's tier prices divided "
        "by always-premium's (same serving rule).",
        "- *PGR* = (r(router) − r(economy)) / (r(premium) − r(economy)); *APGR* = area under PGR "
        "against the share of premium calls; *CPT(x)* = smallest premium share reaching PGR x "
        "(RouteLLM, Ong et al. 2024).",
        "- *AIQ* = area under the non-decreasing convex hull of (cost, quality) points divided "
        "by the cost range (RouterBench, Hu et al. 2024).",
        "",
    ]
