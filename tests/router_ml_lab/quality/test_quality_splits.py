"""Grouped, deterministic splits: one normalised question never sits on two sides."""

from __future__ import annotations

from collections import defaultdict

import numpy as np
import pytest

from router_ml_lab.quality.splits import assign_splits, question_stem


def req(text: str) -> dict:
    return {"messages": [{"role": "user", "content": text}]}


def test_same_question_in_two_formats_has_one_stem() -> None:
    mmlu = req("Find the index of <p> in S_5.\nA. 8\nB. 2\nC. 24\nD. 120\nAnswer:")
    mmlu_pro = req(
        "Find the index of <p> in S_5.\nA. 8\nB. 2\nC. 24\nD. 120\nE. 6\n"
        "Answer with the letter of the correct option."
    )
    assert question_stem(mmlu) == question_stem(mmlu_pro) == "find the index of p in s 5"
    assert question_stem(req("Q: How many eggs?")) == question_stem(req("how many eggs"))
    assert question_stem(req("A. yes\nB. no")) != ""  # all options: keeps the whole text


def test_splits_are_grouped_deterministic_and_roughly_proportional() -> None:
    rng = np.random.default_rng(0)
    questions = [f"question number {i}" for i in range(400)]
    requests = [
        req(questions[i] + ("\nA. x\nB. y\nAnswer:" if rng.random() < 0.5 else ""))
        for i in rng.integers(0, 400, size=2000)
    ]
    splits = assign_splits(requests, (0.6, 0.2, 0.2), seed=3)
    sides = defaultdict(set)
    for request, split in zip(requests, splits, strict=True):
        sides[question_stem(request)].add(int(split))
    assert all(len(s) == 1 for s in sides.values())
    assert np.array_equal(splits, assign_splits(requests, (0.6, 0.2, 0.2), seed=3))
    assert not np.array_equal(splits, assign_splits(requests, (0.6, 0.2, 0.2), seed=4))
    shares = np.bincount(splits, minlength=3) / len(splits)
    assert np.allclose(shares, (0.6, 0.2, 0.2), atol=0.08)


def test_fractions_must_be_shares() -> None:
    with pytest.raises(ValueError, match="fractions"):
        assign_splits([req("x")], (0.5, 0.5, 0.5), seed=0)
