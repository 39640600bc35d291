"""Tests for configure_tracing: choices, environment, provider handling, wire export, failures."""

from __future__ import annotations

import logging
import re
import socket
import sys
import threading
from collections.abc import Iterator
from concurrent import futures
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import grpc
import pytest
from opentelemetry import trace
from opentelemetry.proto.collector.trace.v1 import trace_service_pb2, trace_service_pb2_grpc
from opentelemetry.proto.common.v1.common_pb2 import AnyValue
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.util._once import Once

import agentsteps
from agentsteps._tracing.handle import TracingHandle
from agentsteps._tracing.otlp_settings import resolve_endpoint
from agentsteps._tracing.setup import configure_tracing

# --- fixtures -------------------------------------------------------------------------------


@pytest.fixture(autouse=True)
def _clean_otel_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    """Run every test without OTEL_* variables from the machine."""
    import os

    for name in list(os.environ):
        if name.startswith("OTEL_"):
            monkeypatch.delenv(name)


@pytest.fixture
def fresh_global(monkeypatch: pytest.MonkeyPatch) -> None:
    """Let a test install the global tracer provider, then restore the previous state.

    The OpenTelemetry API allows one global provider per process; OpenTelemetry's own test
    helpers reset these two module globals the same way.
    """
    monkeypatch.setattr(trace, "_TRACER_PROVIDER", None)
    monkeypatch.setattr(trace, "_TRACER_PROVIDER_SET_ONCE", Once())


@pytest.fixture
def handles() -> Iterator[list[TracingHandle]]:
    """Collect handles made by a test and shut them down afterwards."""
    made: list[TracingHandle] = []
    yield made
    for handle in made:
        handle.shutdown()


def _value(any_value: AnyValue) -> Any:
    """Decode an OTLP AnyValue to the Python value it carries."""
    kind = any_value.WhichOneof("value")
    if kind == "array_value":
        return [_value(item) for item in any_value.array_value.values]
    return getattr(any_value, kind) if kind else None


def _spans(requests: list[trace_service_pb2.ExportTraceServiceRequest]) -> list[dict[str, Any]]:
    """Flatten received OTLP requests to dicts with name, attributes and resource."""
    found = []
    for request in requests:
        for resource_spans in request.resource_spans:
            resource = {kv.key: _value(kv.value) for kv in resource_spans.resource.attributes}
            for scope_spans in resource_spans.scope_spans:
                for span in scope_spans.spans:
                    found.append(
                        {
                            "name": span.name,
                            "attributes": {kv.key: _value(kv.value) for kv in span.attributes},
                            "resource": resource,
                            "parent": span.parent_span_id.hex() or None,
                            "span_id": span.span_id.hex(),
                        }
                    )
    return found


class _Receiver:
    """Requests received by a loopback OTLP server."""

    def __init__(self) -> None:
        self.requests: list[trace_service_pb2.ExportTraceServiceRequest] = []
        self.paths: list[str] = []
        self.port = 0

    @property
    def spans(self) -> list[dict[str, Any]]:
        return _spans(self.requests)


@pytest.fixture
def http_receiver() -> Iterator[_Receiver]:
    """A loopback OTLP/HTTP receiver that accepts every POST and records it."""
    received = _Receiver()

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            body = self.rfile.read(int(self.headers["Content-Length"]))
            received.paths.append(self.path)
            received.requests.append(trace_service_pb2.ExportTraceServiceRequest.FromString(body))
            self.send_response(200)
            self.send_header("Content-Type", "application/x-protobuf")
            self.end_headers()
            self.wfile.write(trace_service_pb2.ExportTraceServiceResponse().SerializeToString())

        def log_message(self, format: str, *args: Any) -> None:
            pass  # Keep test output clean.

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    received.port = server.server_address[1]
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield received
    server.shutdown()
    server.server_close()


@pytest.fixture
def grpc_receiver() -> Iterator[_Receiver]:
    """A loopback OTLP/gRPC receiver that records every Export call."""
    received = _Receiver()

    class Service(trace_service_pb2_grpc.TraceServiceServicer):
        def Export(
            self, request: trace_service_pb2.ExportTraceServiceRequest, context: Any
        ) -> trace_service_pb2.ExportTraceServiceResponse:
            received.requests.append(request)
            return trace_service_pb2.ExportTraceServiceResponse()

    server = grpc.server(futures.ThreadPoolExecutor(max_workers=2))
    trace_service_pb2_grpc.add_TraceServiceServicer_to_server(Service(), server)  # type: ignore[no-untyped-call]
    received.port = server.add_insecure_port("127.0.0.1:0")
    server.start()
    yield received
    server.stop(grace=None)


def _closed_port() -> int:
    """Return a loopback port nothing listens on, so connections are refused."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _emit(provider: trace.TracerProvider, count: int = 1) -> None:
    """End `count` spans, each with one attribute of every scalar type."""
    tracer = provider.get_tracer("tests.export")
    with tracer.start_as_current_span("parent"):
        for index in range(count):
            with tracer.start_as_current_span(
                f"child {index}",
                attributes={"n": index, "cost": 0.25, "whole": 2.0, "ok": True, "who": "me"},
            ):
                pass


# --- argument and environment checks --------------------------------------------------------


class TestChoices:
    def test_unknown_exporter(self) -> None:
        """An unknown exporter name is rejected with the valid names listed."""
        with pytest.raises(
            ValueError,
            match=re.escape(
                "exporter must be one of 'console', 'jsonl', 'none', 'otlp' (got 'zipkin')"
            ),
        ):
            configure_tracing("svc", exporter="zipkin")  # type: ignore[arg-type]

    def test_unknown_protocol_argument(self) -> None:
        """An unknown protocol argument is rejected before anything is set up."""
        with pytest.raises(
            ValueError,
            match=re.escape("protocol must be one of 'grpc', 'http/protobuf' (got 'http/json')"),
        ):
            configure_tracing("svc", protocol="http/json")  # type: ignore[arg-type]

    def test_unknown_protocol_from_environment(
        self, monkeypatch: pytest.MonkeyPatch, handles: list[TracingHandle]
    ) -> None:
        """A protocol from the environment that we cannot serve names the variable."""
        monkeypatch.setenv("OTEL_EXPORTER_OTLP_PROTOCOL", "http/json")
        with pytest.raises(
            ValueError,
            match=re.escape(
                "OTEL_EXPORTER_OTLP_PROTOCOL must be 'http/protobuf' or 'grpc' (got 'http/json')"
            ),
        ):
            handles.append(configure_tracing(tracer_provider=TracerProvider()))

    def test_service_name_with_own_provider(self) -> None:
        """service_name cannot apply to a provider that already has its resource."""
        with pytest.raises(
            ValueError,
            match=re.escape("service_name and resource_attributes apply only to a tracer provider"),
        ):
            configure_tracing("svc", exporter="none", tracer_provider=TracerProvider())


class TestEndpointResolution:
    @pytest.mark.parametrize(
        ("endpoint", "protocol", "env", "expected"),
        [
            (None, "http/protobuf", {}, "http://localhost:4318/v1/traces"),
            (None, "grpc", {}, "http://localhost:4317"),
            ("http://h:4318", "http/protobuf", {}, "http://h:4318/v1/traces"),
            ("http://h:4318/", "http/protobuf", {}, "http://h:4318/v1/traces"),
            ("http://h:9/custom/path", "http/protobuf", {}, "http://h:9/custom/path"),
            ("http://h:4317", "grpc", {}, "http://h:4317"),
            (
                None,
                "http/protobuf",
                {"OTEL_EXPORTER_OTLP_ENDPOINT": "http://b:1/"},
                "http://b:1/v1/traces",
            ),
            (None, "grpc", {"OTEL_EXPORTER_OTLP_ENDPOINT": "http://b:1"}, "http://b:1"),
            (
                None,
                "http/protobuf",
                {
                    "OTEL_EXPORTER_OTLP_ENDPOINT": "http://b:1",
                    "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT": "http://t:2/x",
                },
                "http://t:2/x",
            ),
            (
                "http://arg:3",
                "http/protobuf",
                {"OTEL_EXPORTER_OTLP_TRACES_ENDPOINT": "http://t:2/x"},
                "http://arg:3/v1/traces",
            ),
            (
                None,
                "http/protobuf",
                {"OTEL_EXPORTER_OTLP_ENDPOINT": ""},
                "http://localhost:4318/v1/traces",
            ),
        ],
    )
    def test_precedence(
        self,
        monkeypatch: pytest.MonkeyPatch,
        endpoint: str | None,
        protocol: str,
        env: dict[str, str],
        expected: str,
    ) -> None:
        """Argument, then the traces variable (as is), then the general one (+ /v1/traces)."""
        for name, value in env.items():
            monkeypatch.setenv(name, value)
        assert resolve_endpoint(endpoint, protocol, "traces") == expected

    def test_protocol_precedence(
        self, monkeypatch: pytest.MonkeyPatch, handles: list[TracingHandle]
    ) -> None:
        """The traces protocol variable beats the general one; the argument beats both."""
        monkeypatch.setenv("OTEL_EXPORTER_OTLP_PROTOCOL", "http/protobuf")
        monkeypatch.setenv("OTEL_EXPORTER_OTLP_TRACES_PROTOCOL", "grpc")
        from_env = configure_tracing(tracer_provider=TracerProvider())
        handles.append(from_env)
        assert (from_env.protocol, from_env.destination) == ("grpc", "http://localhost:4317")
        from_arg = configure_tracing(tracer_provider=TracerProvider(), protocol="http/protobuf")
        handles.append(from_arg)
        assert from_arg.protocol == "http/protobuf"


class TestMissingExtra:
    @pytest.mark.parametrize(
        ("protocol", "module"),
        [
            ("http/protobuf", "opentelemetry.exporter.otlp.proto.http.trace_exporter"),
            ("grpc", "opentelemetry.exporter.otlp.proto.grpc.trace_exporter"),
        ],
    )
    def test_names_the_extra(
        self, monkeypatch: pytest.MonkeyPatch, protocol: str, module: str
    ) -> None:
        """Without the exporter package, asking for OTLP says which extra to install."""
        monkeypatch.setitem(sys.modules, module, None)
        with pytest.raises(
            ModuleNotFoundError,
            match=re.escape(
                f"exporter='otlp' with protocol={protocol!r} needs the OTLP exporters, an "
                f"optional extra: pip install 'agentsteps[otlp]' (could not import {module!r})"
            ),
        ):
            configure_tracing(tracer_provider=TracerProvider(), protocol=protocol)  # type: ignore[arg-type]

    def test_other_exporters_need_no_extra(
        self,
        monkeypatch: pytest.MonkeyPatch,
        handles: list[TracingHandle],
        capsys: pytest.CaptureFixture[str],
    ) -> None:
        """The console exporter works without the OTLP packages: a step's span is printed."""
        monkeypatch.setitem(
            sys.modules, "opentelemetry.exporter.otlp.proto.http.trace_exporter", None
        )
        handle = configure_tracing(exporter="console", tracer_provider=TracerProvider())
        handles.append(handle)
        assert handle.exporter == "console"

        @agentsteps.step(name="printed-without-otlp")
        def work() -> None:
            pass

        work()
        handle.force_flush()
        assert '"name": "invoke_workflow printed-without-otlp"' in capsys.readouterr().out


class TestSdkDisabled:
    @pytest.mark.parametrize("value", ["true", "TRUE", " True "])
    def test_sets_nothing_up(
        self, monkeypatch: pytest.MonkeyPatch, fresh_global: None, value: str
    ) -> None:
        """OTEL_SDK_DISABLED=true returns an inert handle and leaves the global provider alone."""
        monkeypatch.setenv("OTEL_SDK_DISABLED", value)
        handle = configure_tracing("svc")
        assert not handle.enabled
        assert handle.tracer_provider is None
        assert isinstance(trace.get_tracer_provider(), trace.ProxyTracerProvider)
        assert handle.force_flush()
        handle.shutdown()
        assert handle.dropped_spans == 0

    def test_other_values_do_not_disable(
        self, monkeypatch: pytest.MonkeyPatch, handles: list[TracingHandle]
    ) -> None:
        """Only "true" disables, as the specification says: "1" does not."""
        monkeypatch.setenv("OTEL_SDK_DISABLED", "1")
        handle = configure_tracing(exporter="none", tracer_provider=TracerProvider())
        handles.append(handle)
        assert handle.enabled


# --- resource and provider handling ---------------------------------------------------------


def _resource(handle: TracingHandle) -> dict[str, Any]:
    assert handle.tracer_provider is not None
    return dict(handle.tracer_provider.resource.attributes)


class TestResource:
    def test_environment_fills_in(
        self, monkeypatch: pytest.MonkeyPatch, fresh_global: None, handles: list[TracingHandle]
    ) -> None:
        """OTEL_SERVICE_NAME and OTEL_RESOURCE_ATTRIBUTES apply when no argument is given."""
        monkeypatch.setenv("OTEL_SERVICE_NAME", "from-env")
        monkeypatch.setenv("OTEL_RESOURCE_ATTRIBUTES", "deployment.environment=ci,team=agents")
        handle = configure_tracing(exporter="none")
        handles.append(handle)
        resource = _resource(handle)
        assert resource["service.name"] == "from-env"
        assert resource["deployment.environment"] == "ci"
        assert resource["team"] == "agents"

    def test_arguments_win(
        self, monkeypatch: pytest.MonkeyPatch, fresh_global: None, handles: list[TracingHandle]
    ) -> None:
        """Explicit service_name and resource_attributes win over the environment, as in the SDK."""
        monkeypatch.setenv("OTEL_SERVICE_NAME", "from-env")
        monkeypatch.setenv("OTEL_RESOURCE_ATTRIBUTES", "team=env,kept=yes")
        handle = configure_tracing(
            "from-arg", exporter="none", resource_attributes={"team": "arg", "count": 3}
        )
        handles.append(handle)
        resource = _resource(handle)
        assert (
            resource["service.name"],
            resource["team"],
            resource["kept"],
            resource["count"],
        ) == (
            "from-arg",
            "arg",
            "yes",
            3,
        )


class TestProviders:
    def test_installs_a_global_provider_when_none_exists(
        self, fresh_global: None, handles: list[TracingHandle]
    ) -> None:
        """With no global provider yet, a new SDK provider is created and installed."""
        handle = configure_tracing("svc", exporter="none")
        handles.append(handle)
        assert handle.installed_global
        assert trace.get_tracer_provider() is handle.tracer_provider

    def test_adds_to_an_existing_global_provider(
        self,
        fresh_global: None,
        handles: list[TracingHandle],
        caplog: pytest.LogCaptureFixture,
        http_receiver: _Receiver,
    ) -> None:
        """A global SDK provider installed earlier is kept; the exporter is added to it."""
        theirs = TracerProvider(resource=Resource.create({"service.name": "theirs"}))
        trace.set_tracer_provider(theirs)
        with caplog.at_level(logging.WARNING, logger="agentsteps.export"):
            handle = configure_tracing("mine", endpoint=f"http://127.0.0.1:{http_receiver.port}")
        handles.append(handle)
        assert trace.get_tracer_provider() is theirs
        assert handle.tracer_provider is theirs
        assert not handle.installed_global
        assert [r.getMessage() for r in caplog.records] == [
            "configure_tracing(): a global tracer provider was installed earlier; the exporter "
            "is added to it and its resource (service.name='theirs') is kept, so service_name "
            "and resource_attributes are ignored"
        ]
        _emit(theirs)
        handle.shutdown()
        assert {span["resource"]["service.name"] for span in http_receiver.spans} == {"theirs"}
        # The handle shut down its own processor only: the provider still works.
        assert theirs.get_tracer("t").start_span("later").is_recording()

    def test_refuses_a_foreign_global_provider(self, fresh_global: None) -> None:
        """A global provider that is not an SDK provider cannot take a processor: clear error."""
        trace.set_tracer_provider(trace.NoOpTracerProvider())
        with pytest.raises(
            RuntimeError,
            match=re.escape(
                "configure_tracing() cannot add an exporter to the global tracer provider "
                "installed earlier (opentelemetry.trace.NoOpTracerProvider): it is not an "
                "OpenTelemetry SDK TracerProvider."
            ),
        ):
            configure_tracing("svc", exporter="none")

    def test_explicit_provider_is_not_installed_globally(
        self, fresh_global: None, handles: list[TracingHandle]
    ) -> None:
        """tracer_provider=... gets the exporter and stays out of the global slot."""
        mine = TracerProvider()
        handle = configure_tracing(exporter="console", tracer_provider=mine)
        handles.append(handle)
        assert handle.tracer_provider is mine
        assert not handle.installed_global
        assert isinstance(trace.get_tracer_provider(), trace.ProxyTracerProvider)


# --- the handle -----------------------------------------------------------------------------


class TestHandle:
    def test_shutdown_flushes(self, http_receiver: _Receiver) -> None:
        """Spans still queued in the batch processor are delivered by shutdown()."""
        provider = TracerProvider()
        handle = configure_tracing(
            endpoint=f"http://127.0.0.1:{http_receiver.port}", tracer_provider=provider
        )
        _emit(provider, count=3)
        handle.shutdown()
        assert sorted(span["name"] for span in http_receiver.spans) == [
            "child 0",
            "child 1",
            "child 2",
            "parent",
        ]

    def test_context_manager_and_repeated_shutdown(
        self, http_receiver: _Receiver, caplog: pytest.LogCaptureFixture
    ) -> None:
        """The handle is a context manager; shutting down twice, or spans after it, are silent."""
        provider = TracerProvider()
        with configure_tracing(
            endpoint=f"http://127.0.0.1:{http_receiver.port}", tracer_provider=provider
        ) as handle:
            _emit(provider)
        with caplog.at_level(logging.DEBUG):
            handle.shutdown()
            _emit(provider)
        assert caplog.records == []
        assert len(http_receiver.spans) == 2

    def test_force_flush(self, http_receiver: _Receiver, handles: list[TracingHandle]) -> None:
        """force_flush() delivers what has ended so far without stopping the export."""
        provider = TracerProvider()
        handle = configure_tracing(
            endpoint=f"http://127.0.0.1:{http_receiver.port}/", tracer_provider=provider
        )
        handles.append(handle)
        _emit(provider)
        assert handle.force_flush()
        assert len(http_receiver.spans) == 2
        assert http_receiver.paths == ["/v1/traces"]

    def test_repr(self, handles: list[TracingHandle]) -> None:
        """The repr says what was set up."""
        handle = configure_tracing(exporter="none", tracer_provider=TracerProvider())
        handles.append(handle)
        assert repr(handle) == (
            "<TracingHandle exporter='none' destination=None protocol=None enabled=True>"
        )


# --- real wire export to loopback receivers -------------------------------------------------


class TestOtlpWire:
    def test_http_attribute_types_round_trip(self, http_receiver: _Receiver) -> None:
        """OTLP/HTTP delivers ints as ints, floats as floats (2.0 too), bools and strings."""
        provider = TracerProvider()
        handle = configure_tracing(
            endpoint=f"http://127.0.0.1:{http_receiver.port}", tracer_provider=provider
        )
        _emit(provider)
        handle.shutdown()
        (child,) = [span for span in http_receiver.spans if span["name"] == "child 0"]
        attributes = child["attributes"]
        assert attributes == {"n": 0, "cost": 0.25, "whole": 2.0, "ok": True, "who": "me"}
        assert [type(attributes[key]) for key in ("n", "cost", "whole", "ok", "who")] == [
            int,
            float,
            float,
            bool,
            str,
        ]

    def test_grpc_from_environment(
        self,
        monkeypatch: pytest.MonkeyPatch,
        grpc_receiver: _Receiver,
        fresh_global: None,
    ) -> None:
        """Protocol, endpoint and service name can all come from the standard variables."""
        monkeypatch.setenv("OTEL_EXPORTER_OTLP_PROTOCOL", "grpc")
        monkeypatch.setenv("OTEL_EXPORTER_OTLP_ENDPOINT", f"http://127.0.0.1:{grpc_receiver.port}")
        monkeypatch.setenv("OTEL_SERVICE_NAME", "grpc-env")
        handle = configure_tracing()
        assert (handle.protocol, handle.destination) == (
            "grpc",
            f"http://127.0.0.1:{grpc_receiver.port}",
        )
        _emit(trace.get_tracer_provider())
        handle.shutdown()
        spans = grpc_receiver.spans
        assert {span["resource"]["service.name"] for span in spans} == {"grpc-env"}
        parent = next(span for span in spans if span["name"] == "parent")
        child = next(span for span in spans if span["name"] == "child 0")
        assert child["parent"] == parent["span_id"]
        assert child["attributes"]["whole"] == 2.0
        assert isinstance(child["attributes"]["whole"], float)

    def test_traces_endpoint_variable_is_used_as_is(
        self, monkeypatch: pytest.MonkeyPatch, http_receiver: _Receiver
    ) -> None:
        """OTEL_EXPORTER_OTLP_TRACES_ENDPOINT is the full URL: no /v1/traces is appended."""
        url = f"http://127.0.0.1:{http_receiver.port}/custom/traces"
        monkeypatch.setenv("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT", url)
        provider = TracerProvider()
        handle = configure_tracing(tracer_provider=provider)
        _emit(provider)
        handle.shutdown()
        assert handle.destination == url
        assert set(http_receiver.paths) == {"/custom/traces"}


class TestConsole:
    def test_prints_spans_to_stdout(
        self, capsys: pytest.CaptureFixture[str], handles: list[TracingHandle]
    ) -> None:
        """exporter="console" prints each span as it ends to the current sys.stdout."""
        provider = TracerProvider()
        handle = configure_tracing(exporter="console", tracer_provider=provider)
        handles.append(handle)
        _emit(provider)
        out = capsys.readouterr().out
        assert '"name": "child 0"' in out
        assert '"name": "parent"' in out
        assert handle.destination == "stdout"


# --- exporter failure -----------------------------------------------------------------------


class TestEndpointDown:
    @pytest.mark.parametrize("protocol", ["http/protobuf", "grpc"])
    def test_one_warning_and_unchanged_results(
        self, caplog: pytest.LogCaptureFixture, protocol: str
    ) -> None:
        """With nothing listening, the program runs as before and one warning reports the drop."""
        provider = TracerProvider()
        handle = configure_tracing(
            endpoint=f"http://127.0.0.1:{_closed_port()}",
            protocol=protocol,  # type: ignore[arg-type]
            tracer_provider=provider,
            export_timeout=0.5,
        )
        with caplog.at_level(logging.DEBUG, logger="agentsteps.export"):
            tracer = provider.get_tracer("tests.export")
            total = 0
            for number in range(5):
                with tracer.start_as_current_span("work"):
                    total += number
            handle.shutdown()
        assert total == 10
        assert handle.dropped_spans == 5
        warnings = [r for r in caplog.records if r.levelno >= logging.WARNING]
        assert len(warnings) == 1, [r.getMessage() for r in warnings]
        (warning,) = warnings
        assert warning.name == "agentsteps.export"
        assert warning.getMessage().startswith(
            f"agentsteps dropped 5 span(s): export to {handle.destination} failed: "
        )
        assert warning.getMessage().endswith(
            "The program is not affected; later drops are counted in "
            "TracingHandle.dropped_spans and logged at DEBUG level only."
        )
