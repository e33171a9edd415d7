"""Warnings when the data is too small for the model card's figures to mean much.

Retraining on a few hundred of one's own records leaves a test split of a few dozen: a measured
under-routing of 5% on 60 records is compatible with 0-12%, and a source with a handful of test
records can look perfect by luck. Training still runs (a small model of one's own traffic can be
worth having), but the user is told on the console and in the card, next to the bootstrap
intervals that show how wide the uncertainty is.
"""

from __future__ import annotations

import numpy as np

from router_ml_lab.quality.splits import TEST

SMALL_LABELED_SET = 1000
"""Fewer labeled records than this in total: the whole model is fitted on little evidence."""
SMALL_TEST_SLICE = 100
"""Fewer test records than this in a source: its per-source figures are anecdotes."""


def small_data_warnings(splits: np.ndarray, sources: np.ndarray, n_censored: int = 0) -> list[str]:
    """One sentence per problem, empty when the data is large enough."""
    found = []
    n = int(splits.size)
    if n + n_censored < SMALL_LABELED_SET:
        found.append(
            f"small data: only {n} labeled records (+{n_censored} censored) in total; the test "
            f"split has {int(np.sum(splits == TEST))}. Every figure is uncertain: read the 95% "
            "bootstrap intervals in the model card, and add public traffic "
            "(--data ../shared/data/traffic your.jsonl) or collect more outcomes."
        )
    for source in sorted(set(sources.tolist())):
        in_test = int(np.sum((sources == source) & (splits == TEST)))
        if in_test < SMALL_TEST_SLICE:
            found.append(
                f"small test slice: source {source!r} has {in_test} test records "
                f"(< {SMALL_TEST_SLICE}); its per-source figures are uncertain (see their 95% "
                "bootstrap intervals in the model card)."
            )
    return found
