"""
agentsteps: accountable LLM agent steps.

Decorate agent functions with `step` and `persona`; every call then knows which persona
ran it, which model it used, what it spent against its `Budget`, and how it ended, and
shows up as an OpenTelemetry span.

    >>> from agentsteps import Budget, persona, record_usage, step
    >>> @step(model="claude-haiku-4-5", budget=Budget(max_tokens=2_000, max_usd=0.05))
    ... def summarize(pr):
    ...     record_usage(input_tokens=812, output_tokens=95, cost_usd=0.0012)
    ...     return f"summary of {pr}"
    >>> @persona(name="reviewer")
    ... def review(pr):
    ...     return summarize(pr)
    >>> review("#42")
    'summary of #42'
"""

import importlib as _importlib
import typing as _typing

from ._accounting.budget import Budget as Budget
from ._accounting.budget import ErrorBoundary as ErrorBoundary
from ._accounting.catalog import preload_prices as preload_prices
from ._accounting.rates import Price as Price
from ._accounting.registrations import override_price as override_price
from ._accounting.registrations import register_price as register_price
from ._accounting.registrations import registered_price as registered_price
from ._accounting.registrations import unregister_price as unregister_price
from ._accounting.usage import Usage as Usage
from ._configure import configure as configure
from ._configure import reset_defaults as reset_defaults
from ._core.context import ActivePersona as ActivePersona
from ._core.context import ActiveStep as ActiveStep
from ._core.context import current_model as current_model
from ._core.context import current_persona as current_persona
from ._core.context import current_step as current_step
from ._core.persona import persona as persona
from ._core.persona import persona_scope as persona_scope
from ._core.recording import record_usage as record_usage
from ._core.records import CompletedPersona as CompletedPersona
from ._core.records import CompletedStep as CompletedStep
from ._core.records import Run as Run
from ._core.records import StepStatus as StepStatus
from ._core.records import run as run
from ._core.step import step as step
from ._core.step import step_scope as step_scope
from ._core.threads import ContextThreadPoolExecutor as ContextThreadPoolExecutor
from ._core.threads import run_in_context as run_in_context
from ._distributed.outgoing import inject as inject
from ._distributed.outgoing import remaining_budget as remaining_budget
from ._distributed.remote import remote_parent as remote_parent
from ._distributed.remote import with_remote_parent as with_remote_parent
from ._distributed.remote_usage import record_remote_usage as record_remote_usage
from ._distributed.remote_usage import usage_headers as usage_headers
from ._hooks.api import on_persona as on_persona
from ._hooks.api import on_step as on_step
from ._hooks.events import HookContext as HookContext
from ._hooks.events import HookEvent as HookEvent
from ._hooks.registry import HookHandle as HookHandle
from ._hooks.registry import scoped_hooks as scoped_hooks
from ._instrument.anthropic import instrument_anthropic as instrument_anthropic
from ._instrument.litellm import instrument_litellm as instrument_litellm
from ._instrument.openai import instrument_openai as instrument_openai
from ._instrument.registry import InstrumentationHandle as InstrumentationHandle
from ._llm.call import LLMCall as LLMCall
from ._llm.call import llm_call as llm_call
from ._llm.streaming import ametered as ametered
from ._llm.streaming import metered as metered
from ._report.render import print_report as print_report
from ._version import __version__ as __version__
from .exceptions import AgentStepsError as AgentStepsError
from .exceptions import BudgetStoreUnavailable as BudgetStoreUnavailable
from .exceptions import StepBudgetExhausted as StepBudgetExhausted
from .exceptions import StepDenied as StepDenied
from .exceptions import StepEscalated as StepEscalated
from .exceptions import UnpricedModelError as UnpricedModelError

if _typing.TYPE_CHECKING:
    from ._llm.capture import UsageCaptureProcessor as UsageCaptureProcessor
    from ._metrics.setup import MetricsHandle as MetricsHandle
    from ._metrics.setup import configure_metrics as configure_metrics
    from ._tracing.handle import TracingHandle as TracingHandle
    from ._tracing.jsonl import JsonlSpanExporter as JsonlSpanExporter
    from ._tracing.setup import configure_tracing as configure_tracing

# These four need the OpenTelemetry SDK. The library itself works through the API only, and
# loading an SDK is the application's choice: they are imported when first used.
_NEEDS_SDK = {
    "JsonlSpanExporter": "._tracing.jsonl",
    "MetricsHandle": "._metrics.setup",
    "configure_metrics": "._metrics.setup",
    "TracingHandle": "._tracing.handle",
    "UsageCaptureProcessor": "._llm.capture",
    "configure_tracing": "._tracing.setup",
}


def __getattr__(name: str) -> _typing.Any:
    module = _NEEDS_SDK.get(name)
    if module is None:
        msg = f"module 'agentsteps' has no attribute {name!r}"
        raise AttributeError(msg)
    value = getattr(_importlib.import_module(module, __name__), name)
    _fixup_module_metadata({name: value})
    globals()[name] = value  # once loaded, a plain attribute
    return value


def __dir__() -> list[str]:
    return sorted({*globals(), *_NEEDS_SDK})


__all__ = [
    "ActivePersona",
    "ActiveStep",
    "AgentStepsError",
    "Budget",
    "BudgetStoreUnavailable",
    "CompletedPersona",
    "CompletedStep",
    "ContextThreadPoolExecutor",
    "ErrorBoundary",
    "HookContext",
    "HookEvent",
    "HookHandle",
    "InstrumentationHandle",
    "JsonlSpanExporter",
    "LLMCall",
    "MetricsHandle",
    "Price",
    "Run",
    "StepBudgetExhausted",
    "StepDenied",
    "StepEscalated",
    "StepStatus",
    "TracingHandle",
    "UnpricedModelError",
    "Usage",
    "UsageCaptureProcessor",
    "__version__",
    "ametered",
    "configure",
    "configure_metrics",
    "configure_tracing",
    "current_model",
    "current_persona",
    "current_step",
    "inject",
    "instrument_anthropic",
    "instrument_litellm",
    "instrument_openai",
    "llm_call",
    "metered",
    "on_persona",
    "on_step",
    "override_price",
    "persona",
    "persona_scope",
    "preload_prices",
    "print_report",
    "record_remote_usage",
    "record_usage",
    "register_price",
    "registered_price",
    "remaining_budget",
    "remote_parent",
    "reset_defaults",
    "run",
    "run_in_context",
    "scoped_hooks",
    "step",
    "step_scope",
    "unregister_price",
    "usage_headers",
    "with_remote_parent",
]


def _fixup_module_metadata(namespace: dict[str, _typing.Any]) -> None:
    """
    Make each public object say it lives in ``agentsteps``, where users import it from.

    Tracebacks, reprs, pickles and the API docs then show ``agentsteps.Budget`` rather
    than the private module it is defined in. One pass over ``__all__``, as trio's
    ``fixup_module_metadata`` does, instead of a line in every module; the names loaded
    lazily (`__getattr__`) are fixed when they load.
    """
    for name, obj in namespace.items():
        module = getattr(obj, "__module__", None)
        if name in __all__ and isinstance(module, str) and module.startswith("agentsteps."):
            obj.__module__ = "agentsteps"


_fixup_module_metadata(globals())
