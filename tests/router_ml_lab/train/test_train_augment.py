"""Envelope augmentation keeps the question and changes only what a gateway would add."""

from __future__ import annotations

from router_ml.request import parse_request
from router_ml_lab.train.augment import augment_requests

_ALWAYS = {"system_prompt": 1, "max_tokens": 1, "json_mode": 1, "stream": 1, "earlier_turns": 1}


def test_envelope_keeps_the_last_turn_and_stays_a_valid_request() -> None:
    requests = [
        {"messages": [{"role": "user", "content": f"Question {i}: what is {i} + {i}?"}]}
        for i in range(20)
    ]
    enveloped = augment_requests(requests, _ALWAYS, seed=1)
    for original, new in zip(requests, enveloped, strict=True):
        parsed = parse_request(new)
        assert new["messages"][-1] == original["messages"][-1]
        assert new["messages"][0]["role"] == "system" and len(new["messages"]) >= 4
        assert parsed.stream and parsed.response_format == "json_object" and parsed.max_tokens
        assert len(original["messages"]) == 1  # the input is not modified
    assert augment_requests(requests, _ALWAYS, seed=1) == enveloped


def test_zero_rates_change_nothing() -> None:
    requests = [{"messages": [{"role": "user", "content": "hi"}], "tools": []}]
    assert augment_requests(requests, dict.fromkeys(_ALWAYS, 0), seed=0) == requests
