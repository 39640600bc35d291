"""What a `ScriptedModel` call answered, what it cost, and charging it to the call."""

from __future__ import annotations

from collections.abc import Mapping
from types import MappingProxyType

import attrs

from .._accounting.budget import NANOS_PER_USD
from .._accounting.rates import Price
from .._llm.call import LLMCall
from .tokens import Message, estimate_tokens

__all__ = [
    "DEFAULT_MODEL",
    "DEFAULT_PRICES",
    "Reply",
    "ScriptExhausted",
    "ScriptedCall",
    "price_reply",
    "record_reply",
]

DEFAULT_MODEL = "scripted-mini"
"""The model a `ScriptedModel` reports when neither the call nor the step names one."""

DEFAULT_PRICES: Mapping[str, Price] = MappingProxyType(
    {
        # Made-up models at the price points of today's small and large models, with the
        # usual 90% discount on cached input, so examples show realistic dollar figures.
        "scripted-mini": Price(
            input_per_mtok=0.25, output_per_mtok=1.25, cache_read_per_mtok=0.025
        ),
        "scripted-pro": Price(input_per_mtok=3.0, output_per_mtok=15.0, cache_read_per_mtok=0.3),
    }
)
"""Prices of the two made-up models examples use, in US dollars per million tokens."""


class ScriptExhausted(AssertionError):
    """
    A `ScriptedModel` was called more times than its script has replies.

    An `AssertionError`: in a test it means the code under test made more model calls
    than the test expected.
    """


@attrs.frozen
class Reply:
    """What a `ScriptedModel` call answered, with the usage it was charged."""

    text: str
    """The reply's text."""
    model: str
    """The model that answered."""
    input_tokens: int
    """Prompt tokens, cached ones included."""
    output_tokens: int
    """Reply tokens."""
    cache_read_tokens: int
    """Prompt tokens served from the simulated prompt cache."""
    cost_usd: float | None
    """The call's cost from the price table; ``None`` when the model is not in it (the
    call is then priced like any other, from `register_price` or the catalog)."""
    finish_reason: str = "stop"
    """``"stop"``, or ``"length"`` when ``max_output_tokens`` cut the reply short."""

    def __str__(self) -> str:
        return self.text


@attrs.frozen
class ScriptedCall:
    """One call a `ScriptedModel` received: what was asked and how it went."""

    index: int
    """1 for the model's first call, 2 for the next, ..."""
    model: str
    """The model the call asked for."""
    messages: tuple[Message, ...]
    """The prompt as chat messages, the model's ``system`` message first if it has one."""
    reply: Reply | None
    """The answer, or ``None`` when the call raised."""
    error: BaseException | None
    """The exception the script raised for this call, if any."""

    @property
    def prompt(self) -> str:
        """The content of the last message: what a plain-string prompt said."""
        return self.messages[-1]["content"] if self.messages else ""


def price_reply(
    prices: Mapping[str, Price], text: str, model: str, inp: int, cached: int, finish: str
) -> Reply:
    """
    The reply ``text`` with its usage: output tokens by the estimate, cost from ``prices``.

    Example:
        >>> price_reply(DEFAULT_PRICES, "LGTM", "scripted-mini", 13, 0, "stop").cost_usd
        4.5e-06
    """
    out = estimate_tokens(text)
    price = prices.get(model)
    cost = None
    if price is not None:
        usd_per_mtok = (
            (inp - cached) * price.input_per_mtok
            + cached * price.cache_read_per_mtok
            + out * price.output_per_mtok
        )
        cost = round(usd_per_mtok * 1000) / NANOS_PER_USD  # exact to the nano-dollar
    return Reply(text, model, inp, out, cached, cost, finish)


def record_reply(call: LLMCall, reply: Reply) -> None:
    """Report a reply's usage to its call, as a client reports what the provider said."""
    call.record(
        reply.input_tokens,
        reply.output_tokens,
        cache_read_tokens=reply.cache_read_tokens,
        cost_usd=reply.cost_usd,
        response_model=reply.model,
    )
