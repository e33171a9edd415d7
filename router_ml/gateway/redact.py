"""Redaction of key-like strings in upstream detail before it reaches a client or the log.

Upstreams echo credentials in their errors ("Incorrect API key provided: sk-abc...xyz"): such a
string is never relayed or logged verbatim. Known secrets (the operator's own keys) are replaced
exactly; anything shaped like a common API key or bearer token is replaced by pattern.
"""

from __future__ import annotations

import re
from collections.abc import Iterable

REDACTED = "[redacted]"
_KEY_LIKE = re.compile(
    r"(?i)\b(?:sk|pk|rk|ak)-[A-Za-z0-9_\-*.]{6,}"  # OpenAI/Anthropic style, also masked "sk-...x"
    r"|\bAIza[0-9A-Za-z_\-]{20,}"  # Google API keys
    r"|\bbearer\s+[^\s\"',;]+"
    r"|(?<=api[_-]key)[\"']?\s*[:=]\s*[\"']?[^\s\"',;]+"
    r"|(?<=key=)[^\s\"'&,;]+"
)


def redact(text: str, secrets: Iterable[str] = ()) -> str:
    """``text`` with every known secret and key-like string replaced by ``[redacted]``."""
    for secret in secrets:
        if secret:
            text = text.replace(secret, REDACTED)
    return _KEY_LIKE.sub(REDACTED, text)
