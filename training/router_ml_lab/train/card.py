"""The model card: what the model was trained on and how well it routes, in plain words.

Rendered from ``metadata.json`` alone, so the card can never disagree with the numbers shipped
next to it. Test-split figures are those of the exported ONNX graph on the grouped test split.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

from router_ml.model import EvaluationContract
from router_ml.tiers import TIERS

ACCURACY_TARGET = 0.90
APGR_TARGET = 0.65
ECE_TARGET = 0.05
RANDOM_RATIO_TARGET = 1.5


def _pct(value: Any) -> str:
    return (
        "n/a"
        if value is None or (isinstance(value, float) and math.isnan(value))
        else (f"{100 * value:.1f}%")
    )


def _num(value: Any, digits: int = 2) -> str:
    if value is None or (isinstance(value, float) and (math.isnan(value) or math.isinf(value))):
        return "n/a"
    return f"{value:.{digits}f}"


def _row(name: str, m: Mapping[str, Any]) -> str:
    return (
        f"| {name} | {m['n']} | {_pct(m['accuracy'])} | {_pct(m['majority_accuracy'])} | "
        f"{_pct(m['under_routing'])} | {_pct(m['tier_shares']['economy'])} | "
        f"{_pct(m['random_economy_share'])} | {_pct(m['below_premium_share'])} | "
        f"{_pct(m['random_below_premium_share'])} | {_num(m['apgr'])} | "
        f"{_pct(m['cost_vs_premium'])} | {_pct(m['quality_kept'])} | "
        f"{_num(m['ece']['needs_above_economy'], 3)} |"
    )


_HEADER = (
    "| slice | n | accuracy | majority | under-routing | economy share | random economy "
    "| below premium | random below premium | APGR | cost vs premium | quality kept | ECE |\n"
    "|---|---|---|---|---|---|---|---|---|---|---|---|---|"
)


def render_model_card(metadata: Mapping[str, Any]) -> str:
    """Markdown model card of a trained model directory's metadata."""
    metrics = metadata["metrics"]
    default = metadata["default_operating_point"]
    test = metrics["test"][default]
    pooled = test["pooled"]
    fingerprint = metadata["data_fingerprint"]
    config = metadata["training_config"]
    output_tokens = EvaluationContract.from_metadata(metadata).output_tokens_default
    label_counts = metadata["labels"]["counts"]
    n_labeled = sum(label_counts.values())
    sizes = metrics["split_sizes"]
    versions = ", ".join(f"{k} {v}" for k, v in metadata["library_versions"].items())
    default_op = next(op for op in metadata["operating_points"] if op["name"] == default)
    lines = [
        "# router-ml tier model card",
        "",
        "A LightGBM classifier (exported to ONNX) that reads features of an OpenAI chat request "
        "and estimates the risk that the request needs more than the economy tier, and more than "
        "the standard tier. Calibrated risks and thresholds pick the cheapest tier whose risk is "
        "below its threshold; when unsure it escalates.",
        "",
        "## Data",
        f"- Files: {', '.join(sorted(fingerprint['files']))} (content hash "
        f"`{fingerprint['sha256']}`); {fingerprint['lines_read']} lines read, "
        f"{fingerprint['bad_lines']} rejected as bad"
        + (f"; a seeded sample of {fingerprint['sample']} records" if fingerprint["sample"] else "")
        + ".",
        f"- {n_labeled} records carry a label ("
        + ", ".join(f"{t} {label_counts[t]} ({_pct(label_counts[t] / n_labeled)})" for t in TIERS)
        + f"); {metadata['labels']['unlabeled_records']} records with only one tier and no "
        "economy pass have no label and are not used.",
        *_censored_text(metadata["labels"].get("censored")),
        f"- Split by a hash of the normalised question text, so the same question never sits on "
        f"two sides: train {sizes['train']}, validation {sizes['validation']} (calibration and "
        f"thresholds), test {sizes['test']} (every number below).",
        "",
        *_warnings(metadata.get("data_warnings", [])),
        "## Label rule",
        "Each tier is represented by its three best models on the source; a tier's score is the "
        "mean outcome of its representatives present in the record; the label is the cheapest "
        "tier within a tolerance of the best tier's score (0 for pass/fail sources, 0.1 for graded "
        "ones). If every tier fails, the cheapest present tier is the label. A tier missing from "
        "a record is never imputed; such records are labeled among the tiers they have.",
        f"Training target: {_denoise_text(config['denoise'])}",
        "",
        "## Operating points",
        "Thresholds were chosen on the validation split to spend least while keeping "
        "under-routing (requests sent below the tier they need) at or under the target.",
        "",
        "| name | target | validation under-routing | economy | standard | premium | cost vs "
        "premium |",
        "|---|---|---|---|---|---|---|",
    ]
    for op in metadata["operating_points"]:
        v = op["validation"]
        marker = " (default)" if op["name"] == default else ""
        lines.append(
            f"| {op['name']}{marker} | {_pct(op['target_under_routing'])} | "
            f"{_pct(v['under_routing'])} | {_pct(v['tier_shares']['economy'])} | "
            f"{_pct(v['tier_shares']['standard'])} | {_pct(v['tier_shares']['premium'])} | "
            f"{_pct(v['cost_vs_premium'])} |"
        )
    lines += [
        "",
        f"## Test-split results at the default operating point ({default}, thresholds "
        f"economy {_num(default_op['thresholds']['economy'], 3)}, standard "
        f"{_num(default_op['thresholds']['standard'], 3)})",
        "",
        "Accuracy is against the ~90% target and the majority-class accuracy. Random economy: the "
        "economy share of a request-blind router mixing economy and premium at the same "
        "under-routing; random below premium: the best request-blind mix of all tiers at the same "
        "under-routing. APGR: RouteLLM's average performance gap recovered between economy and "
        "premium, ranking by the economy risk (0.5 = random), on the records where economy and "
        "premium both have a realised outcome. Cost vs premium uses list prices of the tiers, "
        "o200k input tokens of the whole request (tool schemas included) and max_tokens output "
        f"tokens, else {output_tokens} (the data has no output lengths); a tier a record has no "
        "evidence for is scored and paid as the tier that stands in for it. The same accounting "
        "as `router-ml eval` (router_ml_lab.quality). Quality kept: mean realised score "
        "relative to always-premium. ECE: expected calibration error of P(needs more than "
        "economy), 10 bins.",
        "",
        _HEADER,
        _row("**pooled**", pooled),
        *(_row(source, m) for source, m in test["per_source"].items()),
        "",
        "Pooled ECE: needs more than economy "
        f"{_num(pooled['ece']['needs_above_economy'], 3)}, needs more than standard "
        f"{_num(pooled['ece']['needs_above_standard'], 3)}, tier probabilities "
        f"{_num(pooled['ece']['tier'], 3)} (target <= {ECE_TARGET}).",
        "",
        *_uncertainty(test),
        *_per_kind(test.get("per_kind")),
        *_coverage(metrics.get("ood_flagged"), metadata.get("coverage")),
        *_envelope(metrics.get("envelope")),
        *_delivery(metrics.get("delivery")),
        *(
            line
            for name, suite in metrics.get("sense_suites", {}).items()
            for line in _suite(name, suite)
        ),
        *_text_embedding(metadata.get("text_embedding")),
        *_task_kinds(
            (metadata.get("text_embedding") or {}).get("task_kinds"), metrics.get("task_kinds")
        ),
        "## Against the targets",
        *_targets(pooled),
        "",
        "## Other operating points on the test split (pooled)",
        "",
        "| name | under-routing | economy share | below premium | cost vs premium | quality kept |",
        "|---|---|---|---|---|---|",
        *(
            f"| {name} | {_pct(t['pooled']['under_routing'])} | "
            f"{_pct(t['pooled']['tier_shares']['economy'])} | "
            f"{_pct(t['pooled']['below_premium_share'])} | "
            f"{_pct(t['pooled']['cost_vs_premium'])} | {_pct(t['pooled']['quality_kept'])} |"
            for name, t in metrics["test"].items()
        ),
        "",
        "## Known weaknesses",
        "- Labels are noisy: near-identical model snapshots disagree on 6-8% of prompts, and the "
        "prompt features separate the tiers only weakly, so the most probable tier is almost "
        "always economy and accuracy cannot beat the majority class by much; the escalation-"
        "biased operating points trade accuracy for low under-routing. Read the routing columns "
        "(under-routing, shares, cost, quality kept), not accuracy alone.",
        *_within_source_apgr(test["per_source"]),
        "- Calibration is pooled: per-source ECE is higher than pooled (see the table), and "
        "under-routing is spent unevenly across sources (low where escalation is cheap to avoid, "
        "higher on sources with many premium labels).",
        "- Within a source, the prompt says little about the label; much of the skill is telling "
        "task types apart (tool calls, multiple choice, math word problems).",
        "- Only BFCL has all three tiers; MMLU-Pro lacks premium, RouteLLM and RouterBench lack "
        "standard, LLMRouter has economy only. The standard-vs-premium risk is learned mostly "
        "from BFCL's 1.1k prompts.",
        "- Training traffic is benchmark prompts plus 243 real Arena chat prompts: single-turn "
        "(earlier turns only as label-preserving augmentation), English. Agent turns with tool "
        "results, images, other scripts, rejected answers and documents longer than any training "
        "prompt are outside the training ranges: the coverage rule escalates them instead of "
        "trusting the model (see Coverage above), so on such traffic the router saves little.",
        "- Costs assume a fixed output length; tasks with long answers cost more on every tier.",
        "",
        "## Provenance",
        f"Library versions: {versions}. Feature schema v{metadata['feature_schema']['version']} "
        f"(hash `{metadata['feature_schema']['hash']}`). Seed {config['seed']}. ONNX parity with "
        f"LightGBM on the validation split: max abs difference "
        f"{metrics['onnx_parity_max_abs_diff']:.2e}. Reproduce with `make model`.",
        "",
    ]
    return "\n".join(lines)


def _warnings(warnings: list[str]) -> list[str]:
    if not warnings:
        return []
    return ["## Warnings", *(f"- {w}" for w in warnings), ""]


def _censored_text(censored: Mapping[str, Any] | None) -> list[str]:
    if not censored or not censored.get("records"):
        return []
    return [
        f"- {censored['records']} records of own traffic say only that every tier tried failed "
        '(censored labels: "needs more than the best tier tried"); the '
        f"{censored['trained_on']} of them in the train split are trained on, spread over the "
        "tiers above by their prior share (router_ml_lab/train/censored.py); none is in "
        "calibration or the test figures, which need exact labels.",
    ]


def _interval(m: Mapping[str, Any], name: str) -> str:
    bounds = m.get("ci95", {}).get(name)
    if not bounds:
        return _pct(m[name])
    return f"{_pct(m[name])} [{_pct(bounds[0])}, {_pct(bounds[1])}]"


def _uncertainty(test: Mapping[str, Any]) -> list[str]:
    pooled = test["pooled"]
    if "ci95" not in pooled:
        return []
    rows = [("**pooled**", pooled), *test["per_source"].items()]
    return [
        "## Uncertainty of the test figures (95% bootstrap intervals)",
        "",
        "Each figure with its 95% percentile-bootstrap interval over the slice's test records "
        "(resampled with replacement, routing choices fixed): how far the figure could move on "
        "another sample of the same traffic. Wide intervals mean a small slice.",
        "",
        "| slice | n | under-routing | cost vs premium | quality kept | accuracy |",
        "|---|---|---|---|---|---|",
        *(
            f"| {name} | {m['n']} | {_interval(m, 'under_routing')} | "
            f"{_interval(m, 'cost_vs_premium')} | {_interval(m, 'quality_kept')} | "
            f"{_interval(m, 'accuracy')} |"
            for name, m in rows
        ),
        "",
    ]


def _per_kind(per_kind: Mapping[str, Mapping[str, Any]] | None) -> list[str]:
    if not per_kind:
        return []
    return [
        "## Per traffic kind (test split, default operating point)",
        "",
        "Kinds from the request's shape (router_ml_lab/quality/kinds.py): agent/tool = tools "
        "defined or used; long-document = at least 2,000 o200k tokens; open-ended chat = the "
        "real Arena prompts or a conversation with earlier assistant turns; benchmark-shaped = "
        "the rest. AUC: of P(needs more than economy) against the label (0.5 = random).",
        "",
        "| kind | n | under-routing | economy share | vs random economy | APGR | AUC | "
        "cost vs premium | quality kept |",
        "|---|---|---|---|---|---|---|---|---|",
        *(
            f"| {kind} | {m['n']} | {_pct(m['under_routing'])} | "
            f"{_pct(m['tier_shares']['economy'])} | "
            f"{_num(m['economy_vs_random'])}x | {_num(m['apgr'])} | "
            f"{_num(m.get('auc_needs_above_economy'))} | {_pct(m['cost_vs_premium'])} | "
            f"{_pct(m['quality_kept'])} |"
            for kind, m in per_kind.items()
        ),
        "",
    ]


def _coverage(shares: Mapping[str, Any] | None, coverage: Mapping[str, Any] | None) -> list[str]:
    if not shares or not coverage:
        return []
    unlabeled = shares.get("unlabeled") or {}
    never = [
        name
        for name, low, high in zip(
            coverage["names"], coverage["low"], coverage["high"], strict=True
        )
        if low == high
    ]
    return [
        "## Coverage (out of distribution)",
        "",
        "Per-feature ranges of the augmented training rows (leaving out the 40 most extreme rows "
        "at each end, fewer than a leaf needs; what the text says, its embedding, task kinds and "
        "task cue words, is left to the task table and not checked); "
        "`ood` = 1 - exp(-largest excursion / range "
        f"width). Threshold {_num(shares['threshold'], 3)}, calibrated to flag at most 1% of "
        "validation; a flagged request goes at least to the policy's `coverage.escalate_to` "
        "(default premium) and its exposed risks are raised to match.",
        "",
        "| traffic | n | flagged |",
        "|---|---|---|",
        f"| validation split | — | {_pct(shares['validation'])} |",
        f"| test split | — | {_pct(shares['test'])} |",
        *(
            f"| unlabeled `{source}` | {row['n']} | {_pct(row['flagged'])} |"
            for source, row in unlabeled.items()
        ),
        "",
        f"Features constant in training (any other value is out of range): {', '.join(never)}.",
        "",
    ]


def _envelope(envelope: Mapping[str, Any] | None) -> list[str]:
    if not envelope:
        return []
    return [
        "## Envelope robustness (validation split)",
        "",
        "The same validation requests scored as they are and in a random gateway envelope "
        "(generic system prompt, max_tokens, JSON mode, streaming, unrelated earlier turns; "
        "router_ml_lab/train/augment.py): AUC of P(needs more than economy) "
        f"{_num(envelope['auc_needs_above_economy'], 3)} as is, "
        f"{_num(envelope['auc_needs_above_economy_enveloped'], 3)} enveloped; mean absolute "
        f"change of that risk {_num(envelope['mean_abs_risk_change'], 4)}.",
        "",
    ]


def _delivery(delivery: Mapping[str, Any] | None) -> list[str]:
    if not delivery:
        return []
    out = [
        "The router users run (default policy and operating point) on the same validation "
        "requests as recorded, in that random envelope, and as a follow-up: the last user turn "
        "split into its material and, after an assistant acknowledgement, its last paragraph, "
        "line or sentence as the ask (router_ml_lab/quality/follow_up.py). The labels stand: "
        "the request asks for the same thing. A follow-up is read with the thread's user text too "
        "(router_ml.features.THREAD_FEATURES: the higher risk of the two readings).",
        "",
        "| delivered | n | changed | under-routing | economy share | cost vs premium | APGR | "
        "AUC |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for name, row in delivery.items():
        out.append(
            f"| {name} | {row['n']} | {row['changed']} | {_pct(row['under_routing'])} | "
            f"{_pct(row['economy_share'])} | {_pct(row['cost_vs_premium'])} | "
            f"{_num(row['apgr'], 2)} | {_num(row['auc_needs_above_economy'], 3)} |"
        )
    return [*out, ""]


SUITE_ORIGINS = {
    "sense.jsonl": "Written by hand from the product's task tables.",
    "sense-check.jsonl": "Written from the task tables by a second author who saw neither "
    "sense.jsonl nor the reader's seed corpus; it was consulted when the reader's design was "
    "chosen (position weights, bag of tokens, multilingual seeds, cue words left to the task "
    "table), so it is a check, not an independent measurement.",
}


def _suite(name: str, suite: Mapping[str, Any]) -> list[str]:
    return [
        f"## Sense suite (examples/{name}, default policy and operating point)",
        "",
        f"Hard requests routed above economy: {_pct(suite['hard_above_economy'])} of "
        f"{suite['n_hard']}; easy requests routed to economy: {_pct(suite['easy_at_economy'])} "
        f"of {suite['n_easy']} (targets 90% / 75%). {SUITE_ORIGINS.get(name, '')} "
        f"`router-ml eval --suite examples/{name}` lists every item.",
        "",
        "| kind | expected | n | passed |",
        "|---|---|---|---|",
        *(
            f"| {kind} | {row['expected']} | {row['n']} | {_pct(row['passed'])} |"
            for kind, row in suite["per_kind"].items()
        ),
        "",
    ]


def _text_embedding(spec: Mapping[str, Any] | None) -> list[str]:
    if not spec:
        return []
    return [
        "## Text representation",
        "",
        f"`{spec['file']}`: {spec['built_from']}; {spec['vocabulary']} token ids, {spec['dims']} "
        f"dims, the first {spec['char_cap']} characters of the last user turn (features "
        "`text_emb_*`). Kept because it validated where the hand features do not (measured "
        "before this run, training/README.md): leave-one-source-out AUC of P(needs more than "
        "economy) 0.531 vs 0.498 averaged over sources, 5-fold CV on arena_bench AUC 0.615 / APGR "
        "0.587 vs 0.550 / 0.516.",
        "",
    ]


def _task_kinds(
    reader: Mapping[str, Any] | None, shares: Mapping[str, Mapping[str, Any]] | None
) -> list[str]:
    if not reader:
        return []
    lines = [
        "## Task kinds (the product's task tables)",
        "",
        "The task-kind reader (features `kind_*`, router_ml.task_kinds) is a linear classifier "
        "over the static embedding and the bag of tokens of the last user turn's head and tail "
        "(position-weighted: the first and last 32 tokens count fully, the middle a quarter), "
        "folded into the token table; the default policy's `task_table` raises kinds the "
        "product sends up (code, creative writing, hard reasoning, costly-if-wrong; extraction "
        "to standard) and caps "
        "confident value kinds (classification, lookups, short transformations, summaries, "
        "compression, drafts) at economy in covered ground without tools. Trained on "
        f"{sum(reader['examples'].values())} examples (the hand-written seed corpus "
        "`training/router_ml_lab/train/task_kinds.jsonl` and the training split's exam "
        "questions, math word problems and MBPP tasks); 5-fold cross-validated accuracy "
        f"{_pct(reader['cv_accuracy'])} on all, {_pct(reader['cv_accuracy_hand_written'])} on "
        f"the {reader['hand_written']} hand-written ones "
        f"({_pct(reader['cv_tier_accuracy_hand_written'])} of them read as a kind of the right "
        f"tier); C={reader['regularisation_c']}, bag-of-tokens scale "
        f"{reader['lexical_scale']:g} over {reader['lexical_tokens']} tokens.",
        "",
        "| kind | examples | CV recall |",
        "|---|---:|---:|",
        *(
            f"| {kind} | {n} | {_pct(reader['cv_recall'][kind])} |"
            for kind, n in reader["examples"].items()
        ),
        "",
    ]
    if shares:
        lines += [
            "What the table did to labeled traffic (default policy): "
            + "; ".join(
                f"{name} {_pct(s['floor_above_economy'])} raised above economy, "
                f"{_pct(s['capped'])} capped"
                for name, s in shares.items()
            )
            + ".",
            "",
        ]
    return lines


def _denoise_text(denoise: Mapping[str, Any]) -> str:
    if denoise["method"] == "none":
        return (
            "the reference label itself. Soft labels from a Rasch difficulty model over every "
            "scored model (training/difficulty.py) were tried and did not validate better "
            "(lower AUC of the economy risk and lower quality kept on validation)."
        )
    return (
        f"soft labels from a Rasch difficulty model over every scored model (strength "
        f"{denoise['strength']}, sources with >= {denoise['min_models']} models); "
        "see training/difficulty.py."
    )


def _within_source_apgr(per_source: Mapping[str, Mapping[str, Any]]) -> list[str]:
    weak = {
        s: m["apgr"]
        for s, m in per_source.items()
        if m["apgr"] is not None and not math.isnan(m["apgr"]) and m["apgr"] < 0.5
    }
    if not weak:
        return []
    listed = ", ".join(f"{s} {_num(v)}" for s, v in sorted(weak.items()))
    return [
        "- Pooled APGR comes largely from telling sources and task types apart. Within a source "
        f"the economy risk can rank prompts no better than chance (APGR below 0.5: {listed}); "
        "there the router mostly applies a per-task-type policy.",
    ]


def _targets(pooled: Mapping[str, Any]) -> list[str]:
    def verdict(ok: bool) -> str:
        return "met" if ok else "NOT met"

    ratio = pooled["below_premium_vs_random"]
    economy_ratio = pooled["economy_vs_random"]
    apgr = pooled["apgr"]
    ece = pooled["ece"]["needs_above_economy"]
    best_accuracy = max(pooled["accuracy"], pooled["argmax_accuracy"])
    return [
        f"- Tier accuracy vs the {_pct(ACCURACY_TARGET)} target: "
        f"{verdict(best_accuracy >= ACCURACY_TARGET)}. At the default operating point "
        f"{_pct(pooled['accuracy'])} (escalation-biased: it over-routes on purpose); picking the "
        f"most probable tier {_pct(pooled['argmax_accuracy'])}; always the majority tier "
        f"{_pct(pooled['majority_accuracy'])}.",
        f"- Under-routing {100 * pooled['under_routing']:.2f}% on test at the default operating "
        "point (its target holds on validation, where the thresholds were set).",
        f"- Share of traffic below premium {_pct(pooled['below_premium_share'])}, "
        f"{_num(ratio)}x the best request-blind router at the same under-routing (target "
        f"{RANDOM_RATIO_TARGET}x): {verdict(ratio >= RANDOM_RATIO_TARGET)}. Economy share alone "
        f"{_pct(pooled['tier_shares']['economy'])} is {_num(economy_ratio)}x a request-blind "
        "economy/premium router's: the thresholds spend the under-routing budget where it saves "
        "most, which is often the standard tier rather than economy.",
        f"- APGR {_num(apgr)} vs target {APGR_TARGET}: "
        f"{verdict(apgr is not None and apgr >= APGR_TARGET)}.",
        f"- ECE {_num(ece, 3)} vs target {ECE_TARGET}: {verdict(ece <= ECE_TARGET)}.",
    ]
