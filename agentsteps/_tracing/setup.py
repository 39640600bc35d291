"""`configure_tracing`: one call that sends an application's spans to OTLP, stdout or a file."""

from __future__ import annotations

import logging
import os
from collections.abc import Mapping
from typing import Literal

from opentelemetry import trace
from opentelemetry.sdk.resources import SERVICE_NAME, Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.util.types import AttributeValue

from .._configure import configure
from .exporters import build_processor
from .handle import TracingHandle
from .otlp_settings import PROTOCOLS, env

__all__ = ["ExporterName", "Protocol", "configure_tracing"]

logger = logging.getLogger("agentsteps.export")

ExporterName = Literal["otlp", "console", "jsonl", "none"]
"""Where `configure_tracing` sends spans."""
Protocol = Literal["http/protobuf", "grpc"]
"""The OTLP transports `configure_tracing` supports."""

_EXPORTERS: tuple[str, ...] = ("console", "jsonl", "none", "otlp")


def _sdk_disabled() -> bool:
    """Whether OTEL_SDK_DISABLED asks for no SDK at all (only "true", any case, counts)."""
    return (env("OTEL_SDK_DISABLED") or "").lower() == "true"


def _check_choice(name: str, value: object, choices: tuple[str, ...]) -> None:
    """Raise ValueError naming the argument, the valid values and the value received."""
    if value not in choices:
        listed = ", ".join(repr(choice) for choice in choices)
        msg = f"{name} must be one of {listed} (got {value!r})"
        raise ValueError(msg)


def _check_arguments(
    service_name: object,
    endpoint: object,
    resource_attributes: object,
    jsonl_path: object,
    export_timeout: object,
) -> None:
    """Refuse arguments of the wrong kind up front, naming them (nothing is ignored)."""
    what = "configure_tracing()"
    for name, value in (("service_name", service_name), ("endpoint", endpoint)):
        if value is not None and not isinstance(value, str):
            got = f"{value!r} of type {type(value).__name__}"
            msg = f"{what}: {name!r} must be a str or None (got {got})"
            raise TypeError(msg)
        if isinstance(value, str) and not value.strip():
            msg = f"{what}: {name!r} must be a non-empty str or None (got {value!r})"
            raise ValueError(msg)
    if resource_attributes is not None and not isinstance(resource_attributes, Mapping):
        msg = (
            f"{what}: 'resource_attributes' must be a mapping of attribute names to values "
            f"or None (got {resource_attributes!r} of type {type(resource_attributes).__name__})"
        )
        raise TypeError(msg)
    if jsonl_path is not None and not isinstance(jsonl_path, (str, os.PathLike)):
        msg = (
            f"{what}: 'jsonl_path' must be a str or os.PathLike or None "
            f"(got {jsonl_path!r} of type {type(jsonl_path).__name__})"
        )
        raise TypeError(msg)
    if export_timeout is not None:
        if isinstance(export_timeout, bool) or not isinstance(export_timeout, (int, float)):
            msg = (
                f"{what}: 'export_timeout' must be a number of seconds or None "
                f"(got {export_timeout!r} of type {type(export_timeout).__name__})"
            )
            raise TypeError(msg)
        if not 0 < export_timeout < float("inf"):  # also refuses NaN
            msg = (
                f"{what}: 'export_timeout' must be > 0 seconds and finite (got {export_timeout!r})"
            )
            raise ValueError(msg)


def _existing_global_provider() -> trace.TracerProvider | None:
    """Return the global tracer provider if someone installed one, else None."""
    provider = trace.get_tracer_provider()
    return None if isinstance(provider, trace.ProxyTracerProvider) else provider


def configure_tracing(
    service_name: str | None = None,
    *,
    exporter: ExporterName = "otlp",
    endpoint: str | None = None,
    protocol: Protocol | None = None,
    tracer_provider: TracerProvider | None = None,
    resource_attributes: Mapping[str, AttributeValue] | None = None,
    jsonl_path: str | os.PathLike[str] | None = None,
    export_timeout: float | None = None,
) -> TracingHandle:
    """Set up the OpenTelemetry SDK so an application's spans reach a backend, stdout or a file.

    This is for applications, examples and scripts; the library itself never calls it and
    never configures the SDK on import. Explicit arguments win; the standard environment
    variables fill in whatever is left as None:

    - ``OTEL_SDK_DISABLED=true``: nothing is set up; the handle is inert (``enabled`` False).
    - ``OTEL_SERVICE_NAME`` and ``OTEL_RESOURCE_ATTRIBUTES``: the resource, under
      ``service_name`` and ``resource_attributes``.
    - ``OTEL_EXPORTER_OTLP_TRACES_ENDPOINT`` (used as is), then ``OTEL_EXPORTER_OTLP_ENDPOINT``
      (OTLP/HTTP appends ``/v1/traces``); default ``http://localhost:4318/v1/traces``, or
      ``http://localhost:4317`` for gRPC.
    - ``OTEL_EXPORTER_OTLP_TRACES_PROTOCOL``, then ``OTEL_EXPORTER_OTLP_PROTOCOL``; default
      ``http/protobuf``.
    - The OTLP exporters read headers, TLS settings, compression and
      ``OTEL_EXPORTER_OTLP[_TRACES]_TIMEOUT`` (seconds in Python) themselves.

    agentsteps creates its spans with the global provider unless
    ``agentsteps.configure(tracer_provider=...)`` chose another one.
    A global tracer provider installed earlier (by the application, another library or
    auto-instrumentation) is never replaced: the exporter is added to it as one more span
    processor, and its resource is kept, so ``service_name`` and ``resource_attributes`` are
    ignored with a warning. Otherwise a new SDK provider is created and installed globally.

    An export that fails never reaches the program: its spans are dropped and counted in
    `TracingHandle.dropped_spans`, and the first drop logs one warning on the
    ``agentsteps.export`` logger. At exit, a dead endpoint costs at most about one export
    timeout.

    Args:
        service_name: ``service.name`` of the resource.
        exporter: ``"otlp"`` (needs ``pip install 'agentsteps[otlp]'``), ``"console"``
            (stdout), ``"jsonl"`` (see docs/jsonl-format.md) or ``"none"`` (spans are made
            but not exported).
        endpoint: OTLP endpoint. For ``http/protobuf`` a URL without a path is a base URL and
            gets ``/v1/traces`` appended. For ``grpc`` use ``http://host:4317`` for plaintext.
        protocol: ``"http/protobuf"`` or ``"grpc"``.
        tracer_provider: Add the exporter to this SDK provider instead of the global one. It
            is not installed globally; agentsteps is told to use it (`configure`).
        resource_attributes: Extra resource attributes, e.g. ``{"deployment.environment":
            "dev"}`` or ``{"openinference.project.name": "demo"}`` for Phoenix.
        jsonl_path: File for ``exporter="jsonl"``, default `DEFAULT_JSONL_PATH` in the current
            directory.
        export_timeout: Seconds one OTLP export may take, retries included.

    Returns:
        A handle; its `TracingHandle.shutdown` flushes and stops the export.

    Raises:
        ValueError: For an unknown ``exporter`` or ``protocol`` (also when it comes from the
            environment), or ``service_name``/``resource_attributes`` together with
            ``tracer_provider``.
        ModuleNotFoundError: ``exporter="otlp"`` without the ``otlp`` extra installed.
        RuntimeError: The global tracer provider installed earlier cannot take a span
            processor (it is not an SDK provider).
        OSError: The JSONL file cannot be opened.

    .. versionadded:: 0.1.0
    """
    _check_choice("exporter", exporter, _EXPORTERS)
    if protocol is not None:
        _check_choice("protocol", protocol, PROTOCOLS)
    _check_arguments(service_name, endpoint, resource_attributes, jsonl_path, export_timeout)
    if tracer_provider is not None and (service_name is not None or resource_attributes):
        msg = (
            "service_name and resource_attributes apply only to a tracer provider that "
            "configure_tracing() creates; with tracer_provider=..., set them on the Resource "
            "you give that provider"
        )
        raise ValueError(msg)
    if _sdk_disabled():
        logger.debug("OTEL_SDK_DISABLED is true: configure_tracing() sets nothing up")
        return TracingHandle(
            exporter=exporter,
            destination=None,
            protocol=None,
            tracer_provider=None,
            owns_provider=False,
            installed_global=False,
            guard=None,
            processor=None,
        )

    target: TracerProvider
    owns_provider = installed_global = False
    if tracer_provider is not None:
        target = tracer_provider
        # A provider outside the global slot is invisible to agentsteps unless it is told.
        configure(tracer_provider=tracer_provider)
    else:
        existing = _existing_global_provider()
        if existing is None:
            attributes: dict[str, AttributeValue] = dict(resource_attributes or {})
            if service_name is not None:
                attributes[SERVICE_NAME] = service_name
            # Resource.create adds OTEL_RESOURCE_ATTRIBUTES and OTEL_SERVICE_NAME under ours.
            target = TracerProvider(resource=Resource.create(attributes), shutdown_on_exit=False)
            owns_provider = True
        elif isinstance(existing, TracerProvider):
            target = existing
            if service_name is not None or resource_attributes:
                logger.warning(
                    "configure_tracing(): a global tracer provider was installed earlier; the "
                    "exporter is added to it and its resource (service.name=%r) is kept, so "
                    "service_name and resource_attributes are ignored",
                    existing.resource.attributes.get(SERVICE_NAME),
                )
        else:
            msg = (
                "configure_tracing() cannot add an exporter to the global tracer provider "
                f"installed earlier ({type(existing).__module__}.{type(existing).__qualname__}): "
                "it is not an OpenTelemetry SDK TracerProvider. Pass tracer_provider=... or "
                "add the exporter to that provider yourself."
            )
            raise RuntimeError(msg)

    processor, guard, destination, resolved_protocol = build_processor(
        exporter,
        endpoint=endpoint,
        protocol=protocol,
        jsonl_path=jsonl_path,
        export_timeout=export_timeout,
    )
    if processor is not None:
        target.add_span_processor(processor)
    if owns_provider:
        trace.set_tracer_provider(target)
        installed_global = trace.get_tracer_provider() is target
    return TracingHandle(
        exporter=exporter,
        destination=destination,
        protocol=resolved_protocol,
        tracer_provider=target,
        owns_provider=owns_provider,
        installed_global=installed_global,
        guard=guard,
        processor=processor,
    )


# Public names report the package, so tracebacks and reprs show agentsteps.configure_tracing.
