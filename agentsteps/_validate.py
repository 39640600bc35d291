"""
Argument checks shared by the public API: names and counts, with messages that teach.

Every check takes the argument's name, the value received and the API that received it
(``"@step"``, ``"record_usage()"``), and raises `TypeError` for a wrong type or
`ValueError` for a wrong value, with a message naming all three and the rule. Plain
functions on values (they import only the value layer's `shown`), so any layer can use
them.
"""

from __future__ import annotations

from ._accounting.budget import INT64_MAX, shown

__all__ = ["check_count", "check_name", "check_optional_name"]


def check_name(argument: str, value: object, what: str) -> str:
    """A non-empty, printable ``str``: a step's, persona's or model's name."""
    if not isinstance(value, str):
        got = f"{value!r} of type {type(value).__name__}"
        msg = f"{what}: {argument!r} must be a non-empty str (got {got})"
        raise TypeError(msg)
    if not value.strip():
        msg = f"{what}: {argument!r} must be a non-empty str (got {value!r})"
        raise ValueError(msg)
    if not value.isprintable():
        # Names are printed in terminals, reports and trace viewers: an ANSI escape or a
        # bidirectional override (U+202E) there can rewrite or disguise what is shown.
        index, char = next((i, c) for i, c in enumerate(value) if not c.isprintable())
        msg = (
            f"{what}: {argument!r} must be printable text, without control or formatting "
            f"characters (got {value!r}: U+{ord(char):04X} at index {index})"
        )
        raise ValueError(msg)
    return value


def check_optional_name(argument: str, value: object, what: str) -> None:
    """``None``, or a ``str`` that is not blank (a model or provider given at run time)."""
    if value is not None and not isinstance(value, str):
        msg = (
            f"{what}: {argument!r} must be a str or None (got {value!r} of type "
            f"{type(value).__name__})"
        )
        raise TypeError(msg)
    if value is not None and not value.strip():
        msg = f"{what}: {argument!r} must be a non-empty str or None (got {value!r})"
        raise ValueError(msg)


def check_count(argument: str, value: object, what: str) -> int:
    """An ``int`` in [0, 2**63 - 1]: a token or call count."""
    # type() is, not isinstance: bool is an int subclass and True tokens is a bug.
    if type(value) is int:
        if 0 <= value <= INT64_MAX:
            return value
        if value > INT64_MAX:
            msg = (
                f"{what}: {argument!r} must be at most 2**63 - 1 = {INT64_MAX}, the largest "
                f"count OpenTelemetry carries (got {shown(value)})"
            )
            raise ValueError(msg)
        msg = f"{what}: {argument!r} must be >= 0 (got {shown(value)})"
        raise ValueError(msg)
    msg = f"{what}: {argument!r} must be an int (got {shown(value)} of type {type(value).__name__})"
    raise TypeError(msg)
