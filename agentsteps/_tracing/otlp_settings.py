"""
Where an OTLP exporter sends, from its arguments and the standard ``OTEL_EXPORTER_OTLP_*``
variables, per signal (traces, metrics), as the OpenTelemetry specification says.

Written here rather than taken from the exporters: they read the variables themselves only
when constructed without arguments, and agentsteps must know the destination first, to
report it and to check the arguments before anything is exported.
"""

from __future__ import annotations

import os
from typing import Literal
from urllib.parse import urlsplit

__all__ = ["PROTOCOLS", "env", "missing_exporter", "resolve_endpoint", "resolve_protocol"]

PROTOCOLS: tuple[str, ...] = ("grpc", "http/protobuf")
_DEFAULT_HTTP_BASE = "http://localhost:4318"
_DEFAULT_GRPC_ENDPOINT = "http://localhost:4317"

Signal = Literal["traces", "metrics"]


def env(name: str) -> str | None:
    """Return an environment variable, treating an empty value as unset (as the SDK does)."""
    value = os.environ.get(name, "").strip()
    return value or None


def resolve_protocol(protocol: str | None, signal: Signal) -> str:
    """Pick the OTLP protocol: argument, then the signal's variable, then the general one."""
    specific = f"OTEL_EXPORTER_OTLP_{signal.upper()}_PROTOCOL"
    for source, value in (
        ("protocol", protocol),
        (specific, env(specific)),
        ("OTEL_EXPORTER_OTLP_PROTOCOL", env("OTEL_EXPORTER_OTLP_PROTOCOL")),
    ):
        if value is None:
            continue
        if value not in PROTOCOLS:
            msg = f"{source} must be 'http/protobuf' or 'grpc' (got {value!r})"
            raise ValueError(msg)
        return value
    return "http/protobuf"


def resolve_endpoint(endpoint: str | None, protocol: str, signal: Signal) -> str:
    """
    Pick the OTLP endpoint.

    An explicit ``endpoint`` wins. For OTLP/HTTP, one without a path is a base URL and gets
    ``/v1/{signal}`` appended, like OTEL_EXPORTER_OTLP_ENDPOINT; one with a path is used as
    is, like OTEL_EXPORTER_OTLP_{SIGNAL}_ENDPOINT. gRPC endpoints are always used as is.
    """
    path = f"/v1/{signal}"
    http = protocol == "http/protobuf"
    if endpoint is not None:
        if http and urlsplit(endpoint).path in ("", "/"):
            return endpoint.rstrip("/") + path
        return endpoint
    if specific := env(f"OTEL_EXPORTER_OTLP_{signal.upper()}_ENDPOINT"):
        return specific
    base = env("OTEL_EXPORTER_OTLP_ENDPOINT")
    if not http:
        return base or _DEFAULT_GRPC_ENDPOINT
    return (base or _DEFAULT_HTTP_BASE).rstrip("/") + path


def missing_exporter(exc: ImportError, protocol: str) -> ModuleNotFoundError:
    """The error for an OTLP exporter that is not installed, naming the extra to install."""
    msg = (
        f"exporter='otlp' with protocol={protocol!r} needs the OTLP exporters, an optional "
        f"extra: pip install 'agentsteps[otlp]' (could not import {exc.name!r})"
    )
    return ModuleNotFoundError(msg, name=exc.name)
