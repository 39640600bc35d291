"""
`configure` and `reset_defaults`: the process-wide options, set and put back.

At the top of the package (the features layer): putting everything back reaches every
layer that keeps process-wide state (settings, hooks, prices, metrics, warnings), so it
lives above them all instead of in `_core/config.py`, which the lower layers read.
"""

from __future__ import annotations

from opentelemetry.metrics import MeterProvider
from opentelemetry.trace import TracerProvider

from ._accounting.pricing import reset_pricing
from ._core.config import SETTINGS, TRACER_NAME, sampler_reads_attributes
from ._core.instruments import reset_metrics, set_meter_provider
from ._core.telemetry_log import reset_telemetry_log
from ._hooks.registry import clear_hooks
from ._instrument.request import reset_warnings
from ._version import __version__
from .stores import BudgetStore

__all__ = ["configure", "reset_defaults"]

_UNSET: object = object()
_UNPRICED = ("error", "warn", "ignore")


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
            else tracer_provider.get_tracer(TRACER_NAME, __version__)
        )
        SETTINGS.early_attributes = sampler_reads_attributes(tracer_provider)
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
    SETTINGS.__init__()  # type: ignore[misc]
    reset_metrics()
    reset_pricing()
    clear_hooks()
    reset_telemetry_log()
    reset_warnings()  # the once-per-step warnings about uncharged model traffic
