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

from ._budget import Budget as Budget
from ._budget import ErrorBoundary as ErrorBoundary
from ._capture import UsageCaptureProcessor as UsageCaptureProcessor
from ._config import configure as configure
from ._config import reset_defaults as reset_defaults
from ._context import ActivePersona as ActivePersona
from ._context import ActiveStep as ActiveStep
from ._context import current_model as current_model
from ._context import current_persona as current_persona
from ._context import current_step as current_step
from ._export import TracingHandle as TracingHandle
from ._export import configure_tracing as configure_tracing
from ._hook_api import on_persona as on_persona
from ._hook_api import on_step as on_step
from ._hook_api import register_persona_hook as register_persona_hook
from ._hook_api import register_step_hook as register_step_hook
from ._hook_events import HookContext as HookContext
from ._hook_events import HookEvent as HookEvent
from ._hooks import HookHandle as HookHandle
from ._hooks import scoped_hooks as scoped_hooks
from ._jsonl import JsonlSpanExporter as JsonlSpanExporter
from ._llm_call import LLMCall as LLMCall
from ._llm_call import llm_call as llm_call
from ._persona import persona as persona
from ._persona import persona_scope as persona_scope
from ._pricing import Price as Price
from ._pricing import register_price as register_price
from ._pricing import registered_price as registered_price
from ._pricing import unregister_price as unregister_price
from ._propagation import inject as inject
from ._propagation import remaining_budget as remaining_budget
from ._recording import record_usage as record_usage
from ._records import CompletedPersona as CompletedPersona
from ._records import CompletedStep as CompletedStep
from ._records import Run as Run
from ._records import StepStatus as StepStatus
from ._records import run as run
from ._remote import remote_parent as remote_parent
from ._remote import with_remote_parent as with_remote_parent
from ._remote_usage import record_remote_usage as record_remote_usage
from ._remote_usage import usage_headers as usage_headers
from ._report_render import print_report as print_report
from ._step import step as step
from ._step import step_scope as step_scope
from ._streaming import ametered as ametered
from ._streaming import metered as metered
from ._threads import ContextThreadPoolExecutor as ContextThreadPoolExecutor
from ._threads import run_in_context as run_in_context
from ._usage import Usage as Usage
from ._version import __version__ as __version__
from .exceptions import AgentStepsError as AgentStepsError
from .exceptions import StepBudgetExhausted as StepBudgetExhausted
from .exceptions import StepDenied as StepDenied
from .exceptions import StepEscalated as StepEscalated

__all__ = [
    "ActivePersona",
    "ActiveStep",
    "AgentStepsError",
    "Budget",
    "CompletedPersona",
    "CompletedStep",
    "ContextThreadPoolExecutor",
    "ErrorBoundary",
    "HookContext",
    "HookEvent",
    "HookHandle",
    "JsonlSpanExporter",
    "LLMCall",
    "Price",
    "Run",
    "StepBudgetExhausted",
    "StepDenied",
    "StepEscalated",
    "StepStatus",
    "TracingHandle",
    "Usage",
    "UsageCaptureProcessor",
    "__version__",
    "ametered",
    "configure",
    "configure_tracing",
    "current_model",
    "current_persona",
    "current_step",
    "inject",
    "llm_call",
    "metered",
    "on_persona",
    "on_step",
    "persona",
    "persona_scope",
    "print_report",
    "record_remote_usage",
    "record_usage",
    "register_persona_hook",
    "register_price",
    "register_step_hook",
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
