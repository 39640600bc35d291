"""
Numbers are checked at the API boundary, where the mistake is made.

Tokens and calls are ints (``bool`` refused, and ``2.0`` too: it would be stored and
exported as a float); every count and nano-dollar figure is finite and within the int64
that OpenTelemetry carries. A value out of range raises at construction or at the call,
naming the argument, never later as an ``OverflowError`` that names nothing.
"""

from __future__ import annotations

import re
from typing import Any

import pytest

from agentsteps import (
    Budget,
    Run,
    Usage,
    ametered,
    llm_call,
    metered,
    persona,
    persona_scope,
    print_report,
    record_usage,
    register_price,
    run,
    step,
    step_scope,
)

INT64_MAX = 2**63 - 1


class TestBudget:
    @pytest.mark.parametrize(
        ("kwargs", "exc", "message"),
        [
            (
                {"max_usd": 1e300},
                ValueError,
                "Budget: 'max_usd' must be at most 9,223,372,036.85 dollars, the largest int64 "
                "count of nano-dollars (got 1e+300); use None for no limit",
            ),
            (
                {"max_usd": 10**400},
                ValueError,
                "Budget: 'max_usd' must be at most 9,223,372,036.85 dollars, the largest int64 "
                "count of nano-dollars (got an int of 1329 bits); use None for no limit",
            ),
            (
                {"max_tokens": 2.0},
                TypeError,
                "Budget: 'max_tokens' must be a whole number of tokens, as an int "
                "(got 2.0 of type float)",
            ),
            (
                {"max_llm_calls": 3.0},
                TypeError,
                "Budget: 'max_llm_calls' must be a whole number of calls, as an int "
                "(got 3.0 of type float)",
            ),
            (
                {"max_tokens": INT64_MAX + 1},
                ValueError,
                "Budget: 'max_tokens' must be at most 2**63 - 1 = 9223372036854775807, the "
                "largest count OpenTelemetry carries (got 9223372036854775808); use None for "
                "no limit",
            ),
            (
                {"max_llm_calls": 10**5000},
                ValueError,
                "Budget: 'max_llm_calls' must be at most 2**63 - 1 = 9223372036854775807, the "
                "largest count OpenTelemetry carries (got an int of 16610 bits); use None for "
                "no limit",
            ),
            (
                {"max_llm_calls": False},
                TypeError,
                "Budget: 'max_llm_calls' must be an int or None (got False of type bool)",
            ),
        ],
    )
    def test_refused_at_construction(
        self, kwargs: dict[str, Any], exc: type[Exception], message: str
    ) -> None:
        with pytest.raises(exc) as info:
            Budget(**kwargs)
        assert str(info.value) == message

    def test_the_dict_form_is_checked_the_same_way(self) -> None:
        with pytest.raises(TypeError, match=re.escape("budget 'max_tokens' must be a whole")):

            @step(budget={"max_tokens": 2.0})
            def work() -> None: ...

    def test_the_largest_limits_work(self) -> None:
        # The bounds themselves are legal, and a step under them runs and records.
        @step(budget=Budget(max_tokens=INT64_MAX, max_usd=INT64_MAX / 1e9))
        def big() -> str:
            return "ran"

        assert big() == "ran"
        assert Budget(max_tokens=2_000).max_tokens == 2_000


class TestRecordUsage:
    @pytest.mark.parametrize(
        ("kwargs", "exc", "message"),
        [
            (
                {"input_tokens": INT64_MAX + 1},
                ValueError,
                "record_usage(): 'input_tokens' must be at most 2**63 - 1 = "
                "9223372036854775807, the largest count OpenTelemetry carries "
                "(got 9223372036854775808)",
            ),
            (
                {"llm_calls": 10**5000},
                ValueError,
                "record_usage(): 'llm_calls' must be at most 2**63 - 1 = 9223372036854775807, "
                "the largest count OpenTelemetry carries (got an int of 16610 bits)",
            ),
            (
                {"cost_usd": 1e300},
                ValueError,
                "record_usage(): 'cost_usd' must be at most 9,223,372,036.85 dollars, the "
                "largest int64 count of nano-dollars (got 1e+300)",
            ),
            (
                {"cost_usd": 10**400},
                ValueError,
                "record_usage(): 'cost_usd' must be at most 9,223,372,036.85 dollars, the "
                "largest int64 count of nano-dollars (got an int of 1329 bits)",
            ),
            (
                {"output_tokens": True},
                TypeError,
                "record_usage(): 'output_tokens' must be an int (got True of type bool)",
            ),
        ],
    )
    def test_refused_at_the_call_charging_nothing(
        self, kwargs: dict[str, Any], exc: type[Exception], message: str
    ) -> None:
        @step
        def work() -> None:
            record_usage("m", **kwargs)

        with run() as r, pytest.raises(exc) as info:
            work()
        assert str(info.value) == message
        assert r.total.llm_calls == 0
        # Outside any step the arguments are validated all the same.
        with pytest.raises(exc):
            record_usage("m", **kwargs)

    def test_the_largest_values_are_charged(self) -> None:
        @step
        def work() -> None:
            record_usage("m", INT64_MAX, cost_usd=INT64_MAX / 1e9, llm_calls=INT64_MAX)

        with run() as r:
            work()
        total = r.total
        assert (total.input_tokens, total.llm_calls) == (INT64_MAX, INT64_MAX)
        assert total.cost_nano_usd == INT64_MAX  # saturated: the float is one over
        assert isinstance(r, Run)


class TestUsage:
    @pytest.mark.parametrize(
        ("args", "kwargs", "exc", "message"),
        [
            ((-5,), {}, ValueError, "Usage: 'input_tokens' must be >= 0 (got -5)"),
            (("x",), {}, TypeError, "Usage: 'input_tokens' must be an int (got 'x' of type str)"),
            (
                (),
                {"cost_nano_usd": 0.5},
                TypeError,
                "Usage: 'cost_nano_usd' must be an int (got 0.5 of type float)",
            ),
            (
                (),
                {"llm_calls": True},
                TypeError,
                "Usage: 'llm_calls' must be an int (got True of type bool)",
            ),
            (
                (),
                {"unpriced_calls": -1},
                ValueError,
                "Usage: 'unpriced_calls' must be >= 0 (got -1)",
            ),
        ],
    )
    def test_refused_at_construction(
        self, args: tuple[Any, ...], kwargs: dict[str, Any], exc: type[Exception], message: str
    ) -> None:
        with pytest.raises(exc) as info:
            Usage(*args, **kwargs)
        assert str(info.value) == message

    def test_valid_usages_still_add_up(self) -> None:
        u = Usage(input_tokens=3, output_tokens=1, llm_calls=1, cost_nano_usd=7)
        assert (u + u).to_dict()["total_tokens"] == 8


class TestMetered:
    """A stream is read lazily: a bad reader must fail before the request is sent."""

    @pytest.mark.parametrize("meter", [metered, ametered])
    @pytest.mark.parametrize(
        ("kwargs", "message"),
        [
            (
                {"tokens": "x"},
                "'tokens' must be a function of a chunk or None (got 'x' of type str), "
                "e.g. lambda chunk: 1",
            ),
            (
                {"usage": 5},
                "'usage' must be a function of a chunk or None (got 5 of type int), "
                "e.g. agentsteps.integrations.openai_usage",
            ),
        ],
    )
    def test_refused_at_the_call(self, meter: Any, kwargs: dict[str, Any], message: str) -> None:
        sent: list[str] = []

        def stream() -> Any:
            sent.append("request")  # what a client does when the stream is first read
            yield "chunk"

        @step(model="m")
        def work() -> None:
            with llm_call(input_tokens=1) as call:
                meter(stream(), call, **kwargs)

        with pytest.raises(TypeError) as info:
            work()
        assert str(info.value) == f"{meter.__name__}(): {message}"
        assert sent == []


class TestRegisterPrice:
    """Prices match model names exactly: a name with blanks around it never matches."""

    @pytest.mark.parametrize(
        ("model", "message"),
        [
            (
                "  ",
                "register_price(): 'model' must not be blank or start or end with whitespace "
                "(got '  '); give the model's name",
            ),
            (
                " gpt-4o\n",
                "register_price(): 'model' must not be blank or start or end with whitespace "
                "(got ' gpt-4o\\n'); write 'gpt-4o'",
            ),
        ],
    )
    def test_refused(self, model: str, message: str) -> None:
        with pytest.raises(ValueError, match="'model' must not be blank") as info:
            register_price(model, input_per_mtok=1.0, output_per_mtok=1.0)
        assert str(info.value) == message


class TestPrintReport:
    @pytest.mark.parametrize("flag", ["yes", "no", 1, None])
    def test_json_must_be_a_bool(self, flag: object) -> None:
        # json="no" is truthy: obeying it would print JSON to someone who asked not to.
        with run() as r:
            pass
        with pytest.raises(TypeError, match="'json' must be True or False") as info:
            print_report(r, json=flag)  # type: ignore[arg-type]
        assert str(info.value) == (
            f"print_report(): 'json' must be True or False (got {flag!r} of type "
            f"{type(flag).__name__})"
        )


class TestNames:
    """Names reach terminals and reports: escapes and bidi overrides are refused."""

    @pytest.mark.parametrize(
        ("name", "shown"),
        [
            ("red\x1b[31m", "'red\\x1b[31m': U+001B at index 3"),
            ("invoice\u202egpj.exe", "'invoice\\u202egpj.exe': U+202E at index 7"),
            ("two\nlines", "'two\\nlines': U+000A at index 3"),
        ],
    )
    @pytest.mark.parametrize("kind", ["@step", "@persona", "step_scope()", "persona_scope()"])
    def test_refused_at_decoration(self, kind: str, name: str, shown: str) -> None:
        make = {
            "@step": lambda: step(name=name)(lambda: None),
            "@persona": lambda: persona(name=name)(lambda: None),
            "step_scope()": lambda: step_scope(name),
            "persona_scope()": lambda: persona_scope(name),
        }[kind]
        with pytest.raises(ValueError, match="must be printable text") as info:
            make()
        assert str(info.value) == (
            f"{kind}: 'name' must be printable text, without control or formatting "
            f"characters (got {shown})"
        )

    def test_model_names_too(self) -> None:
        with pytest.raises(ValueError, match="'model' must be printable text"):
            step(model="m\x00")(lambda: None)

    def test_unicode_names_are_fine(self) -> None:
        @step(name="résumé écrit — 要約")
        def work() -> str:
            return "ok"

        assert work() == "ok"
