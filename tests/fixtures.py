"""A small synthetic labeled-traffic set with a learnable signal, and a tiny model built from it.

For tests only (real numbers come from real traffic): prompts come in three kinds whose surface
features the feature extractor sees (a short factual question, a tool call, a long proof request),
and each kind needs a higher tier with high probability. One source runs every tier plus extra
unpriced models (difficulty evidence); another runs only economy and premium (partial tiers).
``build_tiny_model`` trains a real model on it in seconds, for runtime tests in any package.
"""

from __future__ import annotations

import gzip
import json
import os
import tempfile
from pathlib import Path
from typing import Any

import numpy as np
import yaml

from router_ml_lab.train.config import load_config

CATALOG: dict[str, Any] = {
    "_tiers": {
        "economy": {"input_usd_per_mtok": 0.5, "output_usd_per_mtok": 1.5},
        "standard": {"input_usd_per_mtok": 3.0, "output_usd_per_mtok": 15.0},
        "premium": {"input_usd_per_mtok": 15.0, "output_usd_per_mtok": 75.0},
    },
    "eco-a": {"tier": "economy", "input_usd_per_mtok": 0.2, "output_usd_per_mtok": 0.6},
    "eco-b": {"tier": "economy", "input_usd_per_mtok": 0.5, "output_usd_per_mtok": 1.5},
    "std-a": {"tier": "standard", "input_usd_per_mtok": 3.0, "output_usd_per_mtok": 15.0},
    "prem-a": {"tier": "premium", "input_usd_per_mtok": 15.0, "output_usd_per_mtok": 75.0},
    **{f"open-{i}": {"tier": None} for i in range(8)},
}
_TOOL = {
    "type": "function",
    "function": {
        "name": "get_weather",
        "description": "Weather for a city",
        "parameters": {
            "type": "object",
            "properties": {"city": {"type": "string"}},
            "required": ["city"],
        },
    },
}
_TIER_MODELS = {"economy": ("eco-a", "eco-b"), "standard": ("std-a",), "premium": ("prem-a",)}
_OPEN_ABILITY = np.linspace(-1.0, 2.0, 8)


def _request(kind: int, index: int, rng: np.random.Generator) -> dict[str, Any]:
    if kind == 0:
        text = f"What is the capital of country number {index}?"
        return {"messages": [{"role": "user", "content": text}]}
    if kind == 1:
        text = f"Check the weather in city {index} and calculate how many days it rains."
        return {"messages": [{"role": "user", "content": text}], "tools": [_TOOL]}
    words = " ".join(rng.choice(["lemma", "bound", "prime", "graph", "norm"], size=60))
    text = f"Prove theorem {index} step by step, justify each lemma.\n{words}\n" + "$\\sum x$ " * 5
    return {
        "messages": [
            {"role": "system", "content": "You are a mathematician."},
            {"role": "user", "content": text},
        ]
    }


def generate_records(n: int = 600, seed: int = 0) -> list[dict[str, Any]]:
    """``n`` raw traffic records (dicts in the JSONL format) with a learnable tier signal."""
    rng = np.random.default_rng(seed)
    records = []
    for i in range(n):
        kind = int(rng.choice(3, p=[0.6, 0.25, 0.15]))
        partial = i % 4 == 3  # a quarter of the traffic ran only economy and premium
        needed = kind if rng.random() > 0.02 else int(rng.integers(0, 3))  # 2% label noise
        outcomes: dict[str, float] = {}
        for k, tier in enumerate(_TIER_MODELS):
            if partial and tier == "standard":
                continue
            for model in _TIER_MODELS[tier]:
                outcomes[model] = float(k >= needed if rng.random() > 0.01 else k < needed)
        if not partial:
            for j, ability in enumerate(_OPEN_ABILITY):
                p = 1.0 / (1.0 + np.exp(-(ability - (needed - 0.5) * 2.0)))
                outcomes[f"open-{j}"] = float(rng.random() < p)
        records.append(
            {
                "id": f"fixture:{i}",
                "source": "fixture_partial" if partial else "fixture_all",
                "category": ("fact", "tool", "proof")[kind],
                "request": _request(kind, i, rng),
                "outcomes": outcomes,
            }
        )
    return records


def write_fixture(
    directory: str | os.PathLike[str],
    n: int = 600,
    seed: int = 0,
    extra_lines: list[str] | None = None,
) -> tuple[Path, Path]:
    """Write ``traffic.jsonl.gz`` (plus ``extra_lines`` appended) and ``models.json``."""
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    traffic = directory / "traffic.jsonl.gz"
    lines = [json.dumps(record) for record in generate_records(n, seed)]
    lines += [line.rstrip("\n") for line in extra_lines or []]
    # mtime=0: the same records give the same bytes, whenever they are written.
    traffic.write_bytes(gzip.compress(("\n".join(lines) + "\n").encode("utf-8"), mtime=0))
    catalog = directory / "models.json"
    catalog.write_text(json.dumps(CATALOG), encoding="utf-8")
    return traffic, catalog


def tiny_config(directory: str | os.PathLike[str], **overrides: dict[str, Any]) -> Path:
    """A copy of the default config with a small, fast model; ``overrides`` update sections."""
    config = load_config()
    config["model"].update(n_estimators=30, num_leaves=7, max_depth=3, min_child_samples=5)
    config["operating_points"]["threshold_grid"] = 50
    # No text embedding: it needs a cached distillation or the distill extra (torch).
    config["text_embedding"]["enabled"] = False
    for section, values in overrides.items():
        config[section].update(values)
    path = Path(directory) / "config.yaml"
    path.write_text(yaml.safe_dump(config), encoding="utf-8")
    return path


def build_tiny_model(out_dir: str | os.PathLike[str], n: int = 600, seed: int = 0) -> Path:
    """Train a real (tiny) model on the synthetic fixture into ``out_dir``; returns ``out_dir``."""
    from router_ml_lab.train.pipeline import train

    with tempfile.TemporaryDirectory(prefix="router-ml-fixture-") as tmp:
        traffic, catalog = write_fixture(tmp, n=n, seed=seed)
        config = tiny_config(tmp)
        train([traffic], catalog, out_dir, config_path=config, seed=seed, progress=False)
    return Path(out_dir)
