"""The analysis as a Markdown summary and a self-contained HTML report with embedded plots.

The HTML carries its plots as base64 PNG, so the one file can be mailed or attached to a ticket.
The main plot (request types: share of requests next to share of the bill, and the tier mix the
router would give each) is also written as a PNG for the README.
"""

from __future__ import annotations

import base64
import html
import io
from pathlib import Path
from typing import Any

from router_ml.tiers import TIERS

TIER_COLOURS = {"economy": "#4daf4a", "standard": "#377eb8", "premium": "#e41a1c"}


def _usd(value: float) -> str:
    return f"${value:,.2f}" if abs(value) >= 1 else f"${value:,.4f}"


def _mix(mix: dict[str, float]) -> str:
    return " / ".join(f"{mix[t]:.0%}" for t in TIERS)


def markdown(result: dict[str, Any]) -> str:
    """The summary a team reads first (and pastes into a price negotiation)."""
    lines = [
        "# Traffic analysis",
        "",
        f"{result['requests']} requests in {result['partitions']} partition(s), "
        f"{result['bad_lines']} unusable line(s); {result['input_tokens']:,.0f} input and "
        f"{result['output_tokens']:,.0f} output tokens. Window: {result['window_days']:.3g} "
        f"day(s) ({result['window_basis']}). Policy {result['policy']}, operating point "
        f"`{result['operating_point']}`; {result['rule_decided_share']:.0%} of requests decided "
        "by a rule.",
        "",
        f"Tier prices (USD per million input/output tokens, {result['catalog']}): "
        + ", ".join(
            f"{t} {result['tier_models'][t]} {p[0]:g}/{p[1]:g}"
            for t, p in result["tier_prices"].items()
        )
        + ". Output tokens come from the upstream's usage where logged, else `max_tokens` "
        "capped at 256 (or 256).",
        "",
        "## Spend before and after",
        "",
        "| scenario | economy / standard / premium | window cost | per month | vs all premium "
        "| validation under-routing | validation quality kept |",
        "|---|---|---:|---:|---:|---:|---:|",
    ]
    for row in result["scenarios"]:
        under = row["validation_under_routing"]
        kept = row["validation_quality_kept"]
        lines.append(
            f"| {row['scenario']} | {_mix(row['tier_mix'])} | {_usd(row['window_cost_usd'])} "
            f"| {_usd(row['monthly_cost_usd'])} | {row['cost_vs_premium']:.1%} "
            f"| {'-' if under is None else f'{under:.1%}'} "
            f"| {'-' if kept is None else f'{kept:.3f}'} |"
        )
    observed = result.get("observed")
    if observed:
        lines += [
            "",
            f"Observed (logged usage × served model's price): {_usd(observed['window_cost_usd'])}"
            f" in the window, {_usd(observed['monthly_cost_usd'])} per month "
            f"({observed['priced_requests']} of {observed['served_requests']} served requests "
            "priced).",
        ]
    lines += [
        "",
        "Validation figures are the operating point's own, measured on the model's validation "
        "split when it was trained — not on this traffic (it has no outcomes).",
        "",
        "## Traffic by request type",
        "",
        "| request type | requests | share | median input tokens | share of the all-premium bill "
        "| routed: economy / standard / premium | routed cost | share of the routed bill |",
        "|---|---:|---:|---:|---:|---|---:|---:|",
    ]
    for row in result["by_type"]:
        lines.append(
            f"| {row['type']} | {row['requests']} | {row['request_share']:.1%} "
            f"| {row['median_input_tokens']:,.0f} | {row['bill_share']:.1%} "
            f"| {_mix(row['tier_mix'])} | {_usd(row['routed_cost_usd'])} "
            f"| {row['routed_bill_share']:.1%} |"
        )
    if result["bad_line_examples"]:
        lines += ["", "Unusable lines (first few):", ""]
        lines += [f"- {example}" for example in result["bad_line_examples"]]
    return "\n".join(lines) + "\n"


def type_plot(result: dict[str, Any], path: Path | None = None) -> bytes:
    """The main plot: per request type, share of requests vs share of the bill, and tier mix."""
    plt = _pyplot()
    rows = list(reversed(result["by_type"]))  # largest bill share on top
    names = [f"{r['type']} (n={r['requests']:,})" for r in rows]
    y = list(range(len(rows)))
    figure, (left, right) = plt.subplots(
        1, 2, figsize=(10, 0.42 * len(rows) + 1.6), sharey=True, gridspec_kw={"wspace": 0.05}
    )
    height = 0.38
    left.barh(
        [v + height / 2 for v in y],
        [r["request_share"] for r in rows],
        height,
        color="#999999",
        label="share of requests",
    )
    left.barh(
        [v - height / 2 for v in y],
        [r["bill_share"] for r in rows],
        height,
        color="#984ea3",
        label="share of the all-premium bill",
    )
    left.set_yticks(y, names)
    left.xaxis.set_major_formatter(plt.matplotlib.ticker.PercentFormatter(1.0))
    left.set_title("What the traffic is and what it costs")
    left.legend(loc="upper center", bbox_to_anchor=(0.5, -0.08), ncol=2, fontsize=8)
    left.grid(axis="x", alpha=0.3)
    start = [0.0] * len(rows)
    for tier in TIERS:
        widths = [r["tier_mix"][tier] for r in rows]
        right.barh(y, widths, 0.7, left=start, color=TIER_COLOURS[tier], label=tier)
        start = [s + w for s, w in zip(start, widths, strict=True)]
    right.set_xlim(0, 1)
    right.xaxis.set_major_formatter(plt.matplotlib.ticker.PercentFormatter(1.0))
    right.set_title(f"Tier mix under {result['operating_point']}")
    right.legend(loc="upper center", bbox_to_anchor=(0.5, -0.08), ncol=3, fontsize=8)
    figure.suptitle(
        f"{result['requests']:,} requests; routed spend "
        f"{_scenario(result, 'current policy')['cost_vs_premium']:.0%} of all-premium",
        fontsize=10,
    )
    return _save(figure, path)


def spend_plot(result: dict[str, Any], path: Path | None = None) -> bytes:
    """Monthly spend per scenario, the all-premium bar first."""
    plt = _pyplot()
    rows = result["scenarios"]
    figure, axis = plt.subplots(figsize=(8, 0.45 * len(rows) + 1.4))
    y = list(range(len(rows)))[::-1]
    values = [r["monthly_cost_usd"] for r in rows]
    axis.barh(y, values, 0.6, color=["#e41a1c"] + ["#377eb8"] * (len(rows) - 1))
    axis.set_yticks(y, [r["scenario"] for r in rows])
    for v, row in zip(y, rows, strict=True):
        axis.text(
            row["monthly_cost_usd"],
            v,
            f" {_usd(row['monthly_cost_usd'])} ({row['cost_vs_premium']:.0%})",
            va="center",
            fontsize=8,
        )
    axis.set_xlim(0, max(values) * 1.35 if max(values) > 0 else 1)
    axis.set_xlabel(f"projected USD per month ({result['window_basis']})")
    axis.set_title("Projected monthly spend before and after routing")
    axis.grid(axis="x", alpha=0.3)
    return _save(figure, path)


def write_report(result: dict[str, Any], out_dir: Path) -> dict[str, Path]:
    """``report.html`` (self-contained), ``summary.md``, ``summary.json`` and the main plot."""
    import json

    out_dir.mkdir(parents=True, exist_ok=True)
    paths = {
        "html": out_dir / "report.html",
        "markdown": out_dir / "summary.md",
        "json": out_dir / "summary.json",
        "plot": out_dir / "traffic_types.png",
    }
    summary = markdown(result)
    paths["markdown"].write_text(summary, encoding="utf-8")
    paths["json"].write_text(json.dumps(result, indent=2) + "\n", encoding="utf-8")
    main_png = type_plot(result, paths["plot"])
    spend_png = spend_plot(result)
    paths["html"].write_text(_html(summary, [main_png, spend_png]), encoding="utf-8")
    return paths


def _html(summary: str, images: list[bytes]) -> str:
    """Markdown tables and paragraphs as HTML (the subset :func:`markdown` writes), plots first."""
    body: list[str] = []
    in_table = False
    for line in summary.splitlines():
        if line.startswith("|"):
            cells = [c.strip() for c in line.strip("|").split("|")]
            if set("".join(cells)) <= set("-:"):
                continue
            tag = "th" if not in_table else "td"
            if not in_table:
                body.append("<table>")
                in_table = True
            body.append(
                "<tr>" + "".join(f"<{tag}>{html.escape(c)}</{tag}>" for c in cells) + "</tr>"
            )
            continue
        if in_table:
            body.append("</table>")
            in_table = False
        if line.startswith("# "):
            body.append(f"<h1>{html.escape(line[2:])}</h1>")
            body += [
                f'<img alt="plot" src="data:image/png;base64,{base64.b64encode(i).decode()}">'
                for i in images
            ]
        elif line.startswith("## "):
            body.append(f"<h2>{html.escape(line[3:])}</h2>")
        elif line.startswith("- "):
            body.append(f"<li>{html.escape(line[2:])}</li>")
        elif line.strip():
            body.append(f"<p>{html.escape(line).replace('`', '')}</p>")
    if in_table:
        body.append("</table>")
    style = (
        "body{font-family:sans-serif;max-width:1100px;margin:2em auto;color:#222}"
        "table{border-collapse:collapse;margin:1em 0}td,th{border:1px solid #ccc;"
        "padding:3px 8px;font-size:13px}th{background:#f3f3f3}img{max-width:100%;display:block;"
        "margin:1em 0}"
    )
    return (
        '<!doctype html><html><head><meta charset="utf-8"><title>router-ml traffic analysis'
        f"</title><style>{style}</style></head><body>\n" + "\n".join(body) + "\n</body></html>\n"
    )


def _scenario(result: dict[str, Any], name: str) -> dict[str, Any]:
    return next(r for r in result["scenarios"] if r["scenario"] == name)


def _pyplot() -> Any:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import matplotlib.ticker

    return plt


def _save(figure: Any, path: Path | None) -> bytes:
    plt = _pyplot()
    buffer = io.BytesIO()
    figure.savefig(buffer, format="png", dpi=90, bbox_inches="tight")
    plt.close(figure)
    data = buffer.getvalue()
    if path is not None:
        path.write_bytes(data)
    return data
