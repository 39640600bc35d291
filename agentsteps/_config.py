"""
Process-wide settings: the global state department.

Everything agentsteps keeps for the whole process is here, so that tests can put it back
with `reset_defaults`. Everything else is context-local.
"""

from __future__ import annotations

from opentelemetry import trace
from opentelemetry.trace import NoOpTracerProvider, ProxyTracerProvider, Tracer, TracerProvider

from ._version import __version__

__all__ = ["configure", "reset_defaults"]

_TRACER_NAME = "agentsteps"
_UNSET: object = object()


class _Settings:
    # A plain class, not attrs: read on every step call, so attribute access must be cheap.
    __slots__ = ("global_provider", "global_tracer", "provider", "strict_hooks", "tracer")

    def __init__(self) -> None:
        self.provider: TracerProvider | None = None
        self.tracer: Tracer | None = None
        # Cache for the global provider case: the provider we last saw and its tracer.
        self.global_provider: object = None
        self.global_tracer: Tracer | None = None
        self.strict_hooks = False


SETTINGS = _Settings()


def configure(
    *,
    tracer_provider: TracerProvider | object | None = _UNSET,
    strict_hooks: bool | object = _UNSET,
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
        SETTINGS.global_provider = None
        SETTINGS.global_tracer = None
    if strict_hooks is not _UNSET:
        if not isinstance(strict_hooks, bool):
            msg = f"configure(): 'strict_hooks' must be a bool (got {strict_hooks!r})"
            raise TypeError(msg)
        SETTINGS.strict_hooks = strict_hooks


def reset_defaults() -> None:
    """
    Put every process-wide option back to its default (tests call this between cases).

    .. versionadded:: 0.1.0
    """
    SETTINGS.__init__()  # type: ignore[misc]


def get_tracer() -> Tracer | None:
    """
    The tracer for agentsteps spans, or ``None`` when nothing would record them.

    With no SDK installed anywhere, returning ``None`` lets a step skip OpenTelemetry
    entirely: even its no-op path costs more than the rest of a step.
    """
    tracer = SETTINGS.tracer
    if tracer is not None:
        return tracer
    provider = trace.get_tracer_provider()
    if provider is SETTINGS.global_provider:
        return SETTINGS.global_tracer
    SETTINGS.global_provider = provider
    if isinstance(provider, (ProxyTracerProvider, NoOpTracerProvider)):
        SETTINGS.global_tracer = None
    else:
        SETTINGS.global_tracer = provider.get_tracer(_TRACER_NAME, __version__)
    return SETTINGS.global_tracer


configure.__module__ = "agentsteps"
reset_defaults.__module__ = "agentsteps"
