"""Pricing (agentsteps._accounting.pricing): registered prices, the catalog, unknown models."""

from __future__ import annotations

import logging
import math
import re
import subprocess
import sys
import textwrap
from decimal import Decimal
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import agentsteps
from agentsteps import Price, override_price, register_price, registered_price, unregister_price
from agentsteps._accounting.pricing import price_usage, reset_pricing
from tests.support import HAS_CATALOG, ROOT, requires_catalog

if HAS_CATALOG:
    import genai_prices

NANO = 10**9  # nano-dollars per US dollar

# Published list prices, USD per million tokens.
# OpenAI gpt-4o, from the OpenAI API pricing page (platform.openai.com/docs/pricing):
# input $2.50, cached input $1.25, output $10.00. OpenAI bills cache writes as ordinary input.
GPT_4O = {"input_per_mtok": 2.50, "output_per_mtok": 10.00, "cache_read_per_mtok": 1.25}
# Anthropic Claude Sonnet 4, from the Anthropic pricing page
# (platform.claude.com/docs/en/about-claude/pricing): base input $3, 5-minute cache writes
# $3.75 (1.25x), cache hits $0.30 (0.1x), output $15.
SONNET_4 = {
    "input_per_mtok": 3.00,
    "output_per_mtok": 15.00,
    "cache_read_per_mtok": 0.30,
    "cache_write_per_mtok": 3.75,
}


# Catalog models with flat, tiered and date-switched (o3) prices.
CATALOG_SAMPLE = [
    "gpt-4o",
    "gpt-4.1-mini",
    "o3",
    "claude-haiku-4-5",
    "claude-sonnet-4-5",  # tiered above 200k input tokens
    "gemini-2.5-pro",  # tiered above 200k input tokens
]


def usd(nanos: int) -> float:
    return nanos / NANO


class TestPrice:
    """The Price value and its defaults."""

    def test_cache_rates_default_to_input_rate(self) -> None:
        """Unset cache rates cost what an uncached input token costs: no discount assumed."""
        price = Price(input_per_mtok=2.0, output_per_mtok=8.0)
        assert price.cache_read_per_mtok == 2.0
        assert price.cache_write_per_mtok == 2.0

    def test_explicit_cache_rates_kept(self) -> None:
        """Explicit cache rates override the defaults, including a free cache read."""
        price = Price(1.0, 5.0, cache_read_per_mtok=0.0, cache_write_per_mtok=1.25)
        assert (price.cache_read_per_mtok, price.cache_write_per_mtok) == (0.0, 1.25)

    def test_is_frozen(self) -> None:
        """A Price cannot be changed after it is made."""
        price = Price(1.0, 5.0)
        with pytest.raises(AttributeError):
            price.input_per_mtok = 2.0  # type: ignore[misc]

    def test_public_module(self) -> None:
        """The public names present themselves as agentsteps.X."""
        assert Price.__module__ == "agentsteps"
        assert register_price.__module__ == "agentsteps"

    def test_rejects_negative_rate(self) -> None:
        """A negative rate is refused, naming the field and the value."""
        with pytest.raises(
            ValueError,
            match=re.escape(
                "'output_per_mtok' must be a finite number >= 0 (USD per million tokens), got -1"
            ),
        ):
            Price(1.0, -1)


class TestRegisterPrice:
    """register_price, unregister_price and registered_price."""

    def test_returns_price_with_defaults(self) -> None:
        """register_price returns the Price it stored, defaults filled in."""
        price = register_price("m", input_per_mtok=2, output_per_mtok=8, cache_read_per_mtok=0.5)
        assert price == Price(2, 8, cache_read_per_mtok=0.5, cache_write_per_mtok=2)

    @pytest.mark.parametrize(
        ("argument", "value", "error", "message"),
        [
            (
                "input_per_mtok",
                -0.5,
                ValueError,
                "'input_per_mtok' must be a finite number >= 0 (USD per million tokens), got -0.5",
            ),
            (
                "output_per_mtok",
                math.nan,
                ValueError,
                "'output_per_mtok' must be a finite number >= 0 (USD per million tokens), got nan",
            ),
            (
                "cache_read_per_mtok",
                math.inf,
                ValueError,
                "'cache_read_per_mtok' must be a finite number >= 0 (USD per million tokens), "
                "got inf",
            ),
            (
                "cache_write_per_mtok",
                "3.75",
                TypeError,
                "'cache_write_per_mtok' must be a number of US dollars per million tokens "
                "(int or float), got '3.75' of type str",
            ),
            (
                "input_per_mtok",
                True,
                TypeError,
                "'input_per_mtok' must be a number of US dollars per million tokens "
                "(int or float), got True of type bool",
            ),
        ],
    )
    def test_bad_rate_names_the_argument(
        self, argument: str, value: object, error: type[Exception], message: str
    ) -> None:
        """A bad rate raises an error naming the argument, the rule and the value."""
        kwargs: dict[str, object] = {"input_per_mtok": 1.0, "output_per_mtok": 2.0}
        kwargs[argument] = value
        with pytest.raises(error, match=re.escape(message)):
            register_price("m", **kwargs)  # type: ignore[arg-type]
        assert unregister_price("m") is None

    def test_bad_model_name(self) -> None:
        """The model must be a non-empty string."""
        message = "'model' must be a model name (str), got None"
        with pytest.raises(TypeError, match=re.escape(message)):
            register_price(None, input_per_mtok=1, output_per_mtok=1)  # type: ignore[arg-type]
        with pytest.raises(ValueError, match=re.escape("'model' must be a non-empty model name")):
            register_price("", input_per_mtok=1, output_per_mtok=1)

    def test_unregister_returns_old_price(self) -> None:
        """unregister_price gives back what was registered, then None."""
        price = register_price("m", input_per_mtok=1, output_per_mtok=2)
        assert unregister_price("m") == price
        assert unregister_price("m") is None

    def test_register_again_replaces(self) -> None:
        """A second registration replaces the first, and pricing follows it."""
        register_price("m", input_per_mtok=1, output_per_mtok=1)
        register_price("m", input_per_mtok=2, output_per_mtok=2)
        assert price_usage("m", input_tokens=1_000_000, output_tokens=0) == (2 * NANO, "user")

    def test_override_price_restores_absence(self) -> None:
        """override_price removes its registration on exit when there was none before."""
        with override_price("m", input_per_mtok=1, output_per_mtok=1) as price:
            assert price == Price(1, 1)
            assert price_usage("m", input_tokens=1_000_000, output_tokens=0) == (NANO, "user")
        assert unregister_price("m") is None

    def test_override_price_restores_previous(self) -> None:
        """override_price puts the earlier registration back, even after an exception."""
        before = register_price("m", input_per_mtok=1, output_per_mtok=1)
        inside = []

        def use_then_fail() -> None:
            with override_price("m", input_per_mtok=5, output_per_mtok=5):
                inside.append(price_usage("m", input_tokens=1_000_000, output_tokens=0))
                raise KeyError("boom")

        with pytest.raises(KeyError):
            use_then_fail()
        assert inside == [(5 * NANO, "user")]
        assert price_usage("m", input_tokens=1_000_000, output_tokens=0) == (NANO, "user")
        assert unregister_price("m") == before

    def test_exported_from_package(self) -> None:
        """The pricing API is public at the top level."""
        for name in ("Price", "override_price", "register_price", "unregister_price"):
            assert name in agentsteps.__all__
            assert getattr(agentsteps, name) is not None

    def test_registered_price_deprecated(self) -> None:
        """The old name still works for one release, with a DeprecationWarning naming the new."""
        message = "registered_price() is deprecated since 0.2.0; use override_price() instead"
        with pytest.warns(DeprecationWarning, match=re.escape(message)):
            manager = registered_price("m", input_per_mtok=3, output_per_mtok=3)
        with manager as price:
            assert price == Price(3, 3)
            assert price_usage("m", input_tokens=1_000_000, output_tokens=0) == (3 * NANO, "user")
        assert unregister_price("m") is None
        assert "registered_price" in agentsteps.__all__


class TestPublishedPrices:
    """Costs of plain, cache-read and cache-write calls, against hand-computed dollars."""

    def test_gpt_4o_plain(self) -> None:
        """100k input + 2k output on gpt-4o: 100,000 x $2.50/M + 2,000 x $10/M = $0.27."""
        register_price("gpt-4o", **GPT_4O)
        nanos, source = price_usage("gpt-4o", input_tokens=100_000, output_tokens=2_000)
        assert source == "user"
        assert usd(nanos) == pytest.approx(0.25 + 0.02, abs=0.005)
        assert nanos == 270_000_000

    def test_gpt_4o_cache_read(self) -> None:
        """60k of 100k input cached: 40,000 x $2.50/M + 60,000 x $1.25/M + $0.02 = $0.195."""
        register_price("gpt-4o", **GPT_4O)
        nanos, _ = price_usage(
            "gpt-4o", input_tokens=100_000, output_tokens=2_000, cache_read_tokens=60_000
        )
        assert usd(nanos) == pytest.approx(0.10 + 0.075 + 0.02, abs=0.005)
        assert nanos == 195_000_000

    def test_gpt_4o_cache_write(self) -> None:
        """OpenAI charges cache writes as plain input: 60k written of 100k costs $0.27 too."""
        register_price("gpt-4o", **GPT_4O)
        nanos, _ = price_usage(
            "gpt-4o", input_tokens=100_000, output_tokens=2_000, cache_write_tokens=60_000
        )
        assert nanos == 270_000_000

    def test_sonnet_4_plain(self) -> None:
        """100k input + 2k output on Sonnet 4: 100,000 x $3/M + 2,000 x $15/M = $0.33."""
        register_price("claude-sonnet-4", **SONNET_4)
        nanos, _ = price_usage("claude-sonnet-4", input_tokens=100_000, output_tokens=2_000)
        assert usd(nanos) == pytest.approx(0.30 + 0.03, abs=0.005)
        assert nanos == 330_000_000

    def test_sonnet_4_cache_read(self) -> None:
        """60k cache hits of 100k: 40,000 x $3/M + 60,000 x $0.30/M + $0.03 = $0.168."""
        register_price("claude-sonnet-4", **SONNET_4)
        nanos, _ = price_usage(
            "claude-sonnet-4", input_tokens=100_000, output_tokens=2_000, cache_read_tokens=60_000
        )
        assert usd(nanos) == pytest.approx(0.12 + 0.018 + 0.03, abs=0.005)
        assert nanos == 168_000_000

    def test_sonnet_4_cache_write(self) -> None:
        """60k written to a 5-minute cache: 40,000 x $3/M + 60,000 x $3.75/M + $0.03 = $0.375."""
        register_price("claude-sonnet-4", **SONNET_4)
        nanos, _ = price_usage(
            "claude-sonnet-4", input_tokens=100_000, output_tokens=2_000, cache_write_tokens=60_000
        )
        assert usd(nanos) == pytest.approx(0.12 + 0.225 + 0.03, abs=0.005)
        assert nanos == 375_000_000

    def test_reasoning_priced_as_output(self) -> None:
        """Reasoning tokens are part of output_tokens and are not charged twice."""
        register_price("gpt-4o", **GPT_4O)
        with_reasoning = price_usage(
            "gpt-4o", input_tokens=0, output_tokens=1_000, reasoning_tokens=800
        )
        assert with_reasoning == price_usage("gpt-4o", input_tokens=0, output_tokens=1_000)
        assert with_reasoning[0] == 10_000_000

    def test_sub_nano_rates_round_half_up(self) -> None:
        """A cost is rounded to the nearest nano-dollar: 1 token at $0.0005/M is 0.5 nano -> 1."""
        register_price("tiny", input_per_mtok=0.0005, output_per_mtok=0.0004)
        assert price_usage("tiny", input_tokens=1, output_tokens=0) == (1, "user")
        assert price_usage("tiny", input_tokens=0, output_tokens=1) == (0, "user")


@requires_catalog
class TestCatalog:
    """Prices from the genai-prices package's bundled data."""

    @pytest.mark.parametrize(
        ("kwargs", "expected"),
        [
            ({}, 270_000_000),
            ({"cache_read_tokens": 60_000}, 195_000_000),
            ({"cache_write_tokens": 60_000}, 270_000_000),
        ],
    )
    def test_gpt_4o_dated_snapshot(self, kwargs: dict[str, int], expected: int) -> None:
        """The catalog prices OpenAI's dated model name at gpt-4o's published rates."""
        nanos, source = price_usage(
            "gpt-4o-2024-08-06", input_tokens=100_000, output_tokens=2_000, **kwargs
        )
        assert (nanos, source) == (expected, "catalog")

    @pytest.mark.parametrize(
        ("kwargs", "expected"),
        [
            ({}, 330_000_000),
            ({"cache_read_tokens": 60_000}, 168_000_000),
            ({"cache_write_tokens": 60_000}, 375_000_000),
        ],
    )
    def test_sonnet_4_dated_snapshot(self, kwargs: dict[str, int], expected: int) -> None:
        """The catalog prices claude-sonnet-4-20250514 at Sonnet 4's published rates."""
        nanos, source = price_usage(
            "claude-sonnet-4-20250514",
            input_tokens=100_000,
            output_tokens=2_000,
            provider="anthropic",
            **kwargs,
        )
        assert (nanos, source) == (expected, "catalog")

    def test_long_context_tier(self) -> None:
        """Sonnet 4.5 over 200k input tokens bills every token at the long-context rates.

        Published: $3/$15 per M up to 200k input, $6/$22.50 above. 250,000 input and
        1,000 output: 250,000 x $6/M + 1,000 x $22.50/M = $1.5225.
        """
        nanos, source = price_usage("claude-sonnet-4-5", input_tokens=250_000, output_tokens=1_000)
        assert (nanos, source) == (1_522_500_000, "catalog")
        below, _ = price_usage("claude-sonnet-4-5", input_tokens=200_000, output_tokens=1_000)
        assert below == 615_000_000  # 200,000 x $3/M + 1,000 x $15/M

    def test_per_request_fee(self) -> None:
        """A model with a per-request fee is priced by genai-prices on each call.

        Perplexity sonar: $1/M input, $1/M output, $12 per 1,000 requests.
        """
        nanos, source = price_usage(
            "sonar", input_tokens=1_000, output_tokens=1_000, provider="perplexity"
        )
        assert (nanos, source) == (14_000_000, "catalog")

    def test_registered_price_wins(self) -> None:
        """A registered price takes precedence over the catalog, for the dated name too."""
        register_price("gpt-4o", input_per_mtok=1, output_per_mtok=1)
        assert price_usage("gpt-4o", input_tokens=1_000_000, output_tokens=0) == (NANO, "user")
        assert price_usage("gpt-4o-2024-08-06", input_tokens=1_000_000, output_tokens=0) == (
            NANO,
            "user",
        )
        unregister_price("gpt-4o")
        assert price_usage("gpt-4o-2024-08-06", input_tokens=1_000_000, output_tokens=0) == (
            2_500_000_000,
            "catalog",
        )

    def test_dated_alias_is_exact(self) -> None:
        """gpt-4o's registration does not price gpt-4o-mini's snapshot."""
        register_price("gpt-4o", input_per_mtok=1, output_per_mtok=1)
        _, source = price_usage("gpt-4o-mini-2024-07-18", input_tokens=10, output_tokens=0)
        assert source == "catalog"

    def test_unknown_provider_falls_back_to_model(self) -> None:
        """A provider name genai-prices does not know still finds the model by name."""
        nanos, source = price_usage(
            "gpt-4o", input_tokens=1_000_000, output_tokens=0, provider="my-gateway"
        )
        assert (nanos, source) == (2_500_000_000, "catalog")

    @settings(max_examples=60, deadline=None)
    @given(
        model=st.sampled_from(CATALOG_SAMPLE),
        uncached=st.integers(0, 400_000),
        cache_read=st.integers(0, 100_000),
        cache_write=st.integers(0, 100_000),
        output=st.integers(0, 50_000),
    )
    def test_matches_genai_prices(
        self, model: str, uncached: int, cache_read: int, cache_write: int, output: int
    ) -> None:
        """The cached fast path gives genai-prices' own answer, to the nano-dollar."""
        input_tokens = uncached + cache_read + cache_write
        nanos, source = price_usage(
            model,
            input_tokens=input_tokens,
            output_tokens=output,
            cache_read_tokens=cache_read,
            cache_write_tokens=cache_write,
        )
        usage = genai_prices.Usage(
            input_tokens=input_tokens,
            output_tokens=output,
            cache_read_tokens=cache_read,
            cache_write_tokens=cache_write,
        )
        expected = genai_prices.calc_price(usage, model).total_price * NANO
        assert source == "catalog"
        assert abs(Decimal(nanos) - expected) <= Decimal("0.5")

    def test_catalog_not_installed(
        self, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
    ) -> None:
        """A broken genai-prices install leaves unregistered models unknown, and logs the fix."""
        monkeypatch.setitem(sys.modules, "genai_prices.data", None)
        with caplog.at_level(logging.WARNING, logger="agentsteps"):
            assert price_usage("gpt-4o", input_tokens=10, output_tokens=10) == (0, "unknown")
        assert "agentsteps.register_price('gpt-4o'" in caplog.text
        assert "agentsteps[prices]" not in caplog.text  # a dependency now: no extra to add

    def test_no_network(self, tmp_path: Path) -> None:
        """Importing and pricing from the catalog opens no socket (checked in a fresh process)."""
        script = textwrap.dedent(
            """
            import socket

            def refuse(*args, **kwargs):
                raise AssertionError(f"network use: {args!r}")

            socket.socket.connect = refuse
            socket.socket.connect_ex = refuse
            socket.create_connection = refuse
            socket.getaddrinfo = refuse

            import agentsteps
            from agentsteps._accounting.pricing import price_usage

            print(price_usage("gpt-4o", input_tokens=1_000_000, output_tokens=0))
            """
        )
        done = subprocess.run(
            [sys.executable, "-c", script],
            cwd=tmp_path,
            env={"PYTHONPATH": str(ROOT)},
            capture_output=True,
            text=True,
            timeout=120,
            check=False,
        )
        assert done.returncode == 0, done.stderr
        assert done.stdout.strip() == "(2500000000, 'catalog')"


class TestUnknownModels:
    """Models with no price: cost 0, logged once, reported as unknown."""

    def test_cost_zero_and_logged_once(self, caplog: pytest.LogCaptureFixture) -> None:
        """An unknown model costs 0 and is logged once on the 'agentsteps' logger."""
        with caplog.at_level(logging.WARNING, logger="agentsteps"):
            for _ in range(3):
                assert price_usage("my-finetune", input_tokens=5, output_tokens=5) == (
                    0,
                    "unknown",
                )
        records = [r for r in caplog.records if r.name == "agentsteps"]
        assert len(records) == 1
        assert records[0].levelno == logging.WARNING
        assert "No price known for model 'my-finetune'" in records[0].getMessage()
        assert "register_price('my-finetune'" in records[0].getMessage()

    def test_each_model_logged(self, caplog: pytest.LogCaptureFixture) -> None:
        """Each unknown model name gets its own single warning."""
        with caplog.at_level(logging.WARNING, logger="agentsteps"):
            price_usage("a-model", input_tokens=1, output_tokens=1)
            price_usage("b-model", input_tokens=1, output_tokens=1)
            price_usage("a-model", input_tokens=1, output_tokens=1)
        assert len(caplog.records) == 2

    def test_no_model_name(self, caplog: pytest.LogCaptureFixture) -> None:
        """A call without a model name is unknown, with its own hint."""
        with caplog.at_level(logging.WARNING, logger="agentsteps"):
            assert price_usage(None, input_tokens=1, output_tokens=1) == (0, "unknown")
        assert "without a model name" in caplog.text

    def test_registering_later_prices_it(self) -> None:
        """Registering a model after it was seen as unknown prices later calls."""
        assert price_usage("late", input_tokens=1_000_000, output_tokens=0) == (0, "unknown")
        register_price("late", input_per_mtok=3, output_per_mtok=3)
        assert price_usage("late", input_tokens=1_000_000, output_tokens=0) == (3 * NANO, "user")
        assert price_usage("late-2025-01-01", input_tokens=1_000_000, output_tokens=0) == (
            3 * NANO,
            "user",
        )

    def test_reset_forgets_warnings(self, caplog: pytest.LogCaptureFixture) -> None:
        """reset_pricing forgets which models were already logged."""
        with caplog.at_level(logging.WARNING, logger="agentsteps"):
            price_usage("x-model", input_tokens=1, output_tokens=1)
            reset_pricing()
            price_usage("x-model", input_tokens=1, output_tokens=1)
        assert len(caplog.records) == 2


class TestBadCounts:
    """price_usage refuses counts that break the OpenTelemetry usage model."""

    def test_cache_exceeds_input(self) -> None:
        """Cache counts above input_tokens mean Anthropic-style input; the error says how to fix."""
        with pytest.raises(
            ValueError,
            match=re.escape(
                "'input_tokens' must include the cache reads and writes (OpenTelemetry "
                "convention), but cache_read_tokens (80) + cache_write_tokens (30) > "
                "input_tokens (100)"
            ),
        ):
            price_usage(
                "m", input_tokens=100, output_tokens=0, cache_read_tokens=80, cache_write_tokens=30
            )

    def test_reasoning_exceeds_output(self) -> None:
        """Reasoning tokens are part of output tokens, so they cannot exceed them."""
        with pytest.raises(
            ValueError,
            match=re.escape(
                "'output_tokens' must include the reasoning tokens (OpenTelemetry convention), "
                "but reasoning_tokens (11) > output_tokens (10)"
            ),
        ):
            price_usage("m", input_tokens=0, output_tokens=10, reasoning_tokens=11)

    @pytest.mark.parametrize(
        "name", ["input_tokens", "output_tokens", "cache_read_tokens", "reasoning_tokens"]
    )
    def test_negative(self, name: str) -> None:
        """A negative count is refused, naming it."""
        kwargs = {"input_tokens": 10, "output_tokens": 10, name: -1}
        with pytest.raises(ValueError, match=re.escape(f"{name!r} must be >= 0, got -1")):
            price_usage("m", **kwargs)


class TestRecordUsage:
    """The core's record_usage prices through this module."""

    def test_registered_price_charged_to_step(self) -> None:
        """A step is charged the registered price of its model."""
        register_price("claude-sonnet-4", **SONNET_4)
        with agentsteps.step_scope("s", model="claude-sonnet-4") as s:
            agentsteps.record_usage(
                input_tokens=100_000, output_tokens=2_000, cache_read_tokens=60_000
            )
            assert s.usage.cost_nano_usd == 168_000_000
            assert s.usage.unpriced_calls == 0

    def test_unknown_model_counted_unpriced(self, caplog: pytest.LogCaptureFixture) -> None:
        """An unknown model's calls cost 0 and are counted as unpriced."""
        with caplog.at_level(logging.WARNING, logger="agentsteps"), agentsteps.step_scope("s") as s:
            agentsteps.record_usage("mystery", input_tokens=10, output_tokens=10)
            agentsteps.record_usage("mystery", input_tokens=10, output_tokens=10)
            assert s.usage.cost_nano_usd == 0
            assert s.usage.unpriced_calls == 2
        assert len(caplog.records) == 1
