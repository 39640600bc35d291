"""The offline token estimate and the chat-message shapes a `ScriptedModel` accepts."""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping, Sequence

__all__ = [
    "MESSAGE_OVERHEAD_TOKENS",
    "Message",
    "Prompt",
    "Responder",
    "ScriptItem",
    "count_prompt_tokens",
    "estimate_tokens",
    "is_message",
    "truncate",
]

MESSAGE_OVERHEAD_TOKENS = 4
"""Tokens counted per prompt message on top of its content (role and framing)."""

_BYTES_PER_TOKEN = 4

Message = Mapping[str, str]
"""A chat message: ``{"role": "user", "content": "..."}``."""
Prompt = str | Sequence[Message]
"""A plain string (one user message) or a list of chat messages."""
ScriptItem = str | BaseException | type[BaseException]
Responder = Callable[[str], str]


def estimate_tokens(text: str) -> int:
    """
    Tokens in ``text`` by the offline estimate: ``ceil(utf-8 bytes / 4)``.

    Example:
        >>> estimate_tokens(""), estimate_tokens("hi"), estimate_tokens("hello world")
        (0, 1, 3)
    """
    return math.ceil(len(text.encode("utf-8")) / _BYTES_PER_TOKEN)


def count_prompt_tokens(messages: Sequence[Message]) -> int:
    """
    Input tokens of a prompt: each message's content plus `MESSAGE_OVERHEAD_TOKENS`.

    Example:
        >>> count_prompt_tokens([{"role": "system", "content": "Be brief."},
        ...                      {"role": "user", "content": "Hi"}])
        12
    """
    return sum(estimate_tokens(m["content"]) + MESSAGE_OVERHEAD_TOKENS for m in messages)


def is_message(value: object) -> bool:
    """Whether ``value`` is a chat message with str ``role`` and ``content``."""
    return (
        isinstance(value, Mapping)
        and isinstance(value.get("role"), str)
        and isinstance(value.get("content"), str)
    )


def truncate(text: str, tokens: int) -> str:
    """``text`` cut to ``tokens`` by the estimate (on a character boundary)."""
    data = text.encode("utf-8")[: tokens * _BYTES_PER_TOKEN]
    return data.decode("utf-8", errors="ignore")
