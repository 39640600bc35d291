"""agentsteps._validate: the shared argument checks name the API, the argument and the value."""

from __future__ import annotations

import re

import pytest

from agentsteps._validate import check_count, check_name, check_optional_name


class TestCheckName:
    def test_accepts(self) -> None:
        """A printable, non-blank str comes back unchanged."""
        assert check_name("name", "plan", "@step") == "plan"

    @pytest.mark.parametrize(
        ("value", "exc", "message"),
        [
            (3, TypeError, "@step: 'name' must be a non-empty str (got 3 of type int)"),
            (" ", ValueError, "@step: 'name' must be a non-empty str (got ' ')"),
            (
                "a\x1b[2Jb",
                ValueError,
                "@step: 'name' must be printable text, without control or formatting "
                "characters (got 'a\\x1b[2Jb': U+001B at index 1)",
            ),
        ],
    )
    def test_refuses(self, value: object, exc: type[Exception], message: str) -> None:
        """Wrong type, blank and unprintable names are refused, by argument and API."""
        with pytest.raises(exc, match=re.escape(message)):
            check_name("name", value, "@step")


class TestCheckOptionalName:
    def test_accepts(self) -> None:
        """None and a non-blank str pass."""
        check_optional_name("model", None, "record_usage()")
        check_optional_name("model", "m", "record_usage()")

    def test_refuses(self) -> None:
        """A non-str and a blank str are refused."""
        with pytest.raises(TypeError, match=re.escape("'model' must be a str or None (got 1")):
            check_optional_name("model", 1, "record_usage()")
        with pytest.raises(
            ValueError,
            match=re.escape("record_usage(): 'model' must be a non-empty str or None (got '')"),
        ):
            check_optional_name("model", "", "record_usage()")


class TestCheckCount:
    def test_bounds(self) -> None:
        """0 and 2**63 - 1 pass; -1, 2**63, True and 1.0 are refused."""
        assert check_count("n", 0, "f()") == 0
        assert check_count("n", 2**63 - 1, "f()") == 2**63 - 1
        with pytest.raises(ValueError, match=re.escape("f(): 'n' must be >= 0 (got -1)")):
            check_count("n", -1, "f()")
        with pytest.raises(ValueError, match=re.escape("f(): 'n' must be at most 2**63 - 1")):
            check_count("n", 2**63, "f()")
        for value in (True, 1.0):
            with pytest.raises(TypeError, match=re.escape("f(): 'n' must be an int (got")):
                check_count("n", value, "f()")
