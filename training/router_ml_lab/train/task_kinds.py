"""Train the task-kind reader (``router_ml.task_kinds``) that ships inside the text embedding.

Examples come from two places:

- a hand-written seed corpus (``task_kinds.jsonl`` beside this module: realistic requests of each
  product kind, written from the kind definitions, never from the sense suites that evaluate the
  reader), for the kinds the labeled traffic does not contain: summaries, drafts, stories, ...;
  lines 561-716 are 12 per kind in twelve languages other than English (French to Korean),
  because the benchmark traffic and the rest of the corpus are English and a German lookup
  otherwise reads as anything; lines 717 on (560) were written by four more authors from the kind
  definitions alone, without seeing the lines above or the suites, each on kinds whose surfaces
  resemble one another (terse code asks and lookups, summaries, compression and extraction over
  pasted material, rewrites, drafts and stories, high-stakes questions and their low-stakes
  look-alikes), about a sixth of them in fourteen languages. Held out five-fold, the first 716
  read better with them beside the training folds than without (``benchmarks/
  reader_transfer.py``: kind accuracy 0.680 -> 0.770, tier group 0.800 -> 0.877, a kind above
  economy read as an economy kind 7.1% -> 5.6%);
- the labeled traffic's *training split* for the kinds it is made of: exam questions (MMLU,
  MMLU-Pro, ARC, Winogrande), math word problems (GSM8K) and short code tasks (MBPP). The
  validation and test splits are never read, so the reader learns nothing about the records the
  router is evaluated on.

The classifier is a multinomial logistic regression on two views of the ids the runtime pools
(``text_embedding.kind_token_ids``), both position-weighted means
(``text_embedding.kind_position_weights``: the instruction at either end outweighs a pasted
document between):

- the mean static (384-dim, model2vec) vector, standardised: what the words mean, so a request
  phrased unlike any example still reads;
- the mean one-hot of the ids (a bag of words over tokens in at least ``MIN_EXAMPLES`` examples),
  scaled by ``gamma``: the words that name a task ("implement", "extract", "redlines") weigh more
  than their MiniLM neighbourhood alone gives them. Without it the static view reads "Implement a
  rate limiter ... Explain the Lua script" as a summary.

Both are linear in a weighted mean of per-token quantities, so the fitted model folds into one
score per token and kind (``kind_weights``) and a bias: the runtime computes exactly these logits
with one table lookup. ``gamma`` and the regularisation are chosen by five-fold cross-validated
accuracy on the hand-written examples (the real prompts are easy and would drown the choice);
accuracy per kind and per tier group is reported in the model card.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from router_ml.request import parse_request
from router_ml.task_kinds import DEFAULT_TIERS, TASK_KINDS
from router_ml.text_embedding import (
    EMBED_CHAR_CAP,
    KIND_TAIL_CHARS,
    kind_position_weights,
    kind_token_ids,
)
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
REGULARISATION = (0.3, 1.0)
"""Inverse regularisation strengths tried by cross-validation."""
LEXICAL_SCALES = (0.0, 100.0, 300.0)
"""Scales ``gamma`` of the bag-of-tokens view tried by cross-validation (0: static view only). A
token's share of a 50-token text is 0.02, so ~100 puts it beside the standardised static view."""
MIN_EXAMPLES = 2
"""Examples a token must occur in to get a bag-of-tokens weight of its own."""


@dataclass(frozen=True)
class KindExample:
    kind: str
    text: str
    hand_written: bool = True
    """From the seed corpus (True) or a real training-split prompt (False)."""


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
        examples += [KindExample(kind, texts[i], hand_written=False) for i in sorted(chosen)]
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
    lexical_scales: Sequence[float] = LEXICAL_SCALES,
    regularisation: Sequence[float] = REGULARISATION,
) -> KindReader:
    """Fit the reader on ``examples`` over the static ``vectors`` of ``vocabulary`` ids, choosing
    the bag-of-tokens scale and the regularisation among ``lexical_scales`` x ``regularisation``."""
    from scipy import sparse
    from sklearn.linear_model import LogisticRegression
    from sklearn.model_selection import StratifiedKFold, cross_val_predict

    y = np.array([TASK_KINDS.index(e.kind) for e in examples])
    missing = sorted(set(TASK_KINDS) - {e.kind for e in examples})
    if missing:
        raise ValueError(f"the task-kind examples have no {', '.join(missing)}")
    pooling = _pooling_matrix([e.text for e in examples], vocabulary)  # (examples, vocabulary)
    static = pooling @ vectors
    centre, scale = static.mean(axis=0), static.std(axis=0) + 1e-6
    z = (static - centre) / scale
    used = np.asarray((pooling > 0).sum(axis=0)).ravel()
    lexical_rows = np.flatnonzero(used >= MIN_EXAMPLES)
    lexical = pooling[:, lexical_rows]
    hand_written = np.array([e.hand_written for e in examples])
    group = np.array([DEFAULT_TIERS[k] for k in TASK_KINDS])
    folds = StratifiedKFold(5, shuffle=True, random_state=seed)

    def design(gamma: float) -> Any:
        return sparse.hstack([sparse.csr_matrix(z), gamma * lexical]).tocsr() if gamma else z

    best: tuple[float, float, float, np.ndarray] | None = None
    for gamma in lexical_scales:
        x = design(gamma)
        for c in regularisation:
            estimator = LogisticRegression(C=c, max_iter=3000, class_weight="balanced")
            predicted = cross_val_predict(estimator, x, y, cv=folds)
            score = float(np.mean(predicted[hand_written] == y[hand_written]))
            if best is None or score > best[0]:
                best = (score, gamma, c, predicted)
    assert best is not None
    _, gamma, c, predicted = best
    x = design(gamma)
    final = LogisticRegression(C=c, max_iter=3000, class_weight="balanced").fit(x, y)
    static_weights = final.coef_[:, : z.shape[1]] / scale  # (kinds, dims) on raw vectors
    bias = final.intercept_ - static_weights @ centre
    kind_weights = vectors @ static_weights.T  # per token: its score for each kind
    if gamma:
        kind_weights[lexical_rows] += gamma * final.coef_[:, z.shape[1] :].T
    folded = pooling @ kind_weights + bias
    fold_error = float(np.max(np.abs(folded - final.decision_function(x))))
    if fold_error > 1e-6 * max(1.0, float(np.max(np.abs(folded)))):
        raise AssertionError(f"the folded reader disagrees with its classifier by {fold_error}")
    report = {
        "examples": {k: int(np.sum(y == i)) for i, k in enumerate(TASK_KINDS)},
        "hand_written": int(hand_written.sum()),
        "regularisation_c": c,
        "lexical_scale": gamma,
        "lexical_tokens": int(lexical_rows.size) if gamma else 0,
        "cv_accuracy": float(np.mean(predicted == y)),
        "cv_accuracy_hand_written": float(np.mean(predicted[hand_written] == y[hand_written])),
        "cv_tier_accuracy_hand_written": float(
            np.mean(group[predicted[hand_written]] == group[y[hand_written]])
        ),
        "cv_recall": {
            k: float(np.mean(predicted[y == i] == i)) if np.any(y == i) else None
            for i, k in enumerate(TASK_KINDS)
        },
    }
    return KindReader(kind_weights, bias, report)


def _pooling_matrix(texts: Sequence[str], vocabulary: np.ndarray) -> Any:
    """Sparse (texts, vocabulary) matrix whose rows are the runtime reader's position weights over
    each text's known ids, normalised to sum 1: row @ per-token values = the runtime's mean."""
    from scipy import sparse

    row_of = {int(token): k for k, token in enumerate(vocabulary)}
    rows, columns, values = [], [], []
    for i, ids in enumerate(reader_token_ids(texts)):
        weights = kind_position_weights(len(ids))
        known = [(row_of[t], float(w)) for t, w in zip(ids, weights, strict=True) if t in row_of]
        total = sum(w for _, w in known)
        for column, weight in known:
            rows.append(i)
            columns.append(column)
            values.append(weight / total)
    return sparse.csr_matrix((values, (rows, columns)), shape=(len(texts), len(vocabulary)))


def transfer_accuracy(
    held_out: Sequence[KindExample],
    added: Sequence[KindExample],
    real: Sequence[KindExample],
    vocabulary: np.ndarray,
    vectors: np.ndarray,
    seed: int,
    lexical_scale: float,
    regularisation: float,
) -> dict[str, dict[str, float]]:
    """How well readers fitted without and with ``added`` read ``held_out`` examples they never saw.

    Five folds over ``held_out``: each fold is read by a reader fitted on the other folds plus
    ``real`` (``"without"``), and by one fitted on those plus ``added`` (``"with"``), both at the
    one ``lexical_scale`` and ``regularisation`` given (a shipped reader's) so that only the
    examples differ. Why: a corpus grown by new
    authors should be judged on examples its additions were not written from, not on its own
    cross-validation, where near-duplicates inflate accuracy. Per reader: kind accuracy,
    tier-group accuracy, and the share of held-out examples whose kind is above economy read as
    an economy kind (the reader's under-routing).
    """
    from sklearn.model_selection import StratifiedKFold

    y = np.array([TASK_KINDS.index(e.kind) for e in held_out])
    tier_of = np.array([DEFAULT_TIERS[k] for k in TASK_KINDS])
    pooling = _pooling_matrix([e.text for e in held_out], vocabulary)
    folds = StratifiedKFold(5, shuffle=True, random_state=seed)
    result = {}
    for name, extra in (("without", ()), ("with", tuple(added))):
        predicted = np.empty(len(held_out), dtype=np.int64)
        for train_rows, test_rows in folds.split(np.zeros(len(y)), y):
            examples = [held_out[i] for i in train_rows] + list(extra) + list(real)
            reader = fit_kind_reader(
                examples, vocabulary, vectors, seed, (lexical_scale,), (regularisation,)
            )
            logits = pooling[test_rows] @ reader.kind_weights + reader.kind_bias
            predicted[test_rows] = logits.argmax(axis=1)
        above = tier_of[y] != "economy"
        result[name] = {
            "kind_accuracy": float(np.mean(predicted == y)),
            "tier_accuracy": float(np.mean(tier_of[predicted] == tier_of[y])),
            "above_economy_read_as_economy": float(
                np.mean(above & (tier_of[predicted] == "economy"))
            ),
        }
    return result
