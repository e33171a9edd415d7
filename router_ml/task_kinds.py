"""What kind of task a request asks for, and the product's task table that maps kinds to tiers.

The learned risk model is trained on benchmark outcomes: it has evidence on exam questions, math
word problems, short code tasks and tool calls, and none on summaries, drafts, stories or a
warfarin question. For those the product's task tables decide: value tasks (classification,
routine lookups, short transformations, summaries, context compression, drafts) suit the
economy tier, data extraction the middle tier, and code generation, creative writing, hard
reasoning and tasks where a wrong answer is costly the top tier.

The *task-kind reader* is a linear classifier over the static token embedding of the last user
turn's head and tail (``router_ml.text_embedding``), trained offline on a hand-written seed corpus
plus real benchmark prompts (``router_ml_lab.train.task_kinds``). Because the embedding of a text
is the mean of its tokens' vectors, a linear model over it is the mean of per-token scores: the
reader ships as one more table beside the embedding and costs one lookup. Its probabilities are
the ``kind_*`` features.

:class:`TaskTable` is the rule that applies the product's table, asymmetric on purpose (the
escalation bias): a kind mapped above economy *raises* the decision to its tier at a modest
confidence; a value kind *caps* the decision at economy only at a higher confidence, only for a
request in covered ground (not out of distribution, so never a request after a tool error or a
rejected answer) and never for a request with tools (agent traffic, where the model and the
policy's rules have the evidence). Kinds mapped to ``auto`` (exam questions, math word problems:
what the training traffic is made of) leave the decision to the model.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from functools import cached_property
from typing import Any

import numpy as np

from router_ml.calibration import non_increasing
from router_ml.tiers import TIERS, tier_rank

TASK_KINDS: tuple[str, ...] = (
    "classification",
    "lookup",
    "transformation",
    "summarization",
    "compression",
    "draft",
    "extraction",
    "code_generation",
    "creative_writing",
    "hard_reasoning",
    "costly_if_wrong",
    "exam_question",
    "math_word_problem",
)
"""The kinds the reader tells apart (part of the feature schema, as ``kind_<name>``)."""
AUTO = "auto"
DEFAULT_TIERS: Mapping[str, str] = {
    "classification": "economy",
    "lookup": "economy",
    "transformation": "economy",
    "summarization": "economy",
    "compression": "economy",
    "draft": "economy",
    "extraction": "standard",
    "code_generation": "premium",
    "creative_writing": "premium",
    "hard_reasoning": "premium",
    "costly_if_wrong": "premium",
    "exam_question": AUTO,
    "math_word_problem": AUTO,
}
"""The product's task tables, kind → tier (``auto``: the learned model decides)."""
SELF_CONTAINED_KINDS = frozenset({"transformation", "summarization", "compression", "draft"})
"""Kinds that work on the text they are given (rewrite it, sum it up, compress it, draft from it),
so a follow-up of such a kind is one whatever the conversation was about. A follow-up that reads
as a lookup or a classification ("and the area of its circumcircle?") asks about the thread's
material, and takes the thread's kind (``TaskTable.verdict``)."""


@dataclass(frozen=True)
class TaskVerdict:
    """What the task table does to one decision: raise to or cap at ``tier``."""

    kind: str
    probability: float
    """P(the request is of a kind the table sends to ``tier``, or above it when raising)."""
    tier: str
    action: str
    """``"raise"`` or ``"cap"``."""
    thread: bool = False
    """Whether the kind was read from the thread's user text (the last user turn with the ones
    before it), not from the last turn alone."""

    def describe(self) -> str:
        if self.action == "raise":
            where = " of the conversation" if self.thread else ""
            return (
                f"task kind {self.kind}{where} (P(a {self.tier}-or-above kind)="
                f"{self.probability:.2f}) → raised to {self.tier}"
            )
        return (
            f"task kind {self.kind} (P(an {self.tier} kind)={self.probability:.2f}) "
            f"→ capped at {self.tier}"
        )


@dataclass(frozen=True)
class TaskTable:
    """The product's task table as a routing rule (the policy's ``task_table`` section).

    Parameters
    ----------
    enabled : bool
        False: the ``kind_*`` features are still computed and logged, the decision is the model's.
    raise_at : float
        A kind mapped above economy raises the tier when its probability reaches this.
    cap_at : float
        A kind mapped to economy caps the tier there when its probability reaches this (and the
        request has no tools and is not out of distribution). Higher than ``raise_at``: lowering a
        decision needs more confidence than raising it.
    tiers : mapping
        Kind → tier or ``auto``; kinds left out are ``auto``.
    thread : bool
        Whether a follow-up takes the kind of the thread it continues when the table raises that
        kind higher (``verdict``). False: the last user turn alone decides.
    """

    enabled: bool = True
    raise_at: float = 0.3
    cap_at: float = 0.6
    tiers: Mapping[str, str] = field(default_factory=lambda: dict(DEFAULT_TIERS))
    thread: bool = True

    def __post_init__(self) -> None:
        for name in ("raise_at", "cap_at"):
            value = getattr(self, name)
            if not 0.0 < value <= 1.0:
                raise ValueError(f"task_table.{name} must be in (0, 1], got {value}")
        for kind, tier in self.tiers.items():
            if kind not in TASK_KINDS:
                known = ", ".join(TASK_KINDS)
                raise ValueError(f"task_table: unknown kind {kind!r}; known: {known}")
            if tier != AUTO and tier not in TIERS:
                raise ValueError(f"task_table: kind {kind} maps to {tier!r}, not a tier or auto")

    @classmethod
    def from_config(cls, spec: Mapping[str, Any] | TaskTable | None) -> TaskTable:
        """From a policy mapping ``{enabled, raise_at, cap_at, tiers, thread}`` (all optional)."""
        if spec is None:
            return cls()
        if isinstance(spec, TaskTable):
            return spec
        if not isinstance(spec, Mapping):
            raise ValueError(
                "task_table must be a mapping {enabled, raise_at, cap_at, tiers, thread}"
            )
        unknown = set(spec) - {"enabled", "raise_at", "cap_at", "tiers", "thread"}
        if unknown:
            raise ValueError(f"task_table: unknown keys {sorted(unknown)}")
        switches = {}
        for name in ("enabled", "thread"):
            switches[name] = spec.get(name, True)
            if not isinstance(switches[name], bool):
                raise ValueError(f"task_table.{name} must be true or false")
        numbers = {}
        for name, default in (("raise_at", cls.raise_at), ("cap_at", cls.cap_at)):
            value = spec.get(name, default)
            if isinstance(value, bool) or not isinstance(value, int | float):
                raise ValueError(f"task_table.{name} must be a number in (0, 1]")
            numbers[name] = float(value)
        tiers = spec.get("tiers", DEFAULT_TIERS)
        if not isinstance(tiers, Mapping) or not all(
            isinstance(k, str) and isinstance(v, str) for k, v in tiers.items()
        ):
            raise ValueError("task_table.tiers must map kind names to a tier or auto")
        return cls(
            switches["enabled"],
            numbers["raise_at"],
            numbers["cap_at"],
            dict(tiers),
            switches["thread"],
        )

    def verdict(
        self,
        kind_probabilities: Sequence[float] | np.ndarray,
        has_tools: bool,
        out_of_distribution: bool,
        thread_probabilities: Sequence[float] | np.ndarray | None = None,
    ) -> TaskVerdict | None:
        """What the table does with a request whose reader gave ``kind_probabilities``.

        Kinds count together by the tier the table gives them: the reader often splits a request
        between neighbouring kinds (a SQL task between extraction and code), and what matters is
        the tier. From the top tier down, the first tier whose kinds (with those of the tiers
        above) reach ``raise_at``, and outweigh the ``auto`` kinds, raises the decision to it:
        a request that reads mostly as an exam question is the model's to decide, it has the
        evidence there. Else the economy kinds cap it once they reach ``cap_at``. The kind named
        is the likeliest of the deciding group.

        ``thread_probabilities`` are the reader's on the thread's user text (the last user turn
        with the ones before it; all zero: no earlier user turn). A follow-up continues its
        thread's task, so a thread whose kind the table raises higher than the last turn's
        raises the decision. When the last turn reads as a value task of a
        ``SELF_CONTAINED_KINDS`` kind ("compress what we settled into a memo", but also "go on,
        write it up" after a proof), the two readings disagree and the table leaves the decision
        to the model's risk, which reads the thread too. The thread never caps a decision
        (escalation bias: a follow-up question in a math thread is a math task even when it reads
        as a lookup; a value-kind thread leaves the last turn to itself).
        """
        if not self.enabled or has_tools or len(kind_probabilities) == 0:
            return None
        own = self._read(np.asarray(kind_probabilities, dtype=np.float64), out_of_distribution)
        if thread_probabilities is None or not self.thread:
            return own
        thread = np.asarray(thread_probabilities, dtype=np.float64)
        if not thread.any():
            return own
        continued = self._read(thread, out_of_distribution)
        if continued is None or continued.action != "raise":
            return own
        if own is not None and own.action == "cap" and own.kind in SELF_CONTAINED_KINDS:
            return None  # the table's two readings disagree: the model's risk decides
        if (
            own is not None
            and own.action == "raise"
            and tier_rank(own.tier) >= tier_rank(continued.tier)
        ):
            return own
        return TaskVerdict(
            continued.kind, continued.probability, continued.tier, "raise", thread=True
        )

    def _read(self, probabilities: np.ndarray, out_of_distribution: bool) -> TaskVerdict | None:
        """The verdict of one reading (``verdict`` without the thread)."""
        grouped = self._groups @ probabilities
        model_decides = float(probabilities[self._auto_kinds].sum())
        for g, (tier, action, members) in enumerate(self._group_specs):
            if action == "raise":
                deciding = grouped[g] >= self.raise_at and grouped[g] >= model_decides
            else:
                deciding = grouped[g] >= self.cap_at and not out_of_distribution
            if deciding:
                kind = TASK_KINDS[members[int(probabilities[members].argmax())]]
                return TaskVerdict(kind, float(grouped[g]), tier, action)
        return None

    @cached_property
    def _group_specs(self) -> list[tuple[str, str, np.ndarray]]:
        """``(tier, action, kind indices)`` in the order tried: raising groups from the top
        tier down (each with the kinds of the tiers above), then the economy kinds (cap)."""
        ranks = [
            None if self.tiers.get(k, AUTO) == AUTO else tier_rank(self.tiers[k])
            for k in TASK_KINDS
        ]
        specs = []
        for rank in range(len(TIERS) - 1, 0, -1):
            members = [k for k, r in enumerate(ranks) if r is not None and r >= rank]
            if members:
                specs.append((TIERS[rank], "raise", np.array(members)))
        value = [k for k, r in enumerate(ranks) if r == 0]
        if value:
            specs.append((TIERS[0], "cap", np.array(value)))
        return specs

    @cached_property
    def _auto_kinds(self) -> np.ndarray:
        """Kinds the table leaves to the model (what the training traffic is made of)."""
        return np.array(
            [k for k, kind in enumerate(TASK_KINDS) if self.tiers.get(kind, AUTO) == AUTO],
            dtype=np.int64,
        )

    @cached_property
    def _groups(self) -> np.ndarray:
        """One row per group of ``_group_specs``: 1 on its kinds (a matmul sums them all)."""
        groups = np.zeros((max(len(self._group_specs), 1), len(TASK_KINDS)))
        for g, (_, _, members) in enumerate(self._group_specs):
            groups[g, members] = 1.0
        return groups

    @staticmethod
    def apply(
        verdict: TaskVerdict, risks: Sequence[float], thresholds: Sequence[float]
    ) -> list[float]:
        """Risks moved so that the tier choice lands where ``verdict`` says.

        The table sets the band, the model's risk keeps the order inside it: below the kind's
        tier a raised risk becomes ``t + (1 - t) * r`` (above its threshold ``t``), a capped
        risk at and above the cap becomes ``t * r`` (below it). So a ranking by risk puts raised
        requests above every request the model sends up by itself, capped ones below every
        request it keeps, and orders each band as the model does. Risks stay non-increasing
        across tiers.
        """
        rank = tier_rank(verdict.tier)
        moved = list(risks)
        if verdict.action == "raise":
            for k in range(rank):
                moved[k] = thresholds[k] + (1.0 - thresholds[k]) * moved[k]
            return non_increasing(moved, raise_earlier=True)
        for k in range(rank, len(moved)):
            moved[k] = thresholds[k] * moved[k]
        return non_increasing(moved, raise_earlier=False)
