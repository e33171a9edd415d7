"""Calibrate escalation risks and choose the operating points, all on the validation split.

The isotonic maps turn the classifier's upper-tail probabilities into calibrated P(needs more
than tier k). The thresholds on those risks are then chosen to spend as little as possible while
sending at most a target share of requests to a tier below the one they need. Both steps use
:class:`router_ml.calibration.RiskCalibrator` and :func:`router_ml.calibration.choose_tiers`, the
code the runtime runs, so a threshold means on the gateway what it meant here.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
from sklearn.isotonic import IsotonicRegression

from router_ml.calibration import RiskCalibrator, choose_tiers
from router_ml.tiers import TIERS


def fit_risk_calibrator(
    probabilities: np.ndarray, labels: np.ndarray, centered: bool = True
) -> RiskCalibrator:
    """Isotonic maps from raw P(label > k) to calibrated risks, one per tier below the top.

    Plain isotonic regression is a step function: every request inside a step gets the same
    risk, so the classifier's ranking within the step is thrown away and thresholds can only
    move whole steps of traffic. ``centered`` (centered isotonic regression, Oron & Flournoy
    2017) keeps one knot per step at the step's mean raw probability and interpolates between
    them: the same calibration, a strictly increasing map, the model's full ranking.
    """
    probabilities = np.asarray(probabilities, dtype=np.float64)
    labels = np.asarray(labels, dtype=np.int64)
    if probabilities.shape != (labels.size, len(TIERS)) or labels.size == 0:
        raise ValueError("probabilities must be (n, n_tiers) with one label per row")
    raw = RiskCalibrator().risks(probabilities)
    knots = []
    for k in range(len(TIERS) - 1):
        iso = IsotonicRegression(y_min=0.0, y_max=1.0, out_of_bounds="clip")
        iso.fit(raw[:, k], (labels > k).astype(np.float64))
        if centered:
            x, y = _centered_knots(raw[:, k], iso.predict(raw[:, k]))
        else:
            x, y = iso.X_thresholds_, iso.y_thresholds_
        if x.size < 2:  # constant map: one knot; the runtime format needs two
            x, y = np.array([0.0, 1.0]), np.repeat(y[:1] if y.size else [0.0], 2)
        knots.append((x, y))
    return RiskCalibrator(knots)


def _centered_knots(raw: np.ndarray, fitted: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """One knot per constant step of the isotonic fit, at the step's mean raw value, plus ends."""
    order = np.argsort(raw, kind="stable")
    xs, fs = raw[order], fitted[order]
    starts = np.concatenate([[0], np.flatnonzero(np.diff(fs) != 0) + 1])
    sums = np.add.reduceat(xs, starts)
    counts = np.diff(np.concatenate([starts, [xs.size]]))
    x = np.concatenate([[xs[0]], sums / counts, [xs[-1]]])
    y = np.concatenate([[fs[0]], fs[starts], [fs[-1]]])
    keep = np.concatenate([[True], np.diff(x) > 0])  # drop ends that coincide with a centre
    return x[keep], y[keep]


def candidate_thresholds(risk: np.ndarray, grid: int) -> np.ndarray:
    """Thresholds worth trying on one risk: 0 (accept none) and just above each distinct value.

    ``choose_tiers`` accepts a tier when ``risk < threshold``; a threshold just above a value
    accepts every request at or below it. More distinct values than ``grid`` are thinned to
    quantiles. Thresholds stay in [0, 1] (the range the runtime accepts): a risk of exactly 1 is
    never accepted, the escalation-biased reading of "certain to need more".
    """
    values = np.unique(risk)
    if values.size > grid:
        values = np.unique(np.quantile(risk, np.linspace(0.0, 1.0, grid)))
    return np.unique(np.concatenate([[0.0], np.minimum(np.nextafter(values, np.inf), 1.0)]))


def select_thresholds(
    risks: np.ndarray,
    labels: np.ndarray,
    costs: np.ndarray,
    target_under_routing: float,
    grid: int = 200,
    margin_z: float = 0.0,
) -> tuple[float, float]:
    """Cheapest thresholds whose under-routing on these records is at most the target.

    With ``margin_z`` > 0 the measured rate plus ``margin_z`` binomial standard errors must stay
    under the target: the rate measured on a few thousand validation records is itself noisy,
    and when unsure the router should err toward escalation. Exhaustive over the candidate grid
    of both risks; ties in cost go to the lower under-routing, so the choice is deterministic.
    Always feasible: all-premium under-routes none.
    """
    risks = np.asarray(risks, dtype=np.float64)
    labels = np.asarray(labels, dtype=np.int64)
    costs = np.asarray(costs, dtype=np.float64)
    n = labels.size
    if risks.shape != (n, 2) or costs.shape != (n, 3) or n == 0:
        raise ValueError("risks (n, 2), labels (n,) and costs (n, 3) must cover the same records")
    if not 0.0 <= target_under_routing < 1.0:
        raise ValueError(f"target under-routing must be in [0, 1), got {target_under_routing}")
    needs_more_than = [labels > 0, labels > 1]
    candidates_standard = candidate_thresholds(risks[:, 1], grid)
    # (n, G): would the standard tier accept request i at threshold g?
    accept_standard = risks[:, 1][:, None] < candidates_standard[None, :]
    best: tuple[float, float, float, float] | None = None  # cost, under-routing, t0, t1
    for t0 in candidate_thresholds(risks[:, 0], grid):
        economy = risks[:, 0] < t0
        standard = accept_standard & ~economy[:, None]
        under = (
            np.sum(economy & needs_more_than[0])
            + np.sum(standard & needs_more_than[1][:, None], axis=0)
        ) / n
        premium = ~standard & ~economy[:, None]
        cost = costs[economy, 0].sum() + costs[:, 1] @ standard + costs[:, 2] @ premium
        bound = under + margin_z * np.sqrt(under * (1 - under) / n)
        feasible = np.flatnonzero(bound <= target_under_routing + 1e-12)
        if feasible.size == 0:
            continue
        order = np.lexsort((under[feasible], cost[feasible]))
        g = feasible[order[0]]
        candidate = (float(cost[g]), float(under[g]), float(t0), float(candidates_standard[g]))
        if best is None or candidate[:2] < best[:2]:
            best = candidate
    assert best is not None, "all-premium (t0 = t1 = 0) is always feasible"
    t0, t1 = best[2], best[3]
    chosen = choose_tiers(risks, (t0, t1))
    realised = float(np.mean(chosen < labels))
    if realised > target_under_routing + 1e-12:
        raise AssertionError(f"threshold search disagrees with choose_tiers: {realised}")
    return t0, t1


def operating_point_name(target: float) -> str:
    """Stable name of the operating point for a target, e.g. ``under_routing_0.05``."""
    return f"under_routing_{target:g}"


def select_operating_points(
    risks: np.ndarray,
    labels: np.ndarray,
    costs: np.ndarray,
    targets: Sequence[float],
    grid: int = 200,
    margin_z: float = 0.0,
) -> list[tuple[str, float, tuple[float, float]]]:
    """``(name, target, thresholds)`` for each target under-routing, in increasing target order."""
    return [
        (
            operating_point_name(t),
            float(t),
            select_thresholds(risks, labels, costs, t, grid, margin_z),
        )
        for t in sorted(set(targets))
    ]
