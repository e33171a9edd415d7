"""Train the task-kind reader (``router_ml.task_kinds``) that ships inside the text embedding.

Examples come from two places:

- a hand-written seed corpus (``task_kinds.jsonl`` beside this module: realistic requests of each
  product kind, written from the kind definitions, never from the sense suite that evaluates the
  reader), for the kinds the labeled traffic does not contain: summaries, drafts, stories, ...;
- the labeled traffic's *training split* for the kinds it is made of: exam questions (MMLU,
  MMLU-Pro, ARC, Winogrande), math word problems (GSM8K) and short code tasks (MBPP). The
  validation and test splits are never read, so the reader learns nothing about the records the
  router is evaluated on.

The classifier is a multinomial logistic regression on the mean static (384-dim, model2vec) vector
of the ids the runtime pools (``text_embedding.kind_token_ids``), standardised. A linear model over
a mean is the mean of per-token scores, so it is folded into one score per token and kind
(``kind_weights``) and a bias: the runtime computes exactly these logits with one table lookup.
Five-fold cross-validated accuracy per kind is reported in the model card.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from router_ml.request import parse_request
from router_ml.task_kinds import TASK_KINDS
from router_ml.text_embedding import EMBED_CHAR_CAP, KIND_TAIL_CHARS, kind_token_ids
from router_ml.tokenizer import TokenCounter

SEED_CORPUS = Path(__file__).with_name("task_kinds.jsonl")
REAL_KINDS: dict[tuple[str, str | None], str] = {
    ("routellm_mmlu", None): "exam_question",
    ("mmlu_pro", None): "exam_question",
    ("routerbench", "arc-challenge"): "exam_question",
    ("routerbench", "winogrande"): "exam_question",
    ("routellm_gsm8k", None): "math_word_problem",
    ("routerbench", "mbpp"): "code_generation",
}
"""Training-traffic sources (and categories) whose task kind the source itself settles."""
REGULARISATION = (0.1, 0.3, 1.0, 3.0)
"""Inverse regularisation strengths tried by cross-validation."""


@dataclass(frozen=True)
class KindExample:
    kind: str
    text: str


@dataclass(frozen=True)
class KindReader:
    """The folded reader: per-token logits and bias, with its cross-validated accuracy."""

    kind_weights: np.ndarray
    kind_bias: np.ndarray
    report: dict[str, Any]


def load_seed_corpus(path: str | Path = SEED_CORPUS) -> list[KindExample]:
    """The hand-written examples (``{"kind", "text"}`` lines); unknown kinds are an error."""
    examples = []
    with Path(path).open(encoding="utf-8") as handle:
        for number, line in enumerate(handle, 1):
            if not line.strip():
                continue
            item = json.loads(line)
            if item["kind"] not in TASK_KINDS:
                raise ValueError(f"{path}:{number}: unknown task kind {item['kind']!r}")
            examples.append(KindExample(item["kind"], str(item["text"])))
    return examples


def real_examples(
    sources: Sequence[str],
    categories: Sequence[str | None],
    requests: Sequence[dict[str, Any]],
    per_kind: int,
    seed: int,
) -> list[KindExample]:
    """Up to ``per_kind`` last user turns of each kind the traffic settles (pass training rows)."""
    by_kind: dict[str, list[str]] = {}
    for source, category, request in zip(sources, categories, requests, strict=True):
        kind = REAL_KINDS.get((source, category)) or REAL_KINDS.get((source, None))
        if kind is None:
            continue
        messages = parse_request(request).messages
        text = next((m.text for m in reversed(messages) if m.role == "user"), "")
        if text:
            by_kind.setdefault(kind, []).append(text)
    rng = np.random.default_rng(seed)
    examples = []
    for kind, texts in sorted(by_kind.items()):
        chosen = rng.choice(len(texts), min(per_kind, len(texts)), replace=False)
        examples += [KindExample(kind, texts[i]) for i in sorted(chosen)]
    return examples


def reader_token_ids(texts: Sequence[str]) -> list[list[int]]:
    """The ids the runtime's reader pools for each text (head, and tail of a long text)."""
    counter = TokenCounter()
    result = []
    for text in texts:
        head = counter.encode(text[:EMBED_CHAR_CAP])
        tail = counter.encode(text[-KIND_TAIL_CHARS:]) if len(text) > EMBED_CHAR_CAP else None
        result.append(kind_token_ids(head, tail))
    return result


def fit_kind_reader(
    examples: Sequence[KindExample],
    vocabulary: np.ndarray,
    vectors: np.ndarray,
    seed: int,
) -> KindReader:
    """Fit the reader on ``examples`` over the static ``vectors`` of ``vocabulary`` ids."""
    from sklearn.linear_model import LogisticRegression
    from sklearn.model_selection import StratifiedKFold, cross_val_predict

    row = {int(token): k for k, token in enumerate(vocabulary)}
    pooled = np.zeros((len(examples), vectors.shape[1]))
    for i, ids in enumerate(reader_token_ids([e.text for e in examples])):
        known = [row[t] for t in ids if t in row]
        if known:
            pooled[i] = vectors[known].mean(axis=0)
    y = np.array([TASK_KINDS.index(e.kind) for e in examples])
    missing = sorted(set(TASK_KINDS) - {e.kind for e in examples})
    if missing:
        raise ValueError(f"the task-kind examples have no {', '.join(missing)}")
    centre, scale = pooled.mean(axis=0), pooled.std(axis=0) + 1e-6
    z = (pooled - centre) / scale
    folds = StratifiedKFold(5, shuffle=True, random_state=seed)
    best: tuple[float, float, np.ndarray] | None = None
    for c in REGULARISATION:
        estimator = LogisticRegression(C=c, max_iter=2000, class_weight="balanced")
        predicted = cross_val_predict(estimator, z, y, cv=folds)
        accuracy = float(np.mean(predicted == y))
        if best is None or accuracy > best[0]:
            best = (accuracy, c, predicted)
    assert best is not None
    accuracy, c, predicted = best
    final = LogisticRegression(C=c, max_iter=2000, class_weight="balanced").fit(z, y)
    weights = final.coef_ / scale  # (kinds, dims) on raw vectors
    bias = final.intercept_ - weights @ centre
    kind_weights = vectors @ weights.T  # per token: its score for each kind
    report = {
        "examples": {k: int(np.sum(y == i)) for i, k in enumerate(TASK_KINDS)},
        "regularisation_c": c,
        "cv_accuracy": accuracy,
        "cv_recall": {
            k: float(np.mean(predicted[y == i] == i)) if np.any(y == i) else None
            for i, k in enumerate(TASK_KINDS)
        },
    }
    return KindReader(kind_weights, bias, report)
