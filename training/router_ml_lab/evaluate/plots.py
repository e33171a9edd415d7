"""PNG figures of an evaluation: cost–quality curves, confusion matrix, per-source dots, latency.

matplotlib is imported inside each function with the non-interactive Agg backend, so importing
this module costs nothing and plotting works on a headless server.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from router_ml.tiers import TIERS


def _pyplot() -> Any:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


MARKERS = "osD^vPXhp<>d"
"""Marker cycle; the star is kept for the oracle, so no real router is mistaken for it."""


def router_styles(routers: list[dict[str, Any]]) -> dict[str, dict[str, Any]]:
    """One colour and marker per router name, the same in every figure of one report.

    Colours follow the report's router order (tab10 first, skipping the oracle, which is black
    with a star), so router-ml is always the first colour and two routers never share one.
    """
    plt = _pyplot()
    palette = [*plt.get_cmap("tab10").colors, *plt.get_cmap("Dark2").colors]
    styles: dict[str, dict[str, Any]] = {}
    colour = 0
    for i, router in enumerate(routers):
        if router["kind"] == "reference":
            styles[router["name"]] = {"color": "black", "marker": "*"}
            continue
        marker = "o" if router["kind"] == "ours" else MARKERS[i % len(MARKERS)]
        styles[router["name"]] = {"color": palette[colour % len(palette)], "marker": marker}
        colour += 1
    return styles


def cost_quality_plot(report: dict[str, Any], path: Path) -> Path:
    """Every router on one cost–quality plane: sweeps as hull curves, shipped settings as markers.

    The y axis is fitted to the real routers. The oracle (the labels themselves) usually keeps far
    more than always-premium's quality, so it is pinned to the top edge with its numbers written
    out instead of squashing the band where the routers actually differ.
    """
    plt = _pyplot()
    from matplotlib.lines import Line2D
    from matplotlib.ticker import PercentFormatter

    routers = report["routers"]
    styles = router_styles(routers)
    y_low, y_high = _quality_range([r for r in routers if r["kind"] != "reference"])
    fig, ax = plt.subplots(figsize=(11, 6))
    ax.axhline(1.0, color="gray", lw=0.8, ls=":")
    ax.text(
        0.005,
        1.0,
        "always-premium quality",
        color="gray",
        fontsize=8,
        va="bottom",
        transform=ax.get_yaxis_transform(),
    )
    handles, labels = [], []
    points: list[tuple[str, tuple[float, float]]] = []
    for router in routers:
        style, cq, ours = styles[router["name"]], router["cost_quality"], router["kind"] == "ours"
        cost, quality = cq["point"]
        line = {"color": style["color"], "lw": 2.6 if ours else 1.4}
        marker = {
            "marker": style["marker"],
            "markersize": 11 if ours else 8,
            "markeredgecolor": "black",
            "markeredgewidth": 0.8,
        }
        if cq["hull"] is not None:
            # the hull is held flat after its best point: paying more never has to lose quality
            hull_cost = [*cq["hull"]["cost"], 1.0]
            hull_quality = [*cq["hull"]["quality"], cq["hull"]["quality"][-1]]
            ax.plot(hull_cost, hull_quality, zorder=2, **line)
        label = router["name"] + (f"  (AIQ {cq['aiq']:.3f})" if cq["aiq"] is not None else "")
        if quality > y_high:
            ax.plot([cost], [y_high], ls="none", clip_on=False, zorder=5, **line, **marker)
            ax.annotate(
                f"{router['name']}: quality {quality:.0%} at cost {cost:.0%} (off scale ↑)",
                (cost, y_high),
                xytext=(10, -14),
                textcoords="offset points",
                fontsize=8,
            )
            label += " — off scale"
        else:
            ax.plot([cost], [quality], ls="none", zorder=5 if ours else 4, **line, **marker)
        twin = next((n for n, p in points if np.allclose(p, (cost, quality), atol=2e-3)), None)
        if twin is not None:
            label += f"  (hidden under {twin})"
        points.append((router["name"], (cost, quality)))
        handles.append(Line2D([], [], ls="-" if cq["hull"] else "none", **line, **marker))
        labels.append(label)
    ours_router = next((r for r in routers if r["kind"] == "ours"), None)
    if ours_router is not None:
        cost, quality = ours_router["cost_quality"]["point"]
        ax.annotate(
            f"{ours_router['name']} at {report['context'].get('operating_point', '?')}:\n"
            f"cost {cost:.0%}, quality {quality:.1%}",
            (cost, quality),
            xytext=(18, -44),
            textcoords="offset points",
            fontsize=9,
            arrowprops={"arrowstyle": "-", "color": "gray", "lw": 0.8},
        )
    ax.set_xlim(0, 1.04)
    ax.set_ylim(y_low, y_high)
    ax.xaxis.set_major_formatter(PercentFormatter(1.0))
    ax.yaxis.set_major_formatter(PercentFormatter(1.0, decimals=1))
    ax.set_xlabel("cost relative to sending everything to premium (lower is better)")
    ax.set_ylabel("quality kept, relative to always-premium (higher is better)")
    ax.set_title(
        f"Cost vs quality kept — {_records_note(report)}\nlines: threshold sweeps (upper hull); "
        "markers: each router's shipped setting; up and to the left is better",
        fontsize=11,
        pad=14,
    )
    ax.grid(alpha=0.3)
    ax.legend(
        handles, labels, fontsize=8, loc="upper left", bbox_to_anchor=(1.01, 1.0), frameon=False
    )
    return _save(fig, path)


def _quality_range(routers: list[dict[str, Any]]) -> tuple[float, float]:
    """y limits that hold every real router's point and hull, and always-premium's 100%."""
    values = [1.0]
    for router in routers:
        cq = router["cost_quality"]
        values.append(cq["point"][1])
        if cq["hull"] is not None:
            values += cq["hull"]["quality"]
    values = [v for v in values if v == v]  # NaN where quality is undefined
    low, high = min(values), max(values)
    pad = 0.08 * ((high - low) or 0.01)
    return low - pad, high + 1.8 * pad


def _records_note(report: dict[str, Any]) -> str:
    split = report["context"].get("split", "all")
    where = "held-out test split" if split == "test" else f"split '{split}', IN-SAMPLE"
    return f"{report['n_records']:,} records, {where}"


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


PER_SOURCE_METRICS = (
    ("under_routing", "under-routing\n(sent below the needed tier; lower is better)"),
    ("quality_kept", "quality kept\n(relative to always-premium; higher is better)"),
    ("cost_vs_premium", "cost\n(relative to always-premium; lower is better)"),
)


def per_source_plot(report: dict[str, Any], path: Path) -> Path:
    """Per source, side by side: what each router under-routes, keeps and pays.

    One row per source (pooled first), one dot per router at the same height in every row and
    panel, so a reader follows one router across sources and reads quality beside cost. Dots, not
    bars: quality kept lives in a narrow band near 100%, where bars from zero hide differences.
    The oracle is left out (it is the label, so it under-routes nothing by definition).
    """
    plt = _pyplot()
    from matplotlib.lines import Line2D
    from matplotlib.ticker import PercentFormatter

    routers = [r for r in report["routers"] if r["kind"] != "reference"]
    styles = router_styles(report["routers"])
    sources = sorted(routers[0]["per_source"]) if routers else []
    rows = ["pooled", *sources]
    target = _under_routing_target(report)
    fig, axes = plt.subplots(
        1, len(PER_SOURCE_METRICS), figsize=(15, 0.75 * len(rows) + 2.2), sharey=True
    )
    offsets = np.linspace(-0.34, 0.34, len(routers)) if len(routers) > 1 else np.zeros(1)
    for ax, (key, title) in zip(axes, PER_SOURCE_METRICS, strict=True):
        for row in range(0, len(rows), 2):
            ax.axhspan(row - 0.5, row + 0.5, color="0.95", zorder=0)
        for offset, router in zip(offsets, routers, strict=True):
            style, ours = styles[router["name"]], router["kind"] == "ours"
            values = [
                (router["pooled"] if row == "pooled" else router["per_source"][row])[key]
                for row in rows
            ]
            heights = np.arange(len(rows)) + offset
            ax.scatter(
                values,
                heights,
                marker=style["marker"],
                color=style["color"],
                s=70 if ours else 30,
                edgecolor="black" if ours else "none",
                linewidth=0.8,
                zorder=3 if ours else 2,
            )
            if ours:
                for value, height in zip(values, heights, strict=True):
                    ax.annotate(
                        "—" if value != value else f"{value:.1%}",
                        (value, height),
                        xytext=(7, 0),
                        textcoords="offset points",
                        fontsize=8,
                        va="center",
                        color=style["color"],
                        fontweight="bold",
                    )
        if key == "under_routing" and target is not None:
            ax.axvline(target, color="black", ls="--", lw=1)
            ax.text(target, len(rows) - 0.55, f" target {target:.0%}", fontsize=8, va="bottom")
        ax.set_title(title, fontsize=10)
        ax.xaxis.set_major_formatter(PercentFormatter(1.0, decimals=0))
        ax.grid(axis="x", alpha=0.3)
        ax.set_ylim(len(rows) - 0.5, -0.5)
    sizes = [report["n_records"], *(routers[0]["per_source"][s]["n"] for s in sources)]
    axes[0].set_yticks(
        range(len(rows)), [f"{name}\n(n={n:,})" for name, n in zip(rows, sizes, strict=True)]
    )
    handles = [
        Line2D(
            [],
            [],
            ls="none",
            marker=styles[r["name"]]["marker"],
            color=styles[r["name"]]["color"],
            markeredgecolor="black" if r["kind"] == "ours" else "none",
            markersize=9 if r["kind"] == "ours" else 7,
            label=r["name"],
        )
        for r in routers
    ]
    fig.legend(
        handles=handles,
        loc="center left",
        bbox_to_anchor=(1.0, 0.5),
        fontsize=9,
        frameon=False,
        title="top to bottom\nin every row",
        title_fontsize=9,
    )
    fig.suptitle(
        f"Per source: what each router under-routes, keeps and pays — {_records_note(report)}",
        fontsize=12,
    )
    return _save(fig, path)


def _under_routing_target(report: dict[str, Any]) -> float | None:
    """The under-routing target in router-ml's operating point name (``under_routing_0.05``)."""
    name = str(report["context"].get("operating_point", ""))
    if not name.startswith("under_routing_"):
        return None
    try:
        return float(name.removeprefix("under_routing_"))
    except ValueError:
        return None


def routellm_plot(report: dict[str, Any], path: Path) -> Path:
    """PGR against the share of calls sent to premium (economy vs premium), per router.

    The oracle is named beside the plot, not drawn: labels pick the better tier per record, so
    its curve rises far above 1 and would flatten the 0–1 band where the real routers differ.
    """
    plt = _pyplot()
    from matplotlib.ticker import PercentFormatter

    styles = router_styles(report["routers"])
    # APGR is undefined (None) where premium never beats economy on the records, e.g. own
    # traffic without premium outcomes: there is no gap to recover and no curve to draw.
    drawn = [
        r
        for r in report["routers"]
        if r["routellm"] is not None
        and r["routellm_score"] == "continuous"
        and r["routellm"].get("apgr") is not None
    ]
    drawn.sort(key=lambda r: -r["routellm"]["apgr"])
    fig, ax = plt.subplots(figsize=(9, 5.5))
    ax.plot([0, 1], [0, 1], color="gray", ls=":", lw=1.2, label="random (expected): APGR 0.5")
    notes, top = [], 1.0
    for router in drawn:
        rl, ours = router["routellm"], router["kind"] == "ours"
        if router["kind"] == "reference":
            peak = int(np.argmax(rl["curve"]["pgr"]))
            notes.append(
                f"Not drawn: {router['name']},\nAPGR {rl['apgr']:.3f}; its curve peaks at\n"
                f"PGR {rl['curve']['pgr'][peak]:.2f} with {rl['curve']['strong_share'][peak]:.0%} "
                "of calls to premium\n(labels pick the better tier per record,\nso it beats "
                "all-premium)."
            )
            continue
        top = max(top, *rl["curve"]["pgr"])
        ax.plot(
            rl["curve"]["strong_share"],
            rl["curve"]["pgr"],
            color=styles[router["name"]]["color"],
            lw=2.6 if ours else 1.4,
            zorder=3 if ours else 2,
            label=f"{router['name']}: APGR {rl['apgr']:.3f}",
        )
    for level in (0.5, 0.8):
        ax.axhline(level, color="gray", lw=0.6, ls="--")
        ax.text(
            0.995,
            level,
            f"PGR {level:.0%}",
            color="gray",
            fontsize=8,
            va="bottom",
            ha="right",
            transform=ax.get_yaxis_transform(),
        )
    n = drawn[0]["routellm"]["n"] if drawn else 0
    ax.set_xlim(0, 1)
    ax.set_ylim(-0.1, top + 0.08)
    ax.xaxis.set_major_formatter(PercentFormatter(1.0))
    ax.set_xlabel("share of calls sent to premium (the rest to economy)")
    ax.set_ylabel("performance gap recovered (0 = all economy, 1 = all premium)")
    ax.set_title(
        f"RouteLLM call–performance curve, economy vs premium — {n:,} records where both ran\n"
        "higher at the same premium share is better; the diagonal is random routing",
        fontsize=11,
    )
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8, loc="upper left", bbox_to_anchor=(1.01, 1.0), frameon=False)
    if notes:
        ax.text(
            1.02,
            0.0,
            "\n".join(notes),
            fontsize=8,
            color="dimgray",
            ha="left",
            va="bottom",
            transform=ax.transAxes,
        )
    return _save(fig, path)


def savings_plot(
    rows: Sequence[Any],
    path: Path,
    max_under_routing: float | None = None,
    min_quality_kept: float | None = None,
    chosen: str | None = None,
    title: str = "",
) -> Path:
    """Spend, quality kept and under-routing at each operating point (``savings.Savings`` rows).

    Left: USD per 1,000 requests against always-premium's, with the share saved written on each
    bar. Right: what that saving costs, quality kept and under-routing, against the limits the
    reader set. Points within both limits are green; ``chosen`` is outlined.
    """
    plt = _pyplot()
    from matplotlib.ticker import PercentFormatter

    names = [row.operating_point for row in rows]
    ticks = [
        f"{row.operating_point}\n(default)" if row.default else row.operating_point for row in rows
    ]
    x = np.arange(len(rows))

    def within(row: Any) -> bool:
        return (max_under_routing is None or row.under_routing <= max_under_routing) and (
            min_quality_kept is None or row.quality_kept >= min_quality_kept
        )

    colours = ["tab:green" if within(row) else "tab:gray" for row in rows]
    edges = ["black" if name == chosen else "none" for name in names]
    fig = plt.figure(figsize=(13, 5.6), layout="constrained")
    grid = fig.add_gridspec(2, 2, width_ratios=(1.25, 1))
    spend, quality = fig.add_subplot(grid[:, 0]), fig.add_subplot(grid[0, 1])
    under = fig.add_subplot(grid[1, 1], sharex=quality)
    spend.bar(x, [r.usd_per_1k for r in rows], color=colours, edgecolor=edges, linewidth=2)
    premium = rows[0].premium_usd_per_1k if rows else 0.0
    spend.axhline(premium, color="tab:red", ls="--", lw=1.2)
    spend.text(
        len(rows) - 0.5,
        premium,
        f"all premium: ${premium:,.2f}",
        color="tab:red",
        ha="right",
        va="bottom",
        fontsize=9,
    )
    for i, row in enumerate(rows):
        spend.text(
            i,
            row.usd_per_1k,
            f"saves {row.saved_share:.0%}\n(${row.saved_usd_per_1k:,.2f} per 1k)",
            ha="center",
            va="bottom",
            fontsize=9,
        )
    spend.set_ylim(0, premium * 1.15 if premium else 1)
    spend.set_xticks(x, ticks)
    spend.set_ylabel("USD per 1,000 requests (catalog tier prices)")
    spend.set_title("What the traffic costs at each operating point", fontsize=10)
    spend.grid(axis="y", alpha=0.3)
    for ax, key, limit, label, better in (
        (quality, "quality_kept", min_quality_kept, "quality kept", "higher is better"),
        (under, "under_routing", max_under_routing, "under-routed", "lower is better"),
    ):
        values = [getattr(row, key) for row in rows]
        ax.plot(x, values, color="0.4", lw=1, zorder=1)
        ax.scatter(x, values, c=colours, edgecolors=edges, linewidths=2, s=60, zorder=2)
        for i, value in enumerate(values):
            ax.annotate(
                f"{value:.2%}" if key == "quality_kept" else f"{value:.1%}",
                (i, value),
                xytext=(0, 7),
                textcoords="offset points",
                ha="center",
                fontsize=8,
            )
        if limit is not None:
            ax.axhline(limit, color="black", ls="--", lw=1)
            ax.text(
                len(rows) - 0.6,
                limit,
                f"your limit {limit:.0%}",
                fontsize=8,
                ha="right",
                va="bottom" if key == "under_routing" else "top",
            )
        low, high = min([*values, limit or values[0]]), max([*values, limit or values[0]])
        pad = 0.25 * ((high - low) or 0.01)
        ax.set_ylim(low - pad, high + pad)
        ax.yaxis.set_major_formatter(PercentFormatter(1.0, decimals=0))
        ax.set_title(f"{label} ({better})", fontsize=10)
        ax.grid(alpha=0.3)
    quality.tick_params(labelbottom=False)
    under.set_xticks(x, ticks)
    under.set_xlim(-0.5, len(rows) - 0.5)
    legend = "green: within your limits"
    legend += "; outlined: the cheapest of them" if chosen else "; none is within both limits"
    fig.suptitle(f"{title}\n{legend}" if title else legend, fontsize=11)
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
    if fig.get_layout_engine() is None:
        fig.tight_layout()
    fig.savefig(path, dpi=110, bbox_inches="tight")  # keeps legends placed beside the axes
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
