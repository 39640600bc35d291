"""
Process-wide settings: the global state department.

Everything agentsteps keeps for the whole process is here, so that tests can put it back
with `reset_defaults`. Everything else is context-local.
"""

from __future__ import annotations

import os
import re

from opentelemetry import trace
from opentelemetry.metrics import MeterProvider
from opentelemetry.trace import NoOpTracerProvider, ProxyTracerProvider, Tracer, TracerProvider

from .._hooks.registry import clear_hooks
from .._metrics.instruments import reset_metrics, set_meter_provider
from .._version import __version__
from .telemetry_log import reset_telemetry_log

__all__ = ["configure", "reset_defaults"]

_TRACER_NAME = "agentsteps"
_UNSET: object = object()
_UNPRICED = ("error", "warn", "ignore")


class _Settings:
    # A plain class, not attrs: read on every step call, so attribute access must be cheap.
    __slots__ = (
        "budget_store",
        "early_attributes",
        "env_provider",
        "global_provider",
        "global_tracer",
        "provider",
        "strict_hooks",
        "tracer",
        "unpriced",
    )

    def __init__(self) -> None:
        self.provider: TracerProvider | None = None
        self.tracer: Tracer | None = None
        # Cache for the global provider case: the provider we last saw and its tracer.
        self.global_provider: object = None
        self.global_tracer: Tracer | None = None
        self.strict_hooks = False
        # What a record of usage with no known price does: see configure(unpriced=...).
        self.unpriced = "error"
        # Where shared budgets that name no store keep their counters (None: in-process).
        self.budget_store: object = None
        # Whether the provider's sampler may read span attributes, so they must be passed
        # to start_span. See _sampler_reads_attributes.
        self.early_attributes = True
        # OTEL_PYTHON_TRACER_PROVIDER names a provider the API loads on first use.
        self.env_provider = "OTEL_PYTHON_TRACER_PROVIDER" in os.environ


SETTINGS = _Settings()


def configure(
    *,
    tracer_provider: TracerProvider | object | None = _UNSET,
    strict_hooks: bool | object = _UNSET,
    unpriced: str | object = _UNSET,
    budget_store: object = _UNSET,
    meter_provider: MeterProvider | object | None = _UNSET,
) -> None:
    """
    Set process-wide options of the library.

    Args:
        tracer_provider: The OpenTelemetry `TracerProvider` agentsteps creates its spans
            with. ``None`` (the default) means the global provider, whatever it is when a
            step runs; agentsteps never installs one itself (see `configure_tracing` for
            a helper that does, when you ask it to).
        strict_hooks: When ``True``, an exception raised by a hook handler propagates to
            the caller of the step instead of being logged.
        unpriced: What a record of usage with no cost and no known price does when a
            step it is charged to has a ``max_usd`` budget: ``"error"`` (the default)
            raises `UnpricedModelError` and charges nothing, since such a budget could
            never trip; ``"warn"`` charges it as $0, counts it in ``unpriced_calls`` and
            logs the model once; ``"ignore"`` does the same without the log. Without a
            dollar budget, ``"error"`` and ``"warn"`` both log once and charge $0.
        budget_store: The `agentsteps.stores.BudgetStore` that shared budgets
            (``Budget(shared_key=...)``) naming no ``store`` use, for example a
            ``RedisBudgetStore``. ``None`` (the default) is one in-process store.
        meter_provider: The OpenTelemetry `MeterProvider` agentsteps records its metrics
            with (docs/metrics.md). ``None`` (the default) means the global provider;
            with none configured anywhere, no metric is recorded and a step pays one
            cheap check.

    Example:
        >>> from opentelemetry.sdk.trace import TracerProvider
        >>> import agentsteps
        >>> agentsteps.configure(tracer_provider=TracerProvider())
        >>> agentsteps.reset_defaults()

    .. versionadded:: 0.1.0
    """
    if tracer_provider is not _UNSET:
        if tracer_provider is not None and not isinstance(tracer_provider, TracerProvider):
            msg = (
                "configure(): 'tracer_provider' must be an opentelemetry.trace.TracerProvider "
                f"or None (got {tracer_provider!r} of type {type(tracer_provider).__name__})"
            )
            raise TypeError(msg)
        SETTINGS.provider = tracer_provider
        SETTINGS.tracer = (
            None
            if tracer_provider is None
            else tracer_provider.get_tracer(_TRACER_NAME, __version__)
        )
        SETTINGS.early_attributes = _sampler_reads_attributes(tracer_provider)
        SETTINGS.global_provider = None
        SETTINGS.global_tracer = None
    if meter_provider is not _UNSET:
        if meter_provider is not None and not isinstance(meter_provider, MeterProvider):
            msg = (
                "configure(): 'meter_provider' must be an opentelemetry.metrics.MeterProvider "
                f"or None (got {meter_provider!r} of type {type(meter_provider).__name__})"
            )
            raise TypeError(msg)
        set_meter_provider(meter_provider)
    if strict_hooks is not _UNSET:
        if not isinstance(strict_hooks, bool):
            msg = f"configure(): 'strict_hooks' must be a bool (got {strict_hooks!r})"
            raise TypeError(msg)
        SETTINGS.strict_hooks = strict_hooks
    if unpriced is not _UNSET:
        if not isinstance(unpriced, str):
            msg = (
                "configure(): 'unpriced' must be 'error', 'warn' or 'ignore' "
                f"(got {unpriced!r} of type {type(unpriced).__name__})"
            )
            raise TypeError(msg)
        if unpriced not in _UNPRICED:
            msg = f"configure(): 'unpriced' must be 'error', 'warn' or 'ignore' (got {unpriced!r})"
            raise ValueError(msg)
        SETTINGS.unpriced = unpriced
    if budget_store is not _UNSET:
        from ..stores import BudgetStore  # here: a store module imports this one

        if budget_store is not None and not isinstance(budget_store, BudgetStore):
            msg = (
                "configure(): 'budget_store' must be a BudgetStore (agentsteps.stores."
                f"InProcessBudgetStore or RedisBudgetStore) or None (got {budget_store!r} "
                f"of type {type(budget_store).__name__})"
            )
            raise TypeError(msg)
        SETTINGS.budget_store = budget_store


def reset_defaults() -> None:
    """
    Put every process-wide option back to its default (tests call this between cases):
    the tracer and meter providers, strict hooks, what unpriced usage does, registered prices and
    registered hooks.

    .. versionadded:: 0.1.0
    """
    from .._accounting.pricing import (
        reset_pricing,
    )  # here, not at the top: pricing is optional weight
    from .._instrument.request import reset_warnings

    SETTINGS.__init__()  # type: ignore[misc]
    reset_metrics()
    reset_pricing()
    clear_hooks()
    reset_telemetry_log()
    reset_warnings()  # the once-per-step warnings about uncharged model traffic


def get_tracer() -> Tracer | None:
    """
    The tracer for agentsteps spans, or ``None`` when nothing would record them.

    With no SDK installed anywhere, returning ``None`` lets a step skip OpenTelemetry
    entirely: even its no-op path costs more than the rest of a step.
    """
    tracer = SETTINGS.tracer
    if tracer is not None:
        return tracer
    # Fast path for "no SDK anywhere": the API keeps the global provider in a module
    # attribute that stays None until one is set. Reading it skips the environment lookup
    # get_tracer_provider() makes on every call. Private, so fall back when it is absent.
    if getattr(trace, "_TRACER_PROVIDER", _UNSET) is None and not SETTINGS.env_provider:
        return None
    provider = trace.get_tracer_provider()
    if provider is SETTINGS.global_provider:
        return SETTINGS.global_tracer
    SETTINGS.global_provider = provider
    if isinstance(provider, (ProxyTracerProvider, NoOpTracerProvider)):
        SETTINGS.global_tracer = None
    else:
        SETTINGS.global_tracer = provider.get_tracer(_TRACER_NAME, __version__)
        SETTINGS.early_attributes = _sampler_reads_attributes(provider)
    return SETTINGS.global_tracer


# Samplers of the SDK that decide without looking at attributes, as their (public)
# descriptions spell them, e.g. the default
# "ParentBased{root:AlwaysOnSampler,remoteParentSampled:AlwaysOnSampler,...}".
_ATTRIBUTE_BLIND_SAMPLER = re.compile(
    r"(?:ParentBased\{|root:|remoteParentSampled:|remoteParentNotSampled:|localParentSampled:"
    r"|localParentNotSampled:|AlwaysOnSampler|AlwaysOffSampler"
    r"|TraceIdRatioBased\{[0-9.eE+-]+\}|,|\})+"
)


def _sampler_reads_attributes(provider: object) -> bool:
    """
    Whether spans must get their attributes at start for ``provider``'s sampler.

    Attributes passed to ``start_span`` cost about twice what the same attributes cost
    when set later (the SDK validates them for the sampler and again for the span), and
    they only matter to a sampler that reads them. When the sampler is known to ignore
    them (the SDK default included), agentsteps sets every attribute once, at the end.
    Unknown samplers get them at start.
    """
    sampler = getattr(provider, "sampler", None)
    describe = getattr(sampler, "get_description", None)
    if describe is None:
        return True
    try:
        description = describe()
    except Exception:
        return True
    return not (isinstance(description, str) and _ATTRIBUTE_BLIND_SAMPLER.fullmatch(description))
