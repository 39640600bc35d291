"""The tracing variants under test, each configured so that no span leaves this process."""

from __future__ import annotations

import functools
import inspect
import os
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor, SpanExporter, SpanExportResult

__all__ = [
    "GROUPS",
    "DiscardExporter",
    "Impl",
    "Unavailable",
    "build_group",
]

Decorate = Callable[[Callable[..., Any]], Callable[..., Any]]

# The four attributes of the raw OpenTelemetry baseline: what a hand-written span for a step
# would carry at start (the same keys agentsteps sets first).
_RAW_ATTRIBUTE_COUNT = 4


class Unavailable(Exception):
    """A variant cannot run here (package missing, core not built yet)."""


class DiscardExporter(SpanExporter):
    """Accept spans and drop them, counting them so the report can show spans were made."""

    def __init__(self) -> None:
        self.count = 0

    def export(self, spans: Sequence[ReadableSpan]) -> SpanExportResult:
        self.count += len(spans)
        return SpanExportResult.SUCCESS

    def shutdown(self) -> None:
        pass

    def force_flush(self, timeout_millis: int = 30000) -> bool:
        return True


def _recording_provider() -> tuple[TracerProvider, DiscardExporter]:
    """A recording SDK provider whose spans go, one by one, to a discarding exporter."""
    exporter = DiscardExporter()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    return provider, exporter


@dataclass
class Impl:
    """One variant: how it decorates a function, and what it needs at the end."""

    name: str
    description: str
    decorate: Decorate
    exporter: DiscardExporter | None = None
    flush: Callable[[], None] = lambda: None
    # agentsteps only: the public API the record_usage case uses.
    api: Any = None
    config: dict[str, str] = field(default_factory=dict)
    # Under tracemalloc a call costs several times its usual time (a Langfuse call about
    # 1 ms): only agentsteps runs the full count; baselines and peers run a tenth of it.
    memory_divisor: int = 1

    def spans_exported(self) -> int | None:
        """Spans the variant handed to its exporter so far (None: it has none)."""
        self.flush()
        return None if self.exporter is None else self.exporter.count


def _otel_decorator(tracer: Any) -> Decorate:
    """A hand-written decorator around `start_as_current_span` with four attributes."""

    def decorate(fn: Callable[..., Any]) -> Callable[..., Any]:
        name = f"invoke_workflow {fn.__name__}"
        qualname = fn.__qualname__
        start = tracer.start_as_current_span
        if inspect.isasyncgenfunction(fn):
            msg = f"_otel_decorator: async generators are not benchmarked (got {fn!r})"
            raise TypeError(msg)
        if inspect.iscoroutinefunction(fn):

            @functools.wraps(fn)
            async def awrapper(*args: Any, **kwargs: Any) -> Any:
                with start(
                    name,
                    attributes={
                        "gen_ai.operation.name": "invoke_workflow",
                        "agentsteps.step.name": fn.__name__,
                        "agentsteps.step.function": qualname,
                        "agentsteps.step.error_boundary": "fail",
                    },
                ):
                    return await fn(*args, **kwargs)

            return awrapper
        if inspect.isgeneratorfunction(fn):

            @functools.wraps(fn)
            def gwrapper(*args: Any, **kwargs: Any) -> Any:
                with start(
                    name,
                    attributes={
                        "gen_ai.operation.name": "invoke_workflow",
                        "agentsteps.step.name": fn.__name__,
                        "agentsteps.step.function": qualname,
                        "agentsteps.step.error_boundary": "fail",
                    },
                ):
                    yield from fn(*args, **kwargs)

            return gwrapper

        @functools.wraps(fn)
        def wrapper(*args: Any, **kwargs: Any) -> Any:
            with start(
                name,
                attributes={
                    "gen_ai.operation.name": "invoke_workflow",
                    "agentsteps.step.name": fn.__name__,
                    "agentsteps.step.function": qualname,
                    "agentsteps.step.error_boundary": "fail",
                },
            ):
                return fn(*args, **kwargs)

        return wrapper

    return decorate


def bare() -> Impl:
    """The undecorated function: the floor every variant is measured against."""
    return Impl("bare", "undecorated function", lambda fn: fn, memory_divisor=10)


def otel_noop() -> Impl:
    """Raw `start_as_current_span` on the tracer a library gets when no SDK is installed."""
    from opentelemetry import trace

    provider = trace.get_tracer_provider()
    if not isinstance(provider, trace.ProxyTracerProvider):
        msg = f"otel-noop needs no global SDK provider (found {type(provider).__name__})"
        raise Unavailable(msg)
    tracer = trace.get_tracer("bench")
    return Impl(
        "otel-noop",
        f"raw start_as_current_span + {_RAW_ATTRIBUTE_COUNT} attributes, no SDK (ProxyTracer)",
        _otel_decorator(tracer),
        memory_divisor=10,
    )


def otel_sdk() -> Impl:
    """Raw `start_as_current_span` with a recording SDK provider."""
    provider, exporter = _recording_provider()
    tracer = provider.get_tracer("bench")
    return Impl(
        "otel-sdk",
        f"raw start_as_current_span + {_RAW_ATTRIBUTE_COUNT} attributes, SDK TracerProvider "
        "+ SimpleSpanProcessor + discarding exporter",
        _otel_decorator(tracer),
        exporter=exporter,
        memory_divisor=10,
    )


# The modules that have defined `configure`, newest first. compare.py measures older trees
# under this same harness, and the function moved: issue 18 took it (with `reset_defaults`)
# to the top of the package; at commit 4adfa33 and before it lived in `_core/config.py`.
_CONFIGURE_MODULES = ("agentsteps._configure", "agentsteps._core.config")


def _agentsteps() -> Any:
    import importlib

    try:
        import agentsteps
    except ImportError as exc:
        msg = f"agentsteps core not importable: {exc}"
        raise Unavailable(msg) from exc
    configure = None
    for module in _CONFIGURE_MODULES:
        try:
            configure = importlib.import_module(module).configure
        except (ImportError, AttributeError):
            continue
        break
    if configure is None:
        msg = f"agentsteps has no configure() in any of {_CONFIGURE_MODULES}"
        raise Unavailable(msg)
    for name in ("step", "record_usage", "Budget"):
        if not hasattr(agentsteps, name):
            msg = f"agentsteps has no {name!r} yet"
            raise Unavailable(msg)
    return agentsteps, configure


def step_sdk() -> Impl:
    """`@agentsteps.step` pointed at a recording SDK provider via `configure`."""
    agentsteps, configure = _agentsteps()
    provider, exporter = _recording_provider()
    configure(tracer_provider=provider)
    return Impl(
        "step-sdk",
        "@agentsteps.step, configure(tracer_provider=SDK provider + SimpleSpanProcessor "
        "+ discarding exporter)",
        agentsteps.step,
        exporter=exporter,
        api=agentsteps,
    )


def step_off() -> Impl:
    """`@agentsteps.step` with tracing off: no provider configured, no global SDK."""
    from opentelemetry import trace

    agentsteps, configure = _agentsteps()
    if not isinstance(trace.get_tracer_provider(), trace.ProxyTracerProvider):
        msg = "step-off needs no global SDK provider"
        raise Unavailable(msg)
    configure(tracer_provider=None)
    return Impl(
        "step-off",
        "@agentsteps.step, no provider configured and no global SDK provider",
        agentsteps.step,
        api=agentsteps,
    )


def _require(module: str) -> Any:
    import importlib

    try:
        return importlib.import_module(module)
    except ImportError as exc:
        msg = f"{module} not installed ({exc}); install the `bench` extra"
        raise Unavailable(msg) from exc


def traceloop() -> Impl:
    """traceloop-sdk `@task`: its own global provider, a discarding exporter, no batching."""
    env = {
        # Without a custom metrics/logging exporter these stay off anyway; explicit is safer.
        "TRACELOOP_METRICS_ENABLED": "false",
        "TRACELOOP_LOGGING_ENABLED": "false",
    }
    os.environ.update(env)
    sdk = _require("traceloop.sdk")
    decorators = _require("traceloop.sdk.decorators")
    exporter = DiscardExporter()
    sdk.Traceloop.init(
        app_name="bench",
        # A dead loopback port: were anything to bypass the custom exporter, it could not
        # leave the machine.
        api_endpoint="http://127.0.0.1:9",
        exporter=exporter,
        disable_batch=True,
        telemetry_enabled=False,
        # No LLM-library instrumentation: only the decorator is measured.
        instruments=set(),
    )
    from opentelemetry import trace

    provider = trace.get_tracer_provider()
    return Impl(
        "traceloop",
        "traceloop-sdk @task: Traceloop.init(exporter=discarding, disable_batch=True, "
        "instruments=set(), api_endpoint=127.0.0.1:9)",
        lambda fn: decorators.task(name=fn.__name__)(fn),
        exporter=exporter,
        flush=lambda: provider.force_flush(),  # type: ignore[attr-defined]
        config=env,
        memory_divisor=10,
    )


def langfuse() -> Impl:
    """Langfuse `@observe`: its own batch processor feeding a discarding exporter."""
    env = {
        "LANGFUSE_MEDIA_UPLOAD_ENABLED": "false",
        "LANGFUSE_TRACING_ENVIRONMENT": "bench",
    }
    os.environ.update(env)
    lf = _require("langfuse")
    exporter = DiscardExporter()
    client = lf.Langfuse(
        public_key="pk-lf-bench",
        secret_key="sk-lf-bench",
        # Dead loopback port: the API client has nowhere to go even if something calls it.
        base_url="http://127.0.0.1:9",
        span_exporter=exporter,
    )
    return Impl(
        "langfuse",
        "Langfuse @observe: Langfuse(span_exporter=discarding, base_url=127.0.0.1:9), "
        "its BatchSpanProcessor, media upload off",
        lambda fn: lf.observe()(fn),
        exporter=exporter,
        flush=client.flush,
        config=env,
        memory_divisor=10,
    )


def logfire() -> Impl:
    """Logfire `@instrument`: send_to_logfire=False, no console, a discarding processor."""
    env = {"LOGFIRE_SEND_TO_LOGFIRE": "false", "LOGFIRE_CONSOLE": "false"}
    os.environ.update(env)
    lf = _require("logfire")
    exporter = DiscardExporter()
    instance = lf.configure(
        send_to_logfire=False,
        console=False,
        metrics=False,
        # Fixed version: otherwise logfire asks git for the commit at configure time.
        service_name="bench",
        service_version="bench",
        additional_span_processors=[SimpleSpanProcessor(exporter)],
    )

    def decorate(fn: Callable[..., Any]) -> Callable[..., Any]:
        # allow_generator silences the warning; the span then covers the whole iteration.
        return instance.instrument(allow_generator=True)(fn)  # type: ignore[no-any-return]

    return Impl(
        "logfire",
        "Logfire @instrument: configure(send_to_logfire=False, console=False, metrics=False, "
        "additional_span_processors=[SimpleSpanProcessor(discarding)])",
        decorate,
        exporter=exporter,
        flush=lambda: instance.force_flush(),
        config=env,
        memory_divisor=10,
    )


PEERS: dict[str, Callable[[], Impl]] = {
    "traceloop": traceloop,
    "langfuse": langfuse,
    "logfire": logfire,
}

# Each group runs in its own process: peers install global providers, and "no SDK" must mean
# exactly that. Every comparison the targets make is between variants of one group.
GROUPS: dict[str, list[Callable[[], Impl]]] = {
    "off": [bare, otel_noop, step_off],
    "sdk": [bare, otel_sdk, step_sdk],
    **{f"peer-{name}": [bare, otel_sdk, step_sdk, factory] for name, factory in PEERS.items()},
}


def build_group(group: str) -> tuple[list[Impl], dict[str, str]]:
    """Set up a group's variants in order; the second value maps skipped variants to why."""
    impls: list[Impl] = []
    skipped: dict[str, str] = {}
    for factory in GROUPS[group]:
        try:
            impls.append(factory())
        except Unavailable as exc:
            skipped[factory.__name__.replace("_", "-")] = str(exc)
    return impls, skipped
