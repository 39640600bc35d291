"""Read token usage from the official provider SDKs' response objects, in agentsteps' usage model.

Nothing here imports a provider SDK: the readers look at the objects' fields, so
``import agentsteps.integrations`` works without the ``openai`` or ``anthropic`` extras.
"""

from __future__ import annotations

from typing import Any

import attrs

from .._core.recording import record_usage

__all__ = [
    "AnthropicStreamUsage",
    "OpenAIStreamUsage",
    "ProviderUsage",
    "anthropic_usage",
    "openai_usage",
    "record_anthropic",
    "record_openai",
]


def _non_negative(instance: object, attribute: attrs.Attribute[int], value: object) -> None:
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        msg = f"{attribute.name!r} must be an int >= 0, got {value!r}"
        raise ValueError(msg)


@attrs.frozen
class ProviderUsage:
    """The token usage of one model call, read from a provider's response.

    Counts follow the OpenTelemetry GenAI convention, whatever the provider reports:
    `input_tokens` includes the cache reads and writes, `output_tokens` includes the
    reasoning tokens.

    .. versionadded:: 0.1.0
    """

    model: str | None
    """The model the provider says answered (often a dated snapshot name), if known."""
    provider: str
    """The provider, as a GenAI ``gen_ai.provider.name``: ``"openai"`` or ``"anthropic"``."""
    input_tokens: int = attrs.field(validator=_non_negative)
    """All input tokens, cache reads and cache writes included."""
    output_tokens: int = attrs.field(validator=_non_negative)
    """All output tokens, reasoning tokens included."""
    cache_read_tokens: int = attrs.field(default=0, validator=_non_negative)
    """Input tokens read from the prompt cache."""
    cache_write_tokens: int = attrs.field(default=0, validator=_non_negative)
    """Input tokens written to the prompt cache."""
    reasoning_tokens: int = attrs.field(default=0, validator=_non_negative)
    """Output tokens spent on reasoning (or "thinking")."""

    @property
    def uncached_input_tokens(self) -> int:
        """Input tokens neither read from nor written to the cache."""
        return self.input_tokens - self.cache_read_tokens - self.cache_write_tokens

    def record_kwargs(self) -> dict[str, Any]:
        """The keyword arguments that pass this usage to `agentsteps.record_usage`."""
        return {
            "model": self.model,
            "input_tokens": self.input_tokens,
            "output_tokens": self.output_tokens,
            "cache_read_tokens": self.cache_read_tokens,
            "cache_write_tokens": self.cache_write_tokens,
            "reasoning_tokens": self.reasoning_tokens,
            "provider": self.provider,
        }

    def record(self, *, cost_usd: float | None = None) -> None:
        """Charge this usage, as one model call, to the current step (a no-op outside steps).

        Args:
            cost_usd: The call's cost if the provider reported it; `None` prices it from
                registered prices or the genai-prices catalog.
        """
        record_usage(**self.record_kwargs(), cost_usd=cost_usd, llm_calls=1)


def _field(obj: object, name: str) -> Any:
    """Read *name* from an SDK model or from its ``model_dump()`` dict; `None` if absent."""
    if isinstance(obj, dict):
        return obj.get(name)
    return getattr(obj, name, None)


def _has(obj: object, name: str) -> bool:
    """Whether an SDK model or its ``model_dump()`` dict has the field *name*, even if null."""
    if isinstance(obj, dict):
        return name in obj
    return hasattr(obj, name)


def _count(obj: object, name: str) -> int:
    """Read a token count that providers omit or send as null when it is zero."""
    value = _field(obj, name)
    return 0 if value is None else int(value)


# The readers import ProviderUsage from this module, so they come after it.
from .anthropic import AnthropicStreamUsage, anthropic_usage, record_anthropic  # noqa: E402
from .openai import OpenAIStreamUsage, openai_usage, record_openai  # noqa: E402
