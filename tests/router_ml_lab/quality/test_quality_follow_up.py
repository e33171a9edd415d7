"""Delivering a labeled request as a conversation: material first, the ask as a follow-up."""

from __future__ import annotations

import numpy as np

from router_ml_lab.quality.evidence import Evidence
from router_ml_lab.quality.follow_up import (
    ACKNOWLEDGEMENTS,
    as_follow_up,
    follow_up_set,
    split_turn,
)


def test_the_ask_is_the_last_paragraph_else_line_else_sentence() -> None:
    assert split_turn("Passage one.\n\nPassage two.\n\nWhich is older?") == (
        "Passage one.\n\nPassage two.",
        "Which is older?",
    )
    assert split_turn("def f(x):\n    return x\nWhat does f return?") == (
        "def f(x):\n    return x",
        "What does f return?",
    )
    assert split_turn("Tom has 3 apples. He eats one. How many are left?") == (
        "Tom has 3 apples. He eats one.",
        "How many are left?",
    )
    assert split_turn("What is the capital of France?") is None
    assert split_turn("   \n\n  ") is None


def test_the_conversation_keeps_everything_else_of_the_request() -> None:
    request = {
        "messages": [
            {"role": "system", "content": "Be brief."},
            {"role": "user", "content": "A list: 1, 2, 3.\nSum it."},
        ],
        "max_tokens": 64,
    }
    delivered = as_follow_up(request, "OK.")
    assert delivered is not None and delivered["max_tokens"] == 64
    assert delivered["messages"] == [
        {"role": "system", "content": "Be brief."},
        {"role": "user", "content": "A list: 1, 2, 3."},
        {"role": "assistant", "content": "OK."},
        {"role": "user", "content": "Sum it."},
    ]
    assert request["messages"][1]["content"] == "A list: 1, 2, 3.\nSum it."  # not mutated
    parts = {"messages": [{"role": "user", "content": [{"type": "text", "text": "a. b."}]}]}
    assert as_follow_up(parts, "OK.") is None  # content parts are left as they are


def test_a_set_counts_what_it_converted_and_keeps_labels() -> None:
    requests = (
        {"messages": [{"role": "user", "content": "One. Two?"}]},
        {"messages": [{"role": "user", "content": "Single question?"}]},
    )
    evidence = Evidence(
        ids=("a", "b"),
        requests=requests,
        sources=np.array(["s", "s"]),
        categories=np.array(["", ""]),
        labels=np.array([0, 2]),
        scores=np.ones((2, 3)),
        realised=np.ones((2, 3), dtype=bool),
        input_tokens=np.ones(2),
        output_tokens=np.ones(2),
        costs=np.ones((2, 3)),
        outcomes=({}, {}),
    )
    delivered, converted = follow_up_set(evidence)
    assert converted == 1 and delivered.labels.tolist() == [0, 2]
    assert delivered.requests[0]["messages"][1] == {
        "role": "assistant",
        "content": ACKNOWLEDGEMENTS[0],
    }
    assert delivered.requests[1] == requests[1]
