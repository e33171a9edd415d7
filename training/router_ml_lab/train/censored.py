"""Training targets for censored labels: "this request needs more than tier k".

Own gateway traffic often says only that a tier was *not enough* (the economy answer failed its
answer gate, or a reviewer scored it 0) without saying which higher tier would have been (see
``router_ml_lab.quality.labels``). Such a record is the most valuable signal of a retraining loop
and must count, but labelling it with one tier would invent evidence: "standard" claims that
standard is enough (an under-routing bias exactly where the router already failed), "premium"
claims that standard is not.

The target used instead is the label's expectation given what is known: the record's mass is spread
over the tiers above the bound, in proportion to how often each of them is the exact label among
training records that also need more than tier k (of the same source when it has at least
``min_prior`` such records, else over all sources). This is one soft row per possible tier, the
same device as label denoising (``difficulty.py``): the multiclass loss on those rows is the loss of
the expected label, P(needs more than tier k) gets the record's full weight, and only the split
between the tiers above, which the record cannot tell, follows the prior.

Censored records train the model but do not enter calibration, thresholds or test metrics: each
of those needs the exact tier of every record it scores.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from router_ml.tiers import TIERS

MIN_PRIOR = 20
"""Fewest exact labels above a bound in a source for its own prior to be used."""


def censored_targets(
    bounds: np.ndarray,
    sources: Sequence[str],
    exact_labels: np.ndarray,
    exact_sources: Sequence[str],
    min_prior: int = MIN_PRIOR,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Training rows ``(record index, tier target, weight)`` of censored records.

    ``bounds[i]`` is the cheapest tier record ``i`` may need (``lower_bound``); each record gets
    one row per tier at or above it with a prior share as weight (the weights of a record sum to
    1). ``exact_labels`` / ``exact_sources`` are the exactly labeled training records the prior is
    counted on.
    """
    bounds = np.asarray(bounds, dtype=np.int64)
    exact_labels = np.asarray(exact_labels, dtype=np.int64)
    exact_sources = np.asarray(exact_sources, dtype=object)
    if bounds.size and (bounds.min() < 1 or bounds.max() >= len(TIERS)):
        raise ValueError(f"censored bounds must be tier indices in [1, {len(TIERS)})")
    rows, tiers, weights = [], [], []
    for index, (bound, source) in enumerate(zip(bounds, sources, strict=True)):
        prior = _prior(int(bound), exact_labels[exact_sources == source], min_prior)
        if prior is None:
            prior = _prior(int(bound), exact_labels, 1)
        if prior is None:  # no exact label above the bound anywhere: spread evenly
            prior = np.full(len(TIERS) - bound, 1.0 / (len(TIERS) - bound))
        for offset, share in enumerate(prior):
            if share > 0:
                rows.append(index)
                tiers.append(bound + offset)
                weights.append(float(share))
    return (
        np.array(rows, dtype=np.int64),
        np.array(tiers, dtype=np.int64),
        np.array(weights, dtype=np.float64),
    )


def _prior(bound: int, labels: np.ndarray, min_count: int) -> np.ndarray | None:
    """Shares of the tiers ``bound..top`` among ``labels`` at or above ``bound``."""
    above = labels[labels >= bound]
    if above.size < min_count:
        return None
    counts = np.bincount(above - bound, minlength=len(TIERS) - bound).astype(np.float64)
    return counts / counts.sum()


def with_censored_rows(
    fit_rows: tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray],
    censored_features: np.ndarray,
    censored_bounds: np.ndarray,
    censored_sources: np.ndarray,
    exact_labels: np.ndarray,
    exact_sources: np.ndarray,
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """``(features, targets, base weights, sources)`` of the fit, with the censored rows added."""
    features, targets, base, sources = fit_rows
    if not len(censored_bounds):
        return fit_rows
    rows, tiers, weights = censored_targets(
        censored_bounds, censored_sources, exact_labels, exact_sources
    )
    return (
        np.vstack([features, censored_features[rows]]),
        np.concatenate([targets, tiers]),
        np.concatenate([base, weights]),
        np.concatenate([sources, np.asarray(censored_sources)[rows]]),
    )
