"""A static text embedding over o200k token ids: what the last user turn is about, in a few dims.

The hand-made features measure a request's shape; they carry little of what the text asks for.
This table gives each o200k token id a short vector (distilled offline from the
all-MiniLM-L6-v2 sentence encoder and reduced by PCA, ``router_ml_lab.train.text_embedding``);
a text's embedding is the mean of its tokens' vectors. It reuses the token ids the feature
extractor computes anyway, so it costs one table lookup and a mean, no model call. Token ids the
table does not hold (never seen in the corpus it was built from) are skipped.

The table ships in the model directory as ``text_embedding.npz`` (``ids``: sorted int32 token
ids; ``vectors``: float16 ``(n_ids, N_DIMS)``); the model's metadata names the file and its hash.
"""

from __future__ import annotations

import hashlib
import os
from pathlib import Path

import numpy as np

N_DIMS = 24
"""Embedding dimensions fed to the model (part of the feature schema)."""
EMBED_CHAR_CAP = 2000
"""Characters at the head of the last user turn whose tokens are embedded."""
FILE_NAME = "text_embedding.npz"
O200K_VOCABULARY = 200_019
"""Token ids of the o200k encoding (ids at or above are clipped to the last, never in a table)."""


class TextEmbedding:
    """Token id → vector table; ``pool`` embeds a sequence of token ids."""

    def __init__(self, ids: np.ndarray, vectors: np.ndarray) -> None:
        ids = np.asarray(ids, dtype=np.int64)
        vectors = np.asarray(vectors)
        if ids.ndim != 1 or vectors.shape != (ids.size, N_DIMS):
            raise ValueError(f"text embedding needs ids (n,) and vectors (n, {N_DIMS})")
        if ids.size and (ids.min() < 0 or np.any(np.diff(ids) <= 0)):
            raise ValueError("text embedding ids must be non-negative and strictly increasing")
        self.ids = ids
        self.vectors = vectors.astype(np.float16)
        # Dense id → table row over the whole o200k range; ids not in the table map to a zero row
        # at the end, so a lookup is one ``take`` and the mean divides by the known ids only.
        size = max(O200K_VOCABULARY, int(ids.max()) + 1 if ids.size else 0)
        self._zero = ids.size
        self._row = np.full(size, self._zero, dtype=np.int32)
        self._row[ids] = np.arange(ids.size, dtype=np.int32)
        self._table = np.vstack([vectors.astype(np.float32), np.zeros((1, N_DIMS), np.float32)])

    def pool(self, token_ids: list[int]) -> list[float]:
        """Mean vector of the known token ids (zeros when none is known)."""
        if not token_ids:
            return [0.0] * N_DIMS
        rows = self._row.take(token_ids, mode="clip")
        known = len(token_ids) - int(np.count_nonzero(rows == self._zero))
        if not known:
            return [0.0] * N_DIMS
        return (self._table.take(rows, axis=0).sum(axis=0) / known).tolist()

    def save(self, directory: str | os.PathLike[str]) -> str:
        """Write ``text_embedding.npz`` into ``directory``; returns its sha256."""
        path = Path(directory) / FILE_NAME
        with path.open("wb") as handle:
            np.savez_compressed(handle, ids=self.ids.astype(np.int32), vectors=self.vectors)
        return file_sha256(path)

    @classmethod
    def load(cls, path: str | os.PathLike[str]) -> TextEmbedding:
        with np.load(Path(path), allow_pickle=False) as data:
            return cls(data["ids"], data["vectors"])


def file_sha256(path: str | os.PathLike[str]) -> str:
    return hashlib.sha256(Path(path).read_bytes()).hexdigest()
