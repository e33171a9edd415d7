"""Recovery signals: a failed tool call or a rejected answer, and their near misses."""

from __future__ import annotations

import pytest

from router_ml.recovery import recovery_signals, tool_result_is_error, user_rejects
from router_ml.request import parse_request


def _chat(*turns: tuple[str, str]) -> dict:
    return {"messages": [{"role": role, "content": text} for role, text in turns]}


@pytest.mark.parametrize(
    "text",
    [
        "That's wrong, the answer is 42.",
        "this is still not working",
        "It failed again with the same traceback",
        "Your code doesn't compile.",
        "no, that is not what I asked for",
        "Please redo it with dates in ISO format",
        "I'm still getting an error when I run it",
    ],
)
def test_rejections_are_recognised(text: str) -> None:
    assert user_rejects(text)


@pytest.mark.parametrize(
    "text",
    [
        "What went wrong at the Battle of Hastings?",
        "Explain why an incorrect proof can look convincing.",
        "Summarize this error-handling guide in three bullets.",
    ],
)
def test_questions_about_failure_are_not_rejections(text: str) -> None:
    assert not user_rejects(text)


def test_rejection_needs_a_previous_answer() -> None:
    first = parse_request(_chat(("user", "That's wrong: fix this sentence.")))
    assert not recovery_signals(first).user_rejects_answer
    retry = parse_request(
        _chat(("user", "2+2*3?"), ("assistant", "12"), ("user", "That's wrong, redo it"))
    )
    signals = recovery_signals(retry)
    assert signals.user_rejects_answer and signals.recovering and not signals.after_error


def test_only_the_newest_tool_result_counts() -> None:
    base = [
        {"role": "user", "content": "Book the flight"},
        {"role": "assistant", "content": None, "tool_calls": [_call("1")]},
        {"role": "tool", "tool_call_id": "1", "content": "Error: seat not found"},
        {"role": "assistant", "content": None, "tool_calls": [_call("2")]},
    ]
    failed = parse_request({"messages": [*base, _result("2", "ERROR 500: timeout")]})
    assert recovery_signals(failed).after_error
    recovered = parse_request({"messages": [*base, _result("2", '{"status": "booked"}')]})
    assert not recovery_signals(recovered).after_error


def test_tool_errors_before_the_last_user_turn_are_history() -> None:
    request = parse_request(
        {
            "messages": [
                {"role": "user", "content": "Look it up"},
                {"role": "assistant", "content": None, "tool_calls": [_call("1")]},
                _result("1", "Exception: not found"),
                {"role": "assistant", "content": "I could not find it."},
                {"role": "user", "content": "OK, then tell me a joke."},
            ]
        }
    )
    assert not recovery_signals(request).after_error


def test_tool_result_scan_is_bounded() -> None:
    assert tool_result_is_error("Traceback (most recent call last)")
    assert not tool_result_is_error("x" * 5000 + " error")


def _call(call_id: str) -> dict:
    return {"id": call_id, "type": "function", "function": {"name": "f", "arguments": "{}"}}


def _result(call_id: str, text: str) -> dict:
    return {"role": "tool", "tool_call_id": call_id, "content": text}
