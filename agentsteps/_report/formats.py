"""How one figure or name is written in a report: dollars, durations, counts, safe text."""

from __future__ import annotations

import re

__all__ = ["count", "format_cost", "format_duration", "plural", "safe_text"]

# Control characters (C0, DEL, C1) and the bidi controls that can reorder what a terminal
# shows: a step name or error from a run must not move the cursor, retitle the window
# (OSC), hide text or make a line read backwards. They are printed escaped instead.
_UNSAFE = re.compile("[\x00-\x1f\x7f-\x9f\u061c\u200e\u200f\u202a-\u202e\u2066-\u2069]")
_NAMED = {"\n": "\\n", "\t": "\\t", "\r": "\\r"}


def format_cost(usd: float) -> str:
    """Dollars with enough decimals to tell small LLM costs apart."""
    if usd == 0:
        return "$0"
    if usd < 0.0001:
        return "<$0.0001"
    if usd < 1:
        return f"${usd:.4f}"
    return f"${usd:,.2f}"


def format_duration(seconds: float) -> str:
    """A short human duration: ``0.4ms``, ``12ms``, ``1.24s``, ``3m05s``."""
    if seconds < 0.0001:
        return "<0.1ms"
    if seconds < 0.001:
        return f"{seconds * 1000:.1f}ms"
    if seconds < 1:
        return f"{seconds * 1000:.0f}ms"
    if seconds < 60:
        return f"{seconds:.2f}s"
    minutes, rest = divmod(round(seconds), 60)
    return f"{minutes}m{rest:02d}s"


def safe_text(text: str) -> str:
    """
    ``text`` with control characters and bidi overrides escaped, safe to print.

    >>> safe_text("ok\\x1b]0;owned\\x07 \\u202edesrever")
    'ok\\\\x1b]0;owned\\\\x07 \\\\u202edesrever'
    """
    return _UNSAFE.sub(_escape, text)


def _escape(match: re.Match[str]) -> str:
    char = match.group()
    if char in _NAMED:
        return _NAMED[char]
    code = ord(char)
    return f"\\x{code:02x}" if code < 0x100 else f"\\u{code:04x}"


def count(n: int) -> str:
    """``n`` with thousands separators, ``-`` for none."""
    return f"{n:,}" if n else "-"


def plural(n: int, noun: str) -> str:
    """``n`` and ``noun``, with an ``s`` unless ``n`` is 1: ``1 step``, ``2,000 steps``."""
    return f"{n:,} {noun}" + ("" if n == 1 else "s")
