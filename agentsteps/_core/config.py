"""
Process-wide settings: the global state department, and the tracer they select.

Everything agentsteps keeps for the whole process is here, so that tests can put it back
with `reset_defaults` (agentsteps/_configure.py, which also sets it: `configure`). This
module is in the state layer, read by every layer above; it imports none of them.
Everything else is context-local.
"""

from __future__ import annotations

import os
import re

from opentelemetry import trace
from opentelemetry.trace import NoOpTracerProvider, ProxyTracerProvider, Tracer, TracerProvider

from .._version import __version__

__all__ = ["SETTINGS", "get_tracer"]

TRACER_NAME = "agentsteps"
_UNSET: object = object()


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
        # to start_span. See sampler_reads_attributes.
        self.early_attributes = True
        # OTEL_PYTHON_TRACER_PROVIDER names a provider the API loads on first use.
        self.env_provider = "OTEL_PYTHON_TRACER_PROVIDER" in os.environ


SETTINGS = _Settings()


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
        SETTINGS.global_tracer = provider.get_tracer(TRACER_NAME, __version__)
        SETTINGS.early_attributes = sampler_reads_attributes(provider)
    return SETTINGS.global_tracer


# Samplers of the SDK that decide without looking at attributes, as their (public)
# descriptions spell them, e.g. the default
# "ParentBased{root:AlwaysOnSampler,remoteParentSampled:AlwaysOnSampler,...}".
_ATTRIBUTE_BLIND_SAMPLER = re.compile(
    r"(?:ParentBased\{|root:|remoteParentSampled:|remoteParentNotSampled:|localParentSampled:"
    r"|localParentNotSampled:|AlwaysOnSampler|AlwaysOffSampler"
    r"|TraceIdRatioBased\{[0-9.eE+-]+\}|,|\})+"
)


def sampler_reads_attributes(provider: object) -> bool:
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
