"""Signals that a conversation is recovering from a failure, read from the request alone.

A request that follows a failed tool call, or in which the user rejects the previous answer,
is where a cheap model has already fallen short once; the escalation bias says such a turn
deserves a capable tier. The features (``router_ml.features``), the policy match keys
(``after_error``, ``retry``) and the gateway share these definitions, so "after an error"
means the same thing wherever it is used.

Every scan is bounded: a tool result is read up to :data:`TOOL_RESULT_SCAN_CHARS` characters and
a user turn up to :data:`USER_TURN_SCAN_CHARS`.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from router_ml.request import ChatRequest

TOOL_RESULT_SCAN_CHARS = 2048
"""Characters at the head of a tool result searched for error words."""
USER_TURN_SCAN_CHARS = 512
"""Characters at the head of the last user turn searched for a rejection of the last answer."""

_ERROR_WORDS = (
    "error",
    "exception",
    "traceback",
    "failed",
    "failure",
    "not found",
    "invalid",
    "denied",
    "unauthorized",
    "timed out",
    "timeout",
)
_TOOL_ROLES = frozenset({"tool", "function"})
# A user turn that says the previous answer was wrong or did not work. Word-bounded phrases, so
# "wrong" in "what went wrong in WW1?" alone does not count: the phrase must judge the answer.
_REJECTION_RE = re.compile(
    r"\b(?:"
    r"(?:that|this|it|your (?:answer|code|solution|response))(?:'s| is| was)"
    r" (?:still )?(?:wrong|incorrect|not (?:right|correct|it|what i (?:asked|wanted|meant)))"
    r"|(?:still|again) (?:wrong|incorrect|broken|failing|fails|not working|doesn'?t work)"
    r"|(?:failed|fails|crashed|broke) again"
    r"|(?:doesn'?t|does not|didn'?t|did not|won'?t) (?:work|compile|run)"
    r"|(?:wrong|incorrect|bad) answer"
    r"|you (?:misunderstood|made (?:a|an) (?:mistake|error)|got (?:it|that) wrong)"
    r"|not what i (?:asked|wanted|meant)"
    r"|(?:please )?(?:redo|try again|fix (?:it|this|that))"
    r"|same (?:error|problem|issue)"
    r"|(?:still )?getting (?:an? |the same )?(?:error|exception)"
    r")\b"
)


def tool_result_is_error(text: str) -> bool:
    """Whether a tool result reads like a failure (error words near its start)."""
    head = text[:TOOL_RESULT_SCAN_CHARS].lower()
    return any(word in head for word in _ERROR_WORDS)


def user_rejects(text: str) -> bool:
    """Whether a user turn says that the previous answer was wrong or did not work."""
    return _REJECTION_RE.search(text[:USER_TURN_SCAN_CHARS].lower()) is not None


@dataclass(frozen=True, slots=True)
class RecoverySignals:
    """What the conversation says about a failure just before the turn being routed."""

    after_error: bool
    """The newest tool result (after the last user turn, if any) reads like an error."""
    user_rejects_answer: bool
    """The last user turn follows an assistant answer and rejects it ("that's wrong", "redo")."""

    @property
    def recovering(self) -> bool:
        return self.after_error or self.user_rejects_answer


def recovery_signals(request: ChatRequest) -> RecoverySignals:
    """Read both signals in one backward pass over the messages (stops at the last user turn)."""
    after_error = False
    rejects = False
    seen_tool = False
    for index in range(len(request.messages) - 1, -1, -1):
        message = request.messages[index]
        if message.role in _TOOL_ROLES and not seen_tool:
            seen_tool = True
            after_error = tool_result_is_error(message.text)
        elif message.role == "user":
            rejects = _follows_assistant(request, index) and user_rejects(message.text)
            break
    return RecoverySignals(after_error=after_error, user_rejects_answer=rejects)


def _follows_assistant(request: ChatRequest, user_index: int) -> bool:
    """Whether an assistant message comes before the user turn at ``user_index``."""
    return any(m.role == "assistant" for m in request.messages[:user_index])
