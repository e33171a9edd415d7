"""The labeled traffic and its grouped split as ``router-ml train`` makes them, for the
measurement scripts beside this file (``reader_transfer.py``, ``chat_ranking_cv.py``).

The training config's label rule and split fractions, the records that carry a label, and each
record's split, so a script measures on the rows training would use.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from router_ml_lab.quality.data import TrafficRecord, read_traffic
from router_ml_lab.quality.labels import Catalog, TierRepresentatives, label_records
from router_ml_lab.quality.splits import assign_splits
from router_ml_lab.train.config import load_config


@dataclass(frozen=True)
class LabeledTraffic:
    config: dict[str, Any]
    catalog: Catalog
    representatives: TierRepresentatives
    records: list[TrafficRecord]
    """The records that carry a reference label, in file order."""
    labels: np.ndarray
    splits: np.ndarray
    """Each record's split (``router_ml_lab.quality.splits``: TRAIN, VALIDATION, TEST)."""


def labeled_traffic(data_dir: str, seed: int) -> LabeledTraffic:
    """``data_dir``'s ``traffic/`` labeled by ``models.json`` and split by the default config."""
    config = load_config(None)
    catalog = Catalog.from_file(f"{data_dir}/models.json")
    records, _ = read_traffic([f"{data_dir}/traffic"], known_models=catalog.model_tier)
    representatives = TierRepresentatives.fit(
        records, catalog, config["labels"]["per_tier"], config["labels"]["tolerance"]
    )
    labels = label_records(records, representatives)
    kept = [(r, label) for r, label in zip(records, labels, strict=True) if label is not None]
    records = [r for r, _ in kept]
    fractions = tuple(float(f) for f in config["split"]["fractions"])
    splits = assign_splits([r.request for r in records], fractions, seed)
    y = np.array([label for _, label in kept], dtype=np.int64)
    return LabeledTraffic(config, catalog, representatives, records, y, splits)
