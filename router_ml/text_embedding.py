"""A static text embedding over o200k token ids: what the last user turn is about, in a few dims.

The hand-made features measure a request's shape; they carry little of what the text asks for.
This table gives each o200k token id a short vector (distilled offline from the
all-MiniLM-L6-v2 sentence encoder and reduced by PCA, ``router_ml_lab.train.text_embedding``);
a text's embedding is the mean of its tokens' vectors. It reuses the token ids the feature
extractor computes anyway, so it costs one table lookup and a mean, no model call. Token ids the
table does not hold (never seen in the corpus it was built from) are skipped.

The same table carries the task-kind reader (``router_ml.task_kinds``): a linear classifier over
the mean static vector is the mean of per-token scores, so ``kind_weights`` holds each token's
score per kind and ``read`` returns the kind probabilities from the same lookup. The reader sees
the head and the tail of the turn (``KIND_HEAD_TOKENS``, ``KIND_TAIL_TOKENS``): instructions sit
there, while a pasted article in the middle says what the text is about, not what to do with it.
For the same reason the mean is weighted (``kind_position_weights``): the first and last
``KIND_EDGE_TOKENS`` of what it sees count fully, the tokens between them a quarter, so a
one-line instruction above or below 150 tokens of contract still decides what the turn asks for.

The table ships in the model directory as ``text_embedding.npz`` (``ids``: sorted int32 token
ids; ``vectors``: float16 ``(n_ids, N_DIMS)``; ``kind_weights``: float16 ``(n_ids, n_kinds)`` and
``kind_bias``, absent in a model without a reader); the model's metadata names the file and its
hash.
"""

from __future__ import annotations

import hashlib
import os
from functools import lru_cache
from pathlib import Path

import numpy as np

from router_ml.task_kinds import TASK_KINDS

N_DIMS = 24
"""Embedding dimensions fed to the model (part of the feature schema)."""
EMBED_CHAR_CAP = 2000
"""Characters at the head of the last user turn whose tokens are embedded."""
FILE_NAME = "text_embedding.npz"
O200K_VOCABULARY = 200_019
"""Token ids of the o200k encoding (ids at or above are clipped to the last, never in a table)."""
KIND_HEAD_TOKENS = 128
"""Tokens at the head of the last user turn that the task-kind reader sees."""
KIND_TAIL_TOKENS = 64
"""Tokens at the tail of the last user turn that the task-kind reader sees."""
KIND_TAIL_CHARS = 512
"""Characters at the end of a turn longer than ``EMBED_CHAR_CAP`` encoded for the tail."""
KIND_EDGE_TOKENS = 32
"""Tokens at each end of the reader's ids that weigh fully in its mean."""
KIND_MIDDLE_WEIGHT = 0.25
"""Weight of a reader id between the two edges (chosen by the reader's cross-validation and the
two sense suites, ``router_ml_lab.train.task_kinds``)."""


def kind_token_ids(head_ids: list[int], tail_ids: list[int] | None) -> list[int]:
    """The ids the task-kind reader pools: the head, and the tail when it is not the head.

    ``head_ids`` are the ids of the turn's first ``EMBED_CHAR_CAP`` characters; ``tail_ids`` those
    of its last ``KIND_TAIL_CHARS`` characters when the turn is longer (None otherwise).
    """
    if tail_ids is None:
        if len(head_ids) <= KIND_HEAD_TOKENS + KIND_TAIL_TOKENS:
            return head_ids
        return head_ids[:KIND_HEAD_TOKENS] + head_ids[-KIND_TAIL_TOKENS:]
    return head_ids[:KIND_HEAD_TOKENS] + tail_ids[-KIND_TAIL_TOKENS:]


VALUE_GRID = 2.0**16
"""Embedding values and kind probabilities are multiples of ``1 / VALUE_GRID``. LightGBM splits
between two feature values at their midpoint, a double; the ONNX graph stores thresholds as
float32, and a midpoint between two arbitrarily close values can round onto one of them (seen:
two kind probabilities near 1.0), so the graph would decide that row unlike LightGBM. On this
grid every midpoint is itself a float32, and the export matches exactly."""


def _on_grid(values: np.ndarray) -> list[float]:
    return (np.rint(values * VALUE_GRID) / VALUE_GRID).tolist()


@lru_cache(maxsize=512)
def kind_position_weights(n_ids: int) -> np.ndarray:
    """Weights of the reader's ``n_ids`` pooled ids by position: 1 within ``KIND_EDGE_TOKENS`` of
    either end, ``KIND_MIDDLE_WEIGHT`` between (read-only; cached, the reader sees <= 192 ids)."""
    weights = np.ones(n_ids, dtype=np.float32)
    if n_ids > 2 * KIND_EDGE_TOKENS:
        weights[KIND_EDGE_TOKENS:-KIND_EDGE_TOKENS] = KIND_MIDDLE_WEIGHT
    weights.setflags(write=False)
    return weights


class TextEmbedding:
    """Token id → vector table; ``pool`` embeds a sequence of token ids, ``read`` also the kinds."""

    def __init__(
        self,
        ids: np.ndarray,
        vectors: np.ndarray,
        kind_weights: np.ndarray | None = None,
        kind_bias: np.ndarray | None = None,
    ) -> None:
        ids = np.asarray(ids, dtype=np.int64)
        vectors = np.asarray(vectors)
        if ids.ndim != 1 or vectors.shape != (ids.size, N_DIMS):
            raise ValueError(f"text embedding needs ids (n,) and vectors (n, {N_DIMS})")
        n_kinds = len(TASK_KINDS)
        if (kind_weights is None) != (kind_bias is None):
            raise ValueError("text embedding needs both kind_weights and kind_bias, or neither")
        if kind_weights is not None and kind_bias is not None:
            kind_weights, kind_bias = np.asarray(kind_weights), np.asarray(kind_bias)
            if kind_weights.shape != (ids.size, n_kinds) or kind_bias.shape != (n_kinds,):
                raise ValueError(f"kind_weights must be (n, {n_kinds}) and kind_bias ({n_kinds},)")
            if not (np.all(np.isfinite(kind_weights)) and np.all(np.isfinite(kind_bias))):
                raise ValueError("kind_weights and kind_bias must be finite")
        if ids.size and (ids.min() < 0 or np.any(np.diff(ids) <= 0)):
            raise ValueError("text embedding ids must be non-negative and strictly increasing")
        self.ids = ids.astype(np.int32)
        # Dense id → table row over the whole o200k range; ids not in the table map to a zero row
        # at the end, so a lookup is one ``take`` and the mean divides by the known ids only.
        size = max(O200K_VOCABULARY, int(ids.max()) + 1 if ids.size else 0)
        self._zero = ids.size
        self._row = np.full(size, self._zero, dtype=np.int32)
        self._row[ids] = np.arange(ids.size, dtype=np.int32)
        self.kind_bias = None if kind_bias is None else kind_bias.astype(np.float64)
        # Embedding and kind scores side by side in one float16 table (plus a zero row for
        # unknown ids), held once: the values the file stores, so a table fresh from training
        # reads exactly as the one loaded from disk (the training features are the runtime's),
        # and the process pays 2 bytes a value (the table is the largest thing the router loads
        # after the tokenizer). ``read`` gathers both parts with one ``take`` and widens only the
        # gathered rows to float32 before summing.
        n_kinds_held = 0 if kind_weights is None else n_kinds
        self._joint = np.zeros((ids.size + 1, N_DIMS + n_kinds_held), dtype=np.float16)
        self._joint[:-1, :N_DIMS] = vectors
        if kind_weights is not None:
            self._joint[:-1, N_DIMS:] = kind_weights
        self._joint.setflags(write=False)
        self.vectors = self._joint[:-1, :N_DIMS]
        self.kind_weights = None if kind_weights is None else self._joint[:-1, N_DIMS:]

    @property
    def reads_kinds(self) -> bool:
        """Whether the table carries a task-kind reader."""
        return self.kind_weights is not None

    def _gather(self, token_ids: list[int]) -> tuple[np.ndarray, np.ndarray]:
        """The table rows of ``token_ids`` widened to float32 (zeros for ids the table does not
        hold: the file's float16 values, summed in float32) and which of the ids it holds."""
        rows = self._row.take(token_ids, mode="clip")
        return self._joint.take(rows, axis=0).astype(np.float32), rows != self._zero

    @staticmethod
    def _mean_vector(gathered: np.ndarray, known: np.ndarray) -> list[float]:
        """Mean embedding of the known rows of ``gathered`` (zeros when none is known)."""
        n_known = int(np.count_nonzero(known))
        if not n_known:
            return [0.0] * N_DIMS
        return _on_grid(gathered[:, :N_DIMS].sum(axis=0) / n_known)

    def pool(self, token_ids: list[int]) -> list[float]:
        """Mean vector of the known token ids (zeros when none is known)."""
        if not token_ids:
            return [0.0] * N_DIMS
        return self._mean_vector(*self._gather(token_ids))

    def read(
        self, head_ids: list[int], tail_ids: list[int] | None
    ) -> tuple[list[float], list[float] | None]:
        """The embedding of ``head_ids`` and the kind probabilities of ``kind_token_ids(head_ids,
        tail_ids)`` (None without a reader): ``pool`` and ``kind_probabilities`` in one gather."""
        if self.kind_weights is None:
            return self.pool(head_ids), None
        if not head_ids:
            return [0.0] * N_DIMS, self.kind_probabilities(kind_token_ids(head_ids, tail_ids))
        gathered, known = self._gather(head_ids)
        embedding = self._mean_vector(gathered, known)
        if tail_ids is None and len(head_ids) <= KIND_HEAD_TOKENS + KIND_TAIL_TOKENS:
            return embedding, self._weighted_softmax(gathered[:, N_DIMS:], known)
        if tail_ids is None:
            tail, tail_known = gathered[-KIND_TAIL_TOKENS:], known[-KIND_TAIL_TOKENS:]
        else:
            tail, tail_known = self._gather(tail_ids[-KIND_TAIL_TOKENS:])
        return embedding, self._weighted_softmax(
            np.vstack([gathered[:KIND_HEAD_TOKENS, N_DIMS:], tail[:, N_DIMS:]]),
            np.concatenate([known[:KIND_HEAD_TOKENS], tail_known]),
        )

    def _weighted_softmax(self, scores: np.ndarray, known: np.ndarray) -> list[float]:
        """Softmax of the position-weighted mean of the known ids' kind ``scores`` plus the bias."""
        weights = kind_position_weights(len(known)) * known
        total = float(weights.sum())
        if not total or self.kind_bias is None:
            return [0.0] * len(TASK_KINDS)
        logits = (weights @ scores) / total + self.kind_bias
        exp = np.exp(logits - logits.max())
        return _on_grid(exp / exp.sum())

    def kind_probabilities(self, token_ids: list[int]) -> list[float]:
        """Task-kind probabilities (``TASK_KINDS`` order) of the pooled ids, position-weighted
        (``kind_position_weights``); zeros without a reader or a known id."""
        if self.kind_weights is None or not token_ids:
            return [0.0] * len(TASK_KINDS)
        gathered, known = self._gather(token_ids)
        return self._weighted_softmax(gathered[:, N_DIMS:], known)

    def save(self, directory: str | os.PathLike[str]) -> str:
        """Write ``text_embedding.npz`` into ``directory``; returns its sha256."""
        path = Path(directory) / FILE_NAME
        ids = self.ids
        with path.open("wb") as handle:
            if self.kind_weights is not None and self.kind_bias is not None:
                np.savez_compressed(
                    handle,
                    ids=ids,
                    vectors=self.vectors,
                    kind_weights=self.kind_weights,
                    kind_bias=self.kind_bias,
                )
            else:
                np.savez_compressed(handle, ids=ids, vectors=self.vectors)
        return file_sha256(path)

    @classmethod
    def load(cls, path: str | os.PathLike[str]) -> TextEmbedding:
        with np.load(Path(path), allow_pickle=False) as data:
            if "kind_weights" in data.files:
                return cls(data["ids"], data["vectors"], data["kind_weights"], data["kind_bias"])
            return cls(data["ids"], data["vectors"])


def file_sha256(path: str | os.PathLike[str]) -> str:
    return hashlib.sha256(Path(path).read_bytes()).hexdigest()
