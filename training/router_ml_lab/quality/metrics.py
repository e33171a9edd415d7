"""Routing-quality metrics, pure numpy, with their definitions written down.

Tiers are integer indices into ``router_ml.tiers.TIERS`` (0 = economy < 1 = standard <
2 = premium). ``labels`` are the reference tiers (the cheapest tier good enough for the request),
``chosen`` the tiers a router picked. Per-tier *scores* are the realised outcome of serving a
request with that tier (``TierRepresentatives.tier_scores`` in :mod:`router_ml_lab.quality.labels`),
NaN where the data has no model of that tier.

Routing metrics (accuracy, F1, under/over-routing) say how often a router agrees with the label;
outcome metrics (quality kept, relative cost) say what the traffic would have got and paid; the
RouteLLM metrics (call–performance curve, PGR, APGR, CPT) and RouterBench's AIQ summarise a whole
operating-point sweep, so routers are compared by their curves, not by one threshold each.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

N_TIERS = 3


def _tier_arrays(labels: np.ndarray, chosen: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    labels = np.asarray(labels)
    chosen = np.asarray(chosen)
    if labels.ndim != 1 or labels.shape != chosen.shape:
        raise ValueError(
            f"labels {labels.shape} and chosen {chosen.shape} must be equal-length 1-d"
        )
    if labels.size == 0:
        raise ValueError("no records to evaluate")
    return labels.astype(np.int64), chosen.astype(np.int64)


def confusion_matrix(labels: np.ndarray, chosen: np.ndarray, n_tiers: int = N_TIERS) -> np.ndarray:
    """Counts ``C[i, j]`` of records labeled tier ``i`` and routed to tier ``j``.

    Below the diagonal is under-routing (a cheaper tier than needed), above it over-routing.
    """
    labels, chosen = _tier_arrays(labels, chosen)
    if labels.min() < 0 or chosen.min() < 0 or max(labels.max(), chosen.max()) >= n_tiers:
        raise ValueError(f"tier indices must lie in [0, {n_tiers})")
    matrix = np.zeros((n_tiers, n_tiers), dtype=np.int64)
    np.add.at(matrix, (labels, chosen), 1)
    return matrix


def tier_accuracy(labels: np.ndarray, chosen: np.ndarray) -> float:
    """Share of records routed exactly to their label tier."""
    labels, chosen = _tier_arrays(labels, chosen)
    return float(np.mean(labels == chosen))


def majority_class_accuracy(labels: np.ndarray) -> float:
    """Accuracy of always answering the most frequent label: the floor any router must beat."""
    labels = np.asarray(labels, dtype=np.int64)
    if labels.size == 0:
        raise ValueError("no records to evaluate")
    return float(np.bincount(labels).max() / labels.size)


def macro_f1(labels: np.ndarray, chosen: np.ndarray, n_tiers: int = N_TIERS) -> float:
    """Unweighted mean of per-tier F1 over the tiers present in labels or choices.

    A tier that occurs in neither is left out (its F1 is undefined); a tier that occurs in only
    one of them has F1 = 0. This matches scikit-learn's ``f1_score(average="macro")``.
    """
    matrix = confusion_matrix(labels, chosen, n_tiers)
    true_pos = np.diag(matrix).astype(np.float64)
    support = matrix.sum(axis=1)
    predicted = matrix.sum(axis=0)
    present = (support + predicted) > 0
    f1 = 2 * true_pos[present] / (support[present] + predicted[present])
    return float(f1.mean())


def under_routing_rate(labels: np.ndarray, chosen: np.ndarray) -> float:
    """Share of records sent to a tier *below* their label: the costly error for quality."""
    labels, chosen = _tier_arrays(labels, chosen)
    return float(np.mean(chosen < labels))


def over_routing_rate(labels: np.ndarray, chosen: np.ndarray) -> float:
    """Share of records sent to a tier *above* their label: the error that costs money."""
    labels, chosen = _tier_arrays(labels, chosen)
    return float(np.mean(chosen > labels))


def tier_shares(chosen: np.ndarray, n_tiers: int = N_TIERS) -> np.ndarray:
    """Share of records routed to each tier."""
    chosen = np.asarray(chosen, dtype=np.int64)
    if chosen.size == 0:
        raise ValueError("no records to evaluate")
    return np.bincount(chosen, minlength=n_tiers)[:n_tiers] / chosen.size


def serving_tiers(scores: np.ndarray) -> np.ndarray:
    """``(n, n_tiers)`` index of the tier that serves a record routed to each tier.

    A tier the record has a score for serves itself. A tier without one is served by the nearest
    *more capable* tier that has one, else the nearest cheaper one: a deployment that lacks a
    tier escalates. Quality and cost both follow the serving tier, so routing to a tier the data
    has no evidence for earns neither a stronger tier's quality at a cheaper price nor the
    reverse. Rows with no score at all are an error.
    """
    scores = np.asarray(scores, dtype=np.float64)
    if scores.ndim != 2:
        raise ValueError("scores must be (n_records, n_tiers)")
    present = ~np.isnan(scores)
    if not present.any(axis=1).all():
        raise ValueError("a record has no tier score at all")
    n_tiers = scores.shape[1]
    serving = np.tile(np.arange(n_tiers), (scores.shape[0], 1))
    for k in range(n_tiers):
        unresolved = ~present[:, k]
        for other in [*range(k + 1, n_tiers), *range(k - 1, -1, -1)]:
            take = unresolved & present[:, other]
            serving[take, k] = other
            unresolved &= ~take
    return serving


def fill_missing_tier_scores(scores: np.ndarray) -> np.ndarray:
    """Per-tier scores ``(n, n_tiers)`` with each NaN replaced by its serving tier's score.

    See :func:`serving_tiers`; outcome metrics need a score for whatever tier a router picks, and
    this keeps every router on the same records.
    """
    scores = np.asarray(scores, dtype=np.float64)
    return scores[np.arange(scores.shape[0])[:, None], serving_tiers(scores)]


def realised_scores(scores: np.ndarray, chosen: np.ndarray) -> np.ndarray:
    """The score of the tier each record was routed to (``scores`` must have no NaN)."""
    scores = np.asarray(scores, dtype=np.float64)
    chosen = np.asarray(chosen, dtype=np.int64)
    if np.isnan(scores).any():
        raise ValueError("scores contain NaN; fill them first (fill_missing_tier_scores)")
    return scores[np.arange(len(chosen)), chosen]


def quality_kept(
    scores: np.ndarray, chosen: np.ndarray, reference_tier: int = N_TIERS - 1
) -> float:
    """Mean realised outcome of the chosen tiers relative to always using ``reference_tier``.

    ``mean(scores[i, chosen[i]]) / mean(scores[:, reference])``; 1.0 means the router kept all of
    always-premium's quality, above 1.0 that cheaper tiers were better on these records.
    """
    scores = np.asarray(scores, dtype=np.float64)
    reference = float(np.mean(scores[:, reference_tier]))
    if reference <= 0:
        raise ValueError("the reference tier scores zero on average; quality kept is undefined")
    return float(np.mean(realised_scores(scores, chosen)) / reference)


def cost_relative(
    costs: np.ndarray, chosen: np.ndarray, reference_tier: int = N_TIERS - 1
) -> float:
    """Total cost of the chosen tiers over the total cost of always using ``reference_tier``."""
    costs = np.asarray(costs, dtype=np.float64)
    chosen = np.asarray(chosen, dtype=np.int64)
    reference = float(costs[:, reference_tier].sum())
    if reference <= 0:
        raise ValueError("the reference tier costs nothing; relative cost is undefined")
    return float(costs[np.arange(len(chosen)), chosen].sum() / reference)


def roc_auc(scores: np.ndarray, events: np.ndarray) -> float:
    """Area under the ROC curve of ``scores`` for binary ``events`` (ties count one half).

    The probability that a random event record scores above a random non-event record: 0.5 is a
    random ranking. A per-record statistic, far steadier on a few hundred records than a pooled
    APGR, whose denominator (the mean strong-minus-weak gain) is small next to its per-record
    spread. NaN when only one class is present.
    """
    scores = np.asarray(scores, dtype=np.float64)
    events = np.asarray(events).astype(bool)
    if scores.ndim != 1 or scores.shape != events.shape or scores.size == 0:
        raise ValueError("scores and events must be non-empty equal-length 1-d arrays")
    n_pos = int(events.sum())
    n_neg = events.size - n_pos
    if n_pos == 0 or n_neg == 0:
        return float("nan")
    order = np.argsort(scores, kind="stable")
    sorted_scores = scores[order]
    ranks = np.empty(scores.size, dtype=np.float64)
    starts = np.concatenate([[0], np.flatnonzero(np.diff(sorted_scores)) + 1])
    ends = np.concatenate([starts[1:], [scores.size]])
    ranks[order] = np.repeat((starts + ends + 1) / 2.0, ends - starts)  # mid-ranks, 1-based
    return float((ranks[events].sum() - n_pos * (n_pos + 1) / 2) / (n_pos * n_neg))


def expected_calibration_error(
    probabilities: np.ndarray, labels: np.ndarray, n_bins: int = 10
) -> float:
    """Expected calibration error with ``n_bins`` equal-width confidence bins.

    Binary (``probabilities`` 1-d = P(event), ``labels`` 0/1): ``sum_b |B_b|/n * |mean(y_b) -
    mean(p_b)|``, the reliability of a risk such as P(needs more than economy). Multiclass
    (``probabilities`` 2-d): the same on the top class, confidence ``max p`` against whether the
    argmax equals the label. Bins are ``[0, 1/B), ..., [(B-1)/B, 1]``.
    """
    probabilities = np.asarray(probabilities, dtype=np.float64)
    labels = np.asarray(labels)
    if n_bins < 1:
        raise ValueError("n_bins must be >= 1")
    if probabilities.ndim == 1:
        confidence, outcome = probabilities, labels.astype(np.float64)
    elif probabilities.ndim == 2:
        confidence = probabilities.max(axis=1)
        outcome = (probabilities.argmax(axis=1) == labels).astype(np.float64)
    else:
        raise ValueError("probabilities must be 1-d (binary) or 2-d (multiclass)")
    if confidence.shape[0] != outcome.shape[0] or confidence.size == 0:
        raise ValueError("probabilities and labels must be non-empty and of equal length")
    if (confidence < 0).any() or (confidence > 1).any():
        raise ValueError("probabilities must lie in [0, 1]")
    bins = np.minimum((confidence * n_bins).astype(np.int64), n_bins - 1)
    counts = np.bincount(bins, minlength=n_bins)
    gap = np.abs(
        np.bincount(bins, weights=outcome, minlength=n_bins)
        - np.bincount(bins, weights=confidence, minlength=n_bins)
    )
    return float(gap.sum() / counts.sum())


@dataclass(frozen=True)
class CallPerformanceCurve:
    """RouteLLM's call–performance curve of a router choosing between a weak and a strong model.

    ``strong_share[i]`` is the fraction of calls sent to the strong model at the i-th operating
    point (from 0 to 1, increasing), ``performance[i]`` the mean realised score there.
    """

    strong_share: np.ndarray
    performance: np.ndarray
    weak_performance: float
    strong_performance: float

    @property
    def pgr(self) -> np.ndarray:
        """Performance gap recovered: ``(r(router) - r(weak)) / (r(strong) - r(weak))``."""
        gap = self.strong_performance - self.weak_performance
        if gap == 0:
            return np.full_like(self.performance, np.nan)
        return (self.performance - self.weak_performance) / gap


def call_performance_curve(
    strong_scores: np.ndarray, weak_scores: np.ndarray, escalation_score: np.ndarray
) -> CallPerformanceCurve:
    """Sweep the threshold on ``escalation_score`` (higher = send to strong) over every value.

    At each distinct threshold ``t`` the router sends the records with score >= ``t`` to the strong
    model; tied records move together, and the curve between operating points is the straight
    line a random tie-break would trace. The end points are all-weak (share 0) and all-strong
    (share 1), so PGR runs from 0 to 1 by construction.
    """
    strong_scores = np.asarray(strong_scores, dtype=np.float64)
    weak_scores = np.asarray(weak_scores, dtype=np.float64)
    escalation_score = np.asarray(escalation_score, dtype=np.float64)
    n = strong_scores.size
    if n == 0 or weak_scores.shape != (n,) or escalation_score.shape != (n,):
        raise ValueError("strong_scores, weak_scores and escalation_score must be equal-length 1-d")
    if np.isnan(strong_scores).any() or np.isnan(weak_scores).any():
        raise ValueError("scores must not contain NaN")
    order = np.argsort(-escalation_score, kind="stable")
    gain = (strong_scores - weak_scores)[order]
    cumulative_gain = np.concatenate([[0.0], np.cumsum(gain)])
    sorted_scores = escalation_score[order]
    # Operating points only where the threshold can stop: after the last of each tie group.
    group_ends = np.flatnonzero(np.append(sorted_scores[1:] != sorted_scores[:-1], True)) + 1
    counts = np.concatenate([[0], group_ends])
    weak_mean = float(weak_scores.mean())
    return CallPerformanceCurve(
        strong_share=counts / n,
        performance=weak_mean + cumulative_gain[counts] / n,
        weak_performance=weak_mean,
        strong_performance=float(strong_scores.mean()),
    )


def apgr(curve: CallPerformanceCurve) -> float:
    """Average performance gap recovered: the area under PGR against the share of strong calls.

    Integrated exactly over [0, 1] on the piecewise-linear curve (trapezoids). A random router
    scores 0.5 in expectation; higher is better. NaN when strong and weak perform the same.
    """
    pgr = curve.pgr
    if np.isnan(pgr).any():
        return float("nan")
    x = curve.strong_share
    return float(np.sum((x[1:] - x[:-1]) * (pgr[1:] + pgr[:-1]) / 2))


def cpt(curve: CallPerformanceCurve, target_pgr: float) -> float:
    """Call-performance threshold: the smallest share of strong calls that reaches ``target_pgr``.

    Read off the piecewise-linear curve at its first crossing of the target (RouteLLM's CPT(50%)
    is ``cpt(curve, 0.5)``). Lower is better; NaN when the gap is zero.
    """
    if not 0 <= target_pgr <= 1:
        raise ValueError("target_pgr must lie in [0, 1]")
    pgr = curve.pgr
    if np.isnan(pgr).any():
        return float("nan")
    x = curve.strong_share
    reached = np.flatnonzero(pgr >= target_pgr)
    first = int(reached[0])  # the all-strong end point always reaches PGR 1
    if first == 0:
        return float(x[0])
    x0, x1, y0, y1 = x[first - 1], x[first], pgr[first - 1], pgr[first]
    return float(x0 + (target_pgr - y0) * (x1 - x0) / (y1 - y0))


def nondecreasing_convex_hull(
    costs: np.ndarray, qualities: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """Vertices of RouterBench's non-decreasing convex hull of a router's (cost, quality) points.

    Any two operating points can be mixed at random, so every point on the segment between them is
    reachable: the router's attainable curve is the upper concave hull of its points. And paying
    more never has to lose quality, so the curve is held flat after its highest point.
    """
    costs = np.asarray(costs, dtype=np.float64)
    qualities = np.asarray(qualities, dtype=np.float64)
    if costs.ndim != 1 or costs.shape != qualities.shape or costs.size == 0:
        raise ValueError("costs and qualities must be non-empty equal-length 1-d arrays")
    order = np.lexsort((-qualities, costs))
    hull: list[tuple[float, float]] = []
    for c, q in zip(costs[order], qualities[order], strict=True):
        if hull and hull[-1][0] == c:
            continue  # same cost, lower quality: dominated
        while len(hull) >= 2:
            (c1, q1), (c2, q2) = hull[-2], hull[-1]
            # drop the middle point when it lies on or below the chord from hull[-2] to (c, q)
            if (q2 - q1) * (c - c1) <= (q - q1) * (c2 - c1):
                hull.pop()
            else:
                break
        hull.append((float(c), float(q)))
    hull_costs, hull_qualities = (np.array(v) for v in zip(*hull, strict=True))
    peak = int(np.argmax(hull_qualities))
    return hull_costs[: peak + 1], hull_qualities[: peak + 1]


def aiq(
    costs: np.ndarray, qualities: np.ndarray, cost_range: tuple[float, float] | None = None
) -> float:
    """RouterBench's average improvement in quality: ``1/(c_max - c_min) * ∫ R̃(c) dc``.

    ``R̃`` is the non-decreasing convex hull of the router's (cost, quality) operating points.
    Without ``cost_range`` it is integrated over the router's own cost range. With a shared
    ``cost_range`` (e.g. from always-economy to always-premium) routers become comparable: below
    the router's cheapest point it attains nothing (quality 0 counts there), above its costliest
    point it keeps its best quality.
    """
    hull_costs, hull_qualities = nondecreasing_convex_hull(costs, qualities)
    if cost_range is None:
        c_min, c_max = float(np.min(costs)), float(np.max(costs))
    else:
        c_min, c_max = cost_range
    if c_max <= c_min:
        return float(hull_qualities[-1]) if cost_range is None else float("nan")
    grid = np.unique(np.concatenate([hull_costs, [c_min, c_max]]))
    grid = grid[(grid >= c_min) & (grid <= c_max)]
    values = np.interp(grid, hull_costs, hull_qualities, left=0.0, right=hull_qualities[-1])
    # np.interp clamps to the first hull value at the first hull cost itself; before it, 0.
    values[grid < hull_costs[0]] = 0.0
    area = float(np.sum((grid[1:] - grid[:-1]) * (values[1:] + values[:-1]) / 2))
    # A jump from 0 up to the first hull point is a step, not a ramp: remove the ramp triangle.
    if hull_costs[0] > c_min:
        i = int(np.searchsorted(grid, hull_costs[0]))
        area += (grid[i] - grid[i - 1]) * (0 - values[i]) / 2
    return area / (c_max - c_min)


def agreement_rate(outcomes_a: np.ndarray, outcomes_b: np.ndarray, threshold: float = 0.5) -> float:
    """Share of prompts on which two models pass or fail alike (outcome >= ``threshold``).

    Run on two near-identical snapshots of one model it is a noise reference: no router can be
    expected to agree with labels more often than the labels agree with themselves.
    """
    a = np.asarray(outcomes_a, dtype=np.float64)
    b = np.asarray(outcomes_b, dtype=np.float64)
    if a.shape != b.shape or a.ndim != 1 or a.size == 0:
        raise ValueError("outcomes must be non-empty equal-length 1-d arrays")
    return float(np.mean((a >= threshold) == (b >= threshold)))
