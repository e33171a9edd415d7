"""Training hyperparameters: read from YAML (``training/config.yaml`` by default) and checked.

The config file is part of the model's provenance: it is stored whole in ``metadata.json``, so a
shipped model says exactly how it was made. Unknown or missing keys are errors, not defaults,
because a typo in a hyperparameter name would otherwise train a different model silently.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import yaml

DEFAULT_CONFIG = Path(__file__).resolve().parent / "config.yaml"
_SECTIONS: dict[str, set[str]] = {
    "labels": {"per_tier", "tolerance"},
    "split": {"fractions"},
    "reading": {"max_bad_share"},
    "denoise": {"method", "min_models", "strength"},
    "model": {
        "n_estimators",
        "learning_rate",
        "num_leaves",
        "max_depth",
        "min_child_samples",
        "subsample",
        "subsample_freq",
        "colsample_bytree",
        "reg_lambda",
        "class_weight",
        "balance_sources",
    },
    "calibration": {"method", "centered"},
    "operating_points": {"targets", "default", "threshold_grid", "margin_z"},
    "cost": {"assumed_output_tokens"},
    "export": {"target_opset", "parity_tolerance"},
    "augment": {"copies", "system_prompt", "max_tokens", "json_mode", "stream", "earlier_turns"},
    "coverage": {"max_flagged"},
    "text_embedding": {"enabled", "cache_dir"},
    "task_kinds": {"enabled", "real_per_kind"},
}
DENOISE_METHODS = ("none", "irt")


def load_config(path: str | os.PathLike[str] | None = None) -> dict[str, Any]:
    """The validated config at ``path`` (None: the default one shipped with ``training``)."""
    source = Path(path) if path is not None else DEFAULT_CONFIG
    try:
        config = yaml.safe_load(source.read_text(encoding="utf-8"))
    except yaml.YAMLError as exc:
        raise ValueError(f"{source}: not valid YAML: {exc}") from None
    validate_config(config, str(source))
    return config


def validate_config(config: Any, source: str = "config") -> None:
    """Raise ``ValueError`` naming the key when ``config`` is incomplete or inconsistent."""
    if not isinstance(config, dict):
        raise ValueError(f"{source}: expected a mapping of sections")
    if set(config) != set(_SECTIONS):
        raise ValueError(
            f"{source}: sections {sorted(config)}; expected exactly {sorted(_SECTIONS)}"
        )
    for section, keys in _SECTIONS.items():
        values = config[section]
        if not isinstance(values, dict) or set(values) != keys:
            found = sorted(values) if isinstance(values, dict) else values
            raise ValueError(f"{source}: {section}: keys {found}; expected {sorted(keys)}")
    if config["denoise"]["method"] not in DENOISE_METHODS:
        raise ValueError(f"{source}: denoise.method must be one of {DENOISE_METHODS}")
    targets = config["operating_points"]["targets"]
    if not targets or not all(0 < t < 1 for t in targets):
        raise ValueError(f"{source}: operating_points.targets must be shares in (0, 1)")
    if config["operating_points"]["default"] not in targets:
        raise ValueError(f"{source}: operating_points.default must be one of the targets")
    if config["calibration"]["method"] != "isotonic":
        raise ValueError(f"{source}: calibration.method: only 'isotonic' is supported")
