"""Does the risk model rank real chat better with the task-kind columns read by its trees or not?

For a model directory's text table (embedding and task-kind reader), fits the LightGBM of
``router_ml_lab.train.fit`` twice, once blind to the thread columns only and once blind to the
``kind_*`` columns too, and reports for each:

- 5-fold CV on arena_bench, the real chat source (the other sources' training-split rows fixed,
  the arena prompts in five folds, three fold seeds): APGR of the out-of-fold risk;
- the validation split's AUC of P(needs more than economy) and APGR, pooled and per traffic kind,
  of a fit on the whole training split.

Ranking of the uncalibrated risk, without envelope augmentation (the same for both fits), so
only the columns differ. Usage::

    python benchmarks/chat_ranking_cv.py [--model models/default] [--data ../shared/data]
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np
from labeled_traffic import labeled_traffic
from lightgbm import LGBMClassifier
from sklearn.model_selection import KFold

from router_ml.features import FEATURE_INDEX, KIND_FEATURES
from router_ml.text_embedding import FILE_NAME, TextEmbedding
from router_ml_lab.quality import metrics
from router_ml_lab.quality.evidence import Evidence, build_evidence
from router_ml_lab.quality.kinds import traffic_kinds
from router_ml_lab.quality.splits import TRAIN, VALIDATION
from router_ml_lab.quality.summary import routellm_metrics
from router_ml_lab.train.fit import fit_classifier, sample_weights
from router_ml_lab.train.pipeline import MODEL_BLIND_COLUMNS, request_features

CHAT_SOURCE = "arena_bench"
FOLD_SEEDS = (0, 1, 2)


def _apgr(evidence: Evidence, risk: np.ndarray) -> float | None:
    """APGR of ranking by ``risk``, None where economy and premium never both answered."""
    summary = routellm_metrics(evidence, risk)
    return None if summary is None else float(summary["apgr"])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--model", default="models/default", help="model directory (its table)")
    parser.add_argument("--data", default="../shared/data", help="traffic/ and models.json here")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()

    traffic = labeled_traffic(args.data, args.seed)
    config, records, y, splits = traffic.config, traffic.records, traffic.labels, traffic.splits
    sources = np.array([r.source for r in records])
    chat = np.flatnonzero(sources == CHAT_SOURCE)
    fixed = np.flatnonzero((splits == TRAIN) & (sources != CHAT_SOURCE))
    train, validation = np.flatnonzero(splits == TRAIN), np.flatnonzero(splits == VALIDATION)
    default_tokens = config["cost"]["assumed_output_tokens"]

    def evidence(rows: np.ndarray) -> Evidence:
        chosen = [records[i] for i in rows]
        prices = traffic.catalog.tier_prices
        return build_evidence(chosen, traffic.representatives, prices, default_tokens)

    chat_evidence, validation_evidence = evidence(chat), evidence(validation)
    embedding = TextEmbedding.load(Path(args.model) / FILE_NAME)
    x = request_features([r.request for r in records], False, embedding=embedding)
    kinds = traffic_kinds(sources[validation], x[validation])

    def fit(rows: np.ndarray, blind: tuple[int, ...]) -> LGBMClassifier:
        weights = sample_weights(y[rows], sources[rows], config["model"]["class_weight"], True)
        return fit_classifier(x[rows], y[rows], weights, config["model"], args.seed, blind)

    kind_columns = tuple(FEATURE_INDEX[name] for name in KIND_FEATURES)
    shipped = MODEL_BLIND_COLUMNS  # the thread reading
    result = {}
    for name, blind in (("kinds read", shipped), ("kinds blind", shipped + kind_columns)):
        chat_apgr = []
        for fold_seed in FOLD_SEEDS:
            risk = np.zeros(len(chat))
            for fit_rows, held in KFold(5, shuffle=True, random_state=fold_seed).split(chat):
                model = fit(np.concatenate([fixed, chat[fit_rows]]), blind)
                risk[held] = 1 - np.asarray(model.predict_proba(x[chat[held]]))[:, 0]
            chat_apgr.append(_apgr(chat_evidence, risk))
        risk = 1 - np.asarray(fit(train, blind).predict_proba(x[validation]))[:, 0]
        result[name] = {
            "chat_cv_apgr": float(np.mean([a for a in chat_apgr if a is not None])),
            "chat_cv_apgr_per_fold_seed": chat_apgr,
            "validation_auc": metrics.roc_auc(risk, y[validation] > 0),
            "validation_apgr": _apgr(validation_evidence, risk),
            "validation_apgr_per_kind": {
                kind: _apgr(validation_evidence.subset(kinds == kind), risk[kinds == kind])
                for kind in sorted(set(kinds.tolist()))
            },
        }
    print(json.dumps(result, indent=1))


if __name__ == "__main__":
    main()
