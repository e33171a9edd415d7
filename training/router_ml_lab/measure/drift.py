"""``router-ml drift``: is this window's traffic still the traffic the router was tuned on?

Compares a current window with a baseline (both scanned by :mod:`~router_ml_lab.measure.scan`):

- population stability index (PSI) of every feature, and of every dimension of the text
  representation when the router exposes one (``Router.embeddings``; features only otherwise);
- the tier-mix shift under the current policy (largest change of a tier's share);
- the out-of-distribution share: the router's own ``Decision.ood`` score when it has one (share
  at or above the router's ``ood_threshold``, else ``ood_cutoff``), else the share of requests
  with a feature outside the ranges the model was trained on (``feature_ranges`` in its
  metadata);

each against a threshold. Any breach is drift; the CLI's exit code says so for cron or CI.

PSI uses ten bins at the baseline's deciles (fewer where a feature has fewer distinct values),
bins closed on the right so a 0/1 feature gets two bins, and shares floored at
:data:`PSI_FLOOR` so an empty bin does not make it infinite. Rule of thumb: below 0.1 stable,
0.1-0.25 moderate, above 0.25 a real shift. With small windows PSI of unchanged traffic is about
``(bins - 1) * (1/n_baseline + 1/n_current)``; the report prints that noise level.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from router_ml.features import FEATURE_NAMES
from router_ml.router import Router
from router_ml.tiers import TIERS
from router_ml_lab.measure.scan import PartitionScan

PSI_BINS = 10
PSI_FLOOR = 1e-4


@dataclass(frozen=True)
class Thresholds:
    """Limits beyond which a change counts as drift."""

    feature_psi: float = 0.25
    text_psi: float = 0.25
    tier_share_change: float = 0.10
    ood_share_increase: float = 0.05
    ood_cutoff: float = 0.5


def psi(baseline: np.ndarray, current: np.ndarray, bins: int = PSI_BINS) -> float:
    """Population stability index of ``current`` against ``baseline`` (1-d samples)."""
    baseline = np.asarray(baseline, dtype=np.float64)
    current = np.asarray(current, dtype=np.float64)
    if not len(baseline) or not len(current):
        raise ValueError("PSI needs a non-empty baseline and current sample")
    quantiles = np.quantile(baseline, np.linspace(0, 1, bins + 1)[1:-1])
    edges = np.unique(quantiles)
    expected = np.bincount(np.searchsorted(edges, baseline, side="left"), minlength=len(edges) + 1)
    actual = np.bincount(np.searchsorted(edges, current, side="left"), minlength=len(edges) + 1)
    b = np.maximum(expected / len(baseline), PSI_FLOOR)
    c = np.maximum(actual / len(current), PSI_FLOOR)
    return float(np.sum((c - b) * np.log(c / b)))


def outside_training_ranges(features: np.ndarray, router: Router) -> np.ndarray | None:
    """Per request: does any feature lie outside the model's training range? None if unknown."""
    ranges = router.model.metadata.get("feature_ranges")
    if not isinstance(ranges, dict) or list(ranges.get("names", [])) != list(FEATURE_NAMES):
        return None
    low = np.asarray(ranges["min"], dtype=np.float64)
    high = np.asarray(ranges["max"], dtype=np.float64)
    x = features.astype(np.float64)
    return ((x < low - 1e-6) | (x > high + 1e-6)).any(axis=1)


def drift(
    baseline: PartitionScan,
    current: PartitionScan,
    router: Router,
    thresholds: Thresholds = Thresholds(),
) -> dict[str, Any]:
    """Every check with its value, threshold and verdict; ``drift`` is true if any breached."""
    if not len(baseline) or not len(current):
        raise ValueError("both the baseline and the current window need usable requests")
    checks: list[dict[str, Any]] = []
    feature_psi = {
        name: psi(baseline.features[:, i], current.features[:, i])
        for i, name in enumerate(FEATURE_NAMES)
    }
    for name, value in sorted(feature_psi.items(), key=lambda kv: -kv[1]):
        checks.append(_check(f"psi feature {name}", value, thresholds.feature_psi))

    text: dict[str, Any] = {"available": False}
    if baseline.embeddings is not None and current.embeddings is not None:
        dims = [
            psi(baseline.embeddings[:, d], current.embeddings[:, d])
            for d in range(baseline.embeddings.shape[1])
        ]
        text = {"available": True, "dimensions": len(dims), "mean_psi": float(np.mean(dims))}
        checks.append(
            _check("psi text representation (max over dimensions)", max(dims), thresholds.text_psi)
        )

    base_mix = np.bincount(baseline.tiers, minlength=len(TIERS)) / len(baseline)
    current_mix = np.bincount(current.tiers, minlength=len(TIERS)) / len(current)
    checks.append(
        _check(
            "tier mix: largest change of a tier's share",
            float(np.max(np.abs(current_mix - base_mix))),
            thresholds.tier_share_change,
        )
    )

    own_cutoff = router.ood_threshold
    cutoff = own_cutoff if isinstance(own_cutoff, float) else thresholds.ood_cutoff
    ood = _ood_shares(baseline, current, router, cutoff)
    if ood["source"] != "unavailable":
        checks.append(
            _check(
                f"ood share increase ({ood['source']})",
                ood["current"] - ood["baseline"],
                thresholds.ood_share_increase,
            )
        )
    n_b, n_c = len(baseline), len(current)
    return {
        "drift": any(c["breached"] for c in checks),
        "baseline_requests": n_b,
        "current_requests": n_c,
        "bad_lines": {"baseline": baseline.issues.bad, "current": current.issues.bad},
        "psi_noise_level": (PSI_BINS - 1) * (1 / n_b + 1 / n_c),
        "tier_mix": {
            "baseline": dict(zip(TIERS, base_mix.tolist(), strict=True)),
            "current": dict(zip(TIERS, current_mix.tolist(), strict=True)),
        },
        "ood": ood,
        "text_representation": text,
        "thresholds": thresholds.__dict__,
        "checks": checks,
    }


def _ood_shares(
    baseline: PartitionScan, current: PartitionScan, router: Router, cutoff: float
) -> dict[str, Any]:
    if np.isfinite(baseline.ood).all() and np.isfinite(current.ood).all():
        return {
            "source": f"router ood score >= {cutoff}",
            "baseline": float((baseline.ood >= cutoff).mean()),
            "current": float((current.ood >= cutoff).mean()),
        }
    outside_b = outside_training_ranges(baseline.features, router)
    outside_c = outside_training_ranges(current.features, router)
    if outside_b is None or outside_c is None:
        return {"source": "unavailable", "baseline": None, "current": None}
    return {
        "source": "a feature outside the training ranges (the router exposes no ood score)",
        "baseline": float(outside_b.mean()),
        "current": float(outside_c.mean()),
    }


def _check(name: str, value: float, threshold: float) -> dict[str, Any]:
    return {"check": name, "value": value, "threshold": threshold, "breached": value > threshold}


def markdown(result: dict[str, Any], top: int = 10) -> str:
    """The drift verdict with the breached checks and the largest feature shifts."""
    verdict = "DRIFT" if result["drift"] else "no drift"
    lines = [
        f"# Drift check: {verdict}",
        "",
        f"Baseline {result['baseline_requests']} requests, current "
        f"{result['current_requests']}; PSI of unchanged traffic at these sizes is about "
        f"{result['psi_noise_level']:.3f}.",
        "",
        "Tier mix (economy / standard / premium): baseline "
        + " / ".join(f"{v:.1%}" for v in result["tier_mix"]["baseline"].values())
        + ", current "
        + " / ".join(f"{v:.1%}" for v in result["tier_mix"]["current"].values())
        + ".",
        "",
        f"OOD share ({result['ood']['source']}): baseline {_share(result['ood']['baseline'])}, "
        f"current {_share(result['ood']['current'])}.",
        "",
        "Text representation: "
        + (
            f"{result['text_representation']['dimensions']} dimensions, mean PSI "
            f"{result['text_representation']['mean_psi']:.3f}."
            if result["text_representation"]["available"]
            else "the router exposes none; features only."
        ),
        "",
        "| check | value | threshold | breached |",
        "|---|---:|---:|---|",
    ]
    checks = result["checks"]
    shown = [c for c in checks if c["breached"] or not c["check"].startswith("psi feature")]
    shown += [c for c in checks if c["check"].startswith("psi feature") and not c["breached"]][
        : max(0, top - len([c for c in shown if c["check"].startswith("psi feature")]))
    ]
    for check in shown:
        lines.append(
            f"| {check['check']} | {check['value']:.4f} | {check['threshold']:g} "
            f"| {'YES' if check['breached'] else 'no'} |"
        )
    return "\n".join(lines) + "\n"


def _share(value: float | None) -> str:
    return "n/a" if value is None else f"{value:.1%}"
