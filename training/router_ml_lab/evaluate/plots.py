"""PNG figures of an evaluation: cost–quality curves, confusion matrix, per-source bars, latency.

matplotlib is imported inside each function with the non-interactive Agg backend, so importing
this module costs nothing and plotting works on a headless server.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from router_ml.tiers import TIERS


def _pyplot() -> Any:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def cost_quality_plot(report: dict[str, Any], path: Path) -> Path:
    """Every router on one cost–quality plane: sweeps as hull curves, fixed routers as points."""
    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(11, 5.5))
    markers = "osD^vP*Xh<>"
    for i, router in enumerate(report["routers"]):
        cq = router["cost_quality"]
        cost, quality = cq["point"]
        line = None
        if cq["hull"] is not None:
            # the hull is held flat after its best point: paying more never has to lose quality
            hull_cost = [*cq["hull"]["cost"], 1.0]
            hull_quality = [*cq["hull"]["quality"], cq["hull"]["quality"][-1]]
            (line,) = ax.plot(
                hull_cost, hull_quality, lw=1.5, label=f"{router['name']} (AIQ {cq['aiq']:.3f})"
            )
        color = line.get_color() if line is not None else None
        ax.scatter(
            [cost],
            [quality],
            marker=markers[i % len(markers)],
            s=60,
            color=color,
            edgecolor="black",
            zorder=3,
            label=None if line is not None else router["name"],
        )
    ax.set_xlabel("cost relative to always-premium")
    ax.set_ylabel("quality kept (mean outcome / always-premium)")
    ax.set_title("Cost–quality: curves are threshold sweeps (hull), markers the shipped settings")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8, loc="upper left", bbox_to_anchor=(1.01, 1.0))
    return _save(fig, path)


def confusion_plot(router: dict[str, Any], path: Path) -> Path:
    """Row-normalised confusion matrix of one router (rows: label, columns: chosen tier)."""
    plt = _pyplot()
    counts = np.array(router["pooled"]["confusion"], dtype=float)
    rows = counts / np.maximum(counts.sum(axis=1, keepdims=True), 1)
    fig, ax = plt.subplots(figsize=(5, 4.2))
    image = ax.imshow(rows, cmap="Blues", vmin=0, vmax=1)
    for i in range(len(TIERS)):
        for j in range(len(TIERS)):
            ax.text(
                j,
                i,
                f"{rows[i, j]:.0%}\n({int(counts[i, j])})",
                ha="center",
                va="center",
                color="white" if rows[i, j] > 0.6 else "black",
                fontsize=9,
            )
    ax.set_xticks(range(len(TIERS)), TIERS)
    ax.set_yticks(range(len(TIERS)), TIERS)
    ax.set_xlabel("chosen tier")
    ax.set_ylabel("label (needed tier)")
    ax.set_title(f"{router['name']}: below the diagonal = under-routed")
    fig.colorbar(image, ax=ax, fraction=0.046)
    return _save(fig, path)


def per_source_plot(report: dict[str, Any], path: Path, metric: str = "accuracy") -> Path:
    """Grouped bars: ``metric`` of every router (but the oracle) on every source."""
    plt = _pyplot()
    routers = [r for r in report["routers"] if r["kind"] != "reference"]
    sources = sorted(routers[0]["per_source"]) if routers else []
    width = 0.8 / max(len(routers), 1)
    fig, ax = plt.subplots(figsize=(max(8, 1.4 * len(sources) + 2), 5))
    x = np.arange(len(sources))
    for i, router in enumerate(routers):
        values = [router["per_source"][s][metric] for s in sources]
        ax.bar(x + i * width - 0.4 + width / 2, values, width, label=router["name"])
    if metric == "accuracy":
        ax.axhline(report["accuracy_target"], color="black", ls="--", lw=1, label="target")
    ax.set_xticks(x, sources, rotation=20)
    ax.set_ylabel(metric.replace("_", " "))
    ax.set_title(f"{metric.replace('_', ' ')} per source")
    ax.legend(fontsize=7, ncol=2)
    ax.grid(axis="y", alpha=0.3)
    return _save(fig, path)


def routellm_plot(report: dict[str, Any], path: Path) -> Path:
    """PGR against the share of calls sent to premium (economy vs premium), per router."""
    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(7, 5))
    for router in report["routers"]:
        rl = router["routellm"]
        if rl is None or router["routellm_score"] != "continuous":
            continue
        ax.plot(
            rl["curve"]["strong_share"],
            rl["curve"]["pgr"],
            label=f"{router['name']} (APGR {rl['apgr']:.3f})",
        )
    ax.plot([0, 1], [0, 1], color="gray", ls=":", label="random (expected)")
    ax.set_xlabel("share of calls to premium")
    ax.set_ylabel("performance gap recovered")
    ax.set_title("RouteLLM call–performance curve: economy vs premium")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    return _save(fig, path)


def latency_plot(bench: dict[str, Any], path: Path) -> Path:
    """p50 (bar) and p99 (tick) route() latency per router and workload, log scale; and the
    distribution of router-ml's per-call latency on every workload."""
    plt = _pyplot()
    results = bench["results"]
    routers = list(results)
    workloads = list(next(iter(results.values()))) if results else []
    fig, (bars, hist) = plt.subplots(1, 2, figsize=(14, 5), gridspec_kw={"width_ratios": [3, 2]})
    width = 0.8 / max(len(routers), 1)
    x = np.arange(len(workloads))
    for i, name in enumerate(routers):
        p50 = [results[name][w]["p50_us"] for w in workloads]
        p99 = [results[name][w]["p99_us"] for w in workloads]
        offset = x + i * width - 0.4 + width / 2
        bars.bar(offset, p50, width, label=name)
        bars.scatter(offset, p99, marker="_", color="black", s=40, zorder=3)
    bars.set_yscale("log")
    bars.set_xticks(x, workloads, rotation=15)
    bars.set_ylabel("route() latency, µs (bar p50, tick p99)")
    bars.set_title("Per-request latency, one core, warm")
    bars.legend(fontsize=7, ncol=2)
    bars.grid(axis="y", alpha=0.3, which="both")
    ours = next((n for n in routers if n.startswith("router-ml")), None)
    if ours is not None:
        for workload in workloads:
            values = np.asarray(bench["samples_us"][ours][workload])
            hist.hist(
                values,
                bins=np.geomspace(max(values.min(), 1), values.max() * 1.01, 40),
                histtype="step",
                label=workload,
            )
        hist.set_xscale("log")
        hist.set_xlabel("µs per route() call")
        hist.set_ylabel("calls")
        hist.set_title(f"{ours}: latency distribution")
        hist.legend(fontsize=8)
    return _save(fig, path)


def _save(fig: Any, path: Path) -> Path:
    import matplotlib.pyplot as plt

    path.parent.mkdir(parents=True, exist_ok=True)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def traffic_plot(rows: list[dict[str, Any]], eval_set: Any, path: Path) -> Path:
    """Label shares and all-premium spend share per source, and input-token distributions."""
    plt = _pyplot()
    sources = [r for r in rows if r["source"] != "pooled"]
    names = [r["source"] for r in sources]
    fig, (labels_ax, spend_ax, tokens_ax) = plt.subplots(1, 3, figsize=(16, 4.8))
    bottom = np.zeros(len(sources))
    for tier in TIERS:
        values = np.array([r[f"label_{tier}"] for r in sources])
        labels_ax.barh(names, values, left=bottom, label=tier)
        bottom += values
    labels_ax.set_xlabel("share of labeled records")
    labels_ax.set_title("Needed tier (label) per source")
    labels_ax.legend(fontsize=8, loc="upper center", bbox_to_anchor=(0.5, -0.15), ncol=3)
    spend_ax.barh(names, [r["premium_spend_share"] for r in sources], color="tab:red")
    spend_ax.set_xlabel("share of the all-premium bill")
    spend_ax.set_title("Where the spend goes if everything is premium")
    tokens = np.asarray(eval_set.input_tokens)
    bins = np.geomspace(max(tokens.min(), 1), max(tokens.max(), 2), 40)
    for name in names:
        tokens_ax.hist(tokens[eval_set.sources == name], bins=bins, histtype="step", label=name)
    tokens_ax.set_xscale("log")
    tokens_ax.set_xlabel("input tokens (o200k)")
    tokens_ax.set_ylabel("records")
    tokens_ax.set_title("Prompt size per source")
    tokens_ax.legend(fontsize=7)
    return _save(fig, path)
