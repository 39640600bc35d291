"""What a decorator knows about its step or persona, validated once at decoration time."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from opentelemetry.util.types import AttributeValue

from .._accounting.budget import Budget, ErrorBoundary, coerce_boundary, coerce_budget
from .._validate import check_name
from . import attributes as A

__all__ = ["NOT_SET", "PersonaDefinition", "StepDefinition"]


class _NotSet:
    """Marks an argument that was not given, where ``None`` is a meaningful value."""

    __slots__ = ()

    def __repr__(self) -> str:
        return "NOT_SET"


NOT_SET: Any = _NotSet()


def check_model(value: object, owner: str) -> str | None:
    if value is None:
        return None
    return check_name("model", value, owner)


class StepDefinition:
    """A step's name, model, budget and boundary, plus its precomputed span attributes."""

    __slots__ = (
        "boundary",
        "budget",
        "default",
        "end_attributes",
        "end_cache",
        "function",
        "hook_events",
        "is_scope",
        "is_step",
        "model",
        "name",
        "plain_end",
        "plain_start",
        "span_attributes",
        "span_name",
    )

    is_step: bool
    is_scope: bool
    hook_events: Any
    """The step events some hook's step filter selects for this name (see `step_events`)."""
    plain_start: int
    """
    The hook registry's generation (`ACTIVE.generation`) at which no ``pre_step`` hook
    selected this definition, -1 until known: `lifecycle.start` notes it, and the hottest
    callers read it to skip calling `start` (see `lifecycle._hooked`).
    """
    plain_end: int
    """The same for ``post_step`` and `lifecycle.complete`."""

    def __init__(
        self,
        *,
        name: str,
        function: str,
        model: object = None,
        budget: Budget | Mapping[str, Any] | None = None,
        error_boundary: object = ErrorBoundary.FAIL,
        default: object = NOT_SET,
    ) -> None:
        owner = f"step {name!r}"
        self.is_step = True
        self.is_scope = False  # step_scope sets it: a block has no arguments or return value
        self.hook_events = None
        self.plain_start = self.plain_end = -1
        self.name = name
        self.function = function
        self.model = check_model(model, owner)
        self.budget = coerce_budget(budget, owner)
        self.boundary = coerce_boundary(error_boundary, owner)
        if default is not NOT_SET and self.boundary is not ErrorBoundary.CONTINUE:
            msg = (
                f"{owner}: 'default' is the value returned when the budget runs out under "
                f"error_boundary='continue', but the boundary is {self.boundary.value!r}"
            )
            raise ValueError(msg)
        self.default = None if default is NOT_SET else default
        self.span_name = f"{A.OPERATION_INVOKE_WORKFLOW} {name}"
        # Built once here. Only what a sampler may want goes to start_span: the SDK cleans
        # start attributes twice (sampler result, then span), so everything else is set in
        # the single set_attributes call at the end.
        start: dict[str, AttributeValue] = {
            A.GEN_AI_OPERATION_NAME: A.OPERATION_INVOKE_WORKFLOW,
            A.STEP_NAME: name,
        }
        if self.model is not None:
            start[A.GEN_AI_REQUEST_MODEL] = self.model
        self.span_attributes = start
        # No gen_ai.provider.name: it names the model's provider (openai, ...), which a
        # step does not know; model-call spans carry it.
        attributes: dict[str, AttributeValue] = {
            # Phoenix maps invoke_workflow to UNKNOWN and Langfuse maps a span with a model
            # to GENERATION; both honour an explicit OpenInference kind first.
            A.OPENINFERENCE_SPAN_KIND: A.OPENINFERENCE_KIND_AGENT,
            A.STEP_ERROR_BOUNDARY: self.boundary.value,
        }
        # Each attribute costs about a microsecond in the SDK; the function is only news
        # when the step was given a name of its own.
        if function != name:
            attributes[A.STEP_FUNCTION] = function
        if self.budget is not None:
            if self.budget.max_tokens is not None:
                attributes[A.BUDGET_MAX_TOKENS] = self.budget.max_tokens
            if self.budget.max_usd is not None:
                attributes[A.BUDGET_MAX_USD] = float(self.budget.max_usd)
            if self.budget.max_llm_calls is not None:
                attributes[A.BUDGET_MAX_LLM_CALLS] = self.budget.max_llm_calls
        self.end_attributes = attributes
        self.end_cache: dict[tuple[Any, ...], dict[str, AttributeValue]] = {}

    def __repr__(self) -> str:
        return f"<StepDefinition {self.name!r}>"


class PersonaDefinition:
    """A persona's name and optional default model, plus its span attributes."""

    __slots__ = (
        "budget",
        "end_attributes",
        "end_cache",
        "function",
        "is_step",
        "model",
        "name",
        "plain_end",
        "plain_start",
        "span_attributes",
        "span_name",
    )

    is_step: bool
    plain_start: int
    """As for `StepDefinition`: a persona has no ``pre_step`` or ``post_step`` hooks."""
    plain_end: int

    def __init__(self, *, name: str, function: str, model: object = None) -> None:
        self.is_step = False
        self.plain_start = self.plain_end = -1
        self.name = name
        self.function = function
        self.model = check_model(model, f"persona {name!r}")
        self.budget = None
        self.span_name = f"{A.OPERATION_INVOKE_AGENT} {name}"
        start: dict[str, AttributeValue] = {
            A.GEN_AI_OPERATION_NAME: A.OPERATION_INVOKE_AGENT,
            A.GEN_AI_AGENT_NAME: name,
        }
        if self.model is not None:
            start[A.GEN_AI_REQUEST_MODEL] = self.model
        self.span_attributes = start
        self.end_cache: dict[tuple[Any, ...], dict[str, AttributeValue]] = {}
        # No gen_ai.provider.name: agentsteps is not a model provider, and backends that
        # map it (Phoenix's llm.system) would show one. Model-call spans carry it.
        self.end_attributes: dict[str, AttributeValue] = {A.PERSONA_NAME: name}
        if function != name:
            self.end_attributes[A.PERSONA_FUNCTION] = function

    def __repr__(self) -> str:
        return f"<PersonaDefinition {self.name!r}>"
