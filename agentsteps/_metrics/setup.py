"""`configure_metrics`: send agentsteps' metrics (and any others) to OTLP, Prometheus or stdout."""

from __future__ import annotations

import atexit
import logging
import sys
from types import TracebackType
from typing import Any, Literal

from opentelemetry import metrics
from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.metrics.export import (
    ConsoleMetricExporter,
    MetricReader,
    PeriodicExportingMetricReader,
)
from opentelemetry.sdk.resources import Resource

from .._configure import configure
from .._core.instruments import STATE
from .._core.locks import new_lock
from .._tracing.otlp_settings import (
    PROTOCOLS,
    env,
    missing_exporter,
    resolve_endpoint,
    resolve_protocol,
)

__all__ = ["MetricsExporterName", "MetricsHandle", "configure_metrics", "metrics_exporter_from_env"]

logger = logging.getLogger("agentsteps.export")

MetricsExporterName = Literal["otlp", "prometheus", "console", "none"]
"""Where `configure_metrics` sends metrics."""

_EXPORTERS: tuple[str, ...] = ("console", "none", "otlp", "prometheus")


def metrics_exporter_from_env() -> str | None:
    """
    The metrics exporter the standard variables ask for, or ``None`` when they ask for none:
    the first known name in ``OTEL_METRICS_EXPORTER``, else ``"otlp"`` when an OTLP endpoint
    variable (``OTEL_EXPORTER_OTLP_METRICS_ENDPOINT`` or ``OTEL_EXPORTER_OTLP_ENDPOINT``) is
    set. What ``agentsteps run`` uses.
    """
    chosen = (env("OTEL_METRICS_EXPORTER") or "").lower()
    for name in (n.strip() for n in chosen.split(",")):
        if name in _EXPORTERS:
            return None if name == "none" else name
    if env("OTEL_EXPORTER_OTLP_METRICS_ENDPOINT") or env("OTEL_EXPORTER_OTLP_ENDPOINT"):
        return "otlp"
    return None


def _otlp_reader(endpoint: str, protocol: str, interval_ms: float | None) -> MetricReader:
    try:
        if protocol == "grpc":
            from opentelemetry.exporter.otlp.proto.grpc.metric_exporter import (
                OTLPMetricExporter as GrpcExporter,
            )
        else:
            from opentelemetry.exporter.otlp.proto.http.metric_exporter import (
                OTLPMetricExporter as HttpExporter,
            )
    except ImportError as exc:
        raise missing_exporter(exc, protocol) from exc
    exporter: Any = (
        GrpcExporter(endpoint=endpoint) if protocol == "grpc" else HttpExporter(endpoint=endpoint)
    )
    return PeriodicExportingMetricReader(exporter, export_interval_millis=interval_ms)


def _prometheus_reader() -> tuple[MetricReader, Any, str]:
    """A Prometheus reader on its own registry, served over HTTP where the variables say."""
    try:
        from opentelemetry.exporter.prometheus import PrometheusMetricReader
        from prometheus_client import CollectorRegistry, start_http_server
    except ImportError as exc:
        msg = (
            "exporter='prometheus' needs the Prometheus exporter, an optional extra: "
            f"pip install 'agentsteps[metrics]' (could not import {exc.name!r})"
        )
        raise ModuleNotFoundError(msg, name=exc.name) from exc
    host = env("OTEL_EXPORTER_PROMETHEUS_HOST") or "localhost"
    raw_port = env("OTEL_EXPORTER_PROMETHEUS_PORT") or "9464"
    try:
        port = int(raw_port)
    except ValueError:
        msg = f"OTEL_EXPORTER_PROMETHEUS_PORT must be a port number (got {raw_port!r})"
        raise ValueError(msg) from None
    registry = CollectorRegistry(auto_describe=True)
    reader = PrometheusMetricReader(registry=registry)
    server, _thread = start_http_server(port, addr=host, registry=registry)
    return reader, server, f"http://{host}:{server.server_port}/metrics"


class MetricsHandle:
    """What `configure_metrics` set up; `shutdown` exports the last figures and stops it.

    .. versionadded:: 0.1.0
    """

    def __init__(
        self,
        *,
        exporter: str,
        destination: str | None,
        meter_provider: MeterProvider | None,
        installed_global: bool,
        server: Any = None,
    ) -> None:
        self.exporter = exporter
        """``"otlp"``, ``"prometheus"``, ``"console"`` or ``"none"``."""
        self.destination = destination
        """The OTLP URL, the Prometheus scrape URL, ``"stdout"``, or None."""
        self.meter_provider = meter_provider
        """The SDK meter provider; None when OTEL_SDK_DISABLED made this call inert."""
        self.installed_global = installed_global
        """Whether `meter_provider` was installed as the global OpenTelemetry one."""
        self._server = server
        self._lock = new_lock()  # fork-safe: see _core/locks.py
        self._shut_down = False
        if meter_provider is not None:
            atexit.register(self.shutdown)

    @property
    def enabled(self) -> bool:
        """False when OTEL_SDK_DISABLED made `configure_metrics` set nothing up."""
        return self.meter_provider is not None

    def force_flush(self, timeout_millis: int = 30000) -> bool:
        """Collect and export the figures now; True on success (or nothing to do)."""
        if self.meter_provider is None:
            return True
        return self.meter_provider.force_flush(timeout_millis)

    def shutdown(self) -> None:
        """Export the last figures, stop exporting (and serving). Calling it again does nothing."""
        with self._lock:
            if self._shut_down:
                return
            self._shut_down = True
        atexit.unregister(self.shutdown)
        # agentsteps was told to use this provider: stop it recording into a dead one.
        if (
            self.meter_provider is not None
            and not self.installed_global
            and STATE.provider is self.meter_provider
        ):
            configure(meter_provider=None)
        if self.meter_provider is not None:
            self.meter_provider.shutdown()
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()

    def __enter__(self) -> MetricsHandle:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.shutdown()

    def __repr__(self) -> str:
        return (
            f"<MetricsHandle exporter={self.exporter!r} destination={self.destination!r} "
            f"enabled={self.enabled}>"
        )


def configure_metrics(
    exporter: MetricsExporterName | None = None,
    *,
    endpoint: str | None = None,
    protocol: Literal["http/protobuf", "grpc"] | None = None,
    export_interval: float | None = None,
    resource: Resource | None = None,
) -> MetricsHandle:
    """Set up an OpenTelemetry meter provider so agentsteps' metrics reach a backend.

    The sibling of `configure_tracing`, for applications and scripts (the library never
    calls it). Explicit arguments win; the standard variables fill in the rest:

    - ``OTEL_SDK_DISABLED=true``: nothing is set up (``enabled`` False).
    - ``OTEL_METRICS_EXPORTER``: ``otlp`` (the default), ``prometheus``, ``console``, ``none``.
    - ``OTEL_EXPORTER_OTLP_METRICS_ENDPOINT`` (as is), then ``OTEL_EXPORTER_OTLP_ENDPOINT``
      (OTLP/HTTP appends ``/v1/metrics``); ``OTEL_EXPORTER_OTLP_[METRICS_]PROTOCOL``;
      ``OTEL_METRIC_EXPORT_INTERVAL`` (milliseconds) when ``export_interval`` is None.
    - ``OTEL_EXPORTER_PROMETHEUS_HOST`` / ``_PORT`` (default ``localhost:9464``): where the
      ``prometheus`` exporter serves ``/metrics`` for Prometheus to scrape.
    - ``OTEL_SERVICE_NAME`` / ``OTEL_RESOURCE_ATTRIBUTES``: the resource, unless given.

    A new SDK meter provider is created. It becomes the global one when none was installed
    (so instrumented libraries' metrics go along); otherwise agentsteps is told to use it
    (``configure(meter_provider=...)``) and the global one is left alone.

    Args:
        exporter: Where the metrics go; None reads ``OTEL_METRICS_EXPORTER``.
        endpoint: OTLP endpoint; for ``http/protobuf`` a URL without a path is a base URL.
        protocol: ``"http/protobuf"`` or ``"grpc"``.
        export_interval: Seconds between two OTLP or console exports.
        resource: The resource of the metrics (default: from the variables).

    Returns:
        A handle; its `MetricsHandle.shutdown` exports the last figures and stops.

    Raises:
        ValueError: An unknown exporter or protocol (also from the variables), or an
            ``export_interval`` that is not a positive number of seconds.
        ModuleNotFoundError: The exporter's optional extra is not installed.
        OSError: The Prometheus port cannot be bound.

    .. versionadded:: 0.1.0
    """
    if exporter is None:
        chosen = (env("OTEL_METRICS_EXPORTER") or "otlp").lower()
        names = [name.strip() for name in chosen.split(",")]
        picked: Any = next((n for n in names if n in _EXPORTERS), chosen)
        exporter = picked
    if exporter not in _EXPORTERS:
        listed = ", ".join(repr(name) for name in _EXPORTERS)
        msg = f"configure_metrics(): 'exporter' must be one of {listed} (got {exporter!r})"
        raise ValueError(msg)
    if protocol is not None and protocol not in PROTOCOLS:
        msg = (
            f"configure_metrics(): 'protocol' must be 'http/protobuf' or 'grpc' (got {protocol!r})"
        )
        raise ValueError(msg)
    interval_ms: float | None = None
    if export_interval is not None:
        if isinstance(export_interval, bool) or not isinstance(export_interval, (int, float)):
            msg = (
                "configure_metrics(): 'export_interval' must be a number of seconds "
                f"(got {export_interval!r} of type {type(export_interval).__name__})"
            )
            raise TypeError(msg)
        if not 0 < export_interval < float("inf"):
            msg = (
                "configure_metrics(): 'export_interval' must be > 0 seconds and finite "
                f"(got {export_interval!r})"
            )
            raise ValueError(msg)
        interval_ms = export_interval * 1000
    if (env("OTEL_SDK_DISABLED") or "").lower() == "true":
        return MetricsHandle(
            exporter=exporter, destination=None, meter_provider=None, installed_global=False
        )
    readers: list[MetricReader] = []
    server = None
    destination: str | None = None
    if exporter == "otlp":
        resolved = resolve_protocol(protocol, "metrics")
        destination = resolve_endpoint(endpoint, resolved, "metrics")
        readers.append(_otlp_reader(destination, resolved, interval_ms))
    elif exporter == "prometheus":
        reader, server, destination = _prometheus_reader()
        readers.append(reader)
    elif exporter == "console":
        destination = "stdout"
        readers.append(
            PeriodicExportingMetricReader(
                ConsoleMetricExporter(out=sys.stdout), export_interval_millis=interval_ms
            )
        )
    provider = MeterProvider(
        metric_readers=readers,
        resource=Resource.create() if resource is None else resource,
        shutdown_on_exit=False,
    )
    installed = False
    if getattr(getattr(metrics, "_internal", None), "_METER_PROVIDER", None) is None:
        metrics.set_meter_provider(provider)
        installed = metrics.get_meter_provider() is provider
    if not installed:
        configure(meter_provider=provider)
    return MetricsHandle(
        exporter=exporter,
        destination=destination,
        meter_provider=provider,
        installed_global=installed,
        server=server,
    )
