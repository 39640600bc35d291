"""
Propagation in: `remote_parent`, running a request's work as part of the caller's trace
and within the caller's remaining budget.

The scope is a step frame of its own (named ``remote:{caller step path}``) whose budget
is the remainder the caller carried, combined with any local budget by taking the
minimum, and whose error boundary is ``"fail"``. Because it encloses every step the
request runs, hierarchical budgets do the rest: a nested step is charged against the
carried remainder too, and its own, tighter budget still applies.
"""

from __future__ import annotations

import functools
import inspect
from collections.abc import Callable, Mapping
from types import TracebackType
from typing import Any, Literal, ParamSpec, TypeVar, cast

from opentelemetry import baggage as otel_baggage
from opentelemetry import context as otel_context
from opentelemetry import trace
from opentelemetry.trace import NonRecordingSpan

from .._accounting.budget import Budget, coerce_budget
from .._accounting.ledger import LEDGER_LOCK
from .._accounting.usage import ZERO_USAGE, Usage
from .._core import attributes as A
from .._core.boundary import exhaustion_error
from .._core.context import ActiveStep
from .._core.definitions import StepDefinition
from .._core.lifecycle import acomplete, afail, afail_with, astart, complete, fail, fail_with, start
from .._core.stack import is_current
from ..exceptions import StepBudgetExhausted
from .propagation import Carried, extract, normalize_carrier

__all__ = ["remote_parent", "with_remote_parent"]

P = ParamSpec("P")
R = TypeVar("R")

_UNITS = {"max_tokens": "tokens", "max_usd": "USD", "max_llm_calls": "calls"}


class RemoteDefinition(StepDefinition):
    """The definition of a remote scope's frame: a step plus what the caller carried."""

    __slots__ = ("caller_path", "caller_persona")

    def __init__(self, carried: Carried, local: Budget | None) -> None:
        path = carried.step_path
        super().__init__(
            name=f"remote:{path}" if path else "remote",
            function="remote_parent",
            budget=_tightest(carried.budget, local),
        )
        # "" (not None) marks the frame as remote when the caller sent no path.
        self.caller_path = path or ""
        self.caller_persona = carried.persona
        if path:
            self.end_attributes[A.REMOTE_CALLER_STEP_PATH] = path
        if carried.persona is not None:
            self.end_attributes[A.REMOTE_CALLER_PERSONA] = carried.persona
            # A start attribute, where samplers see it, like a local persona's name.
            self.span_attributes[A.GEN_AI_AGENT_NAME] = carried.persona


def _tightest(carried: Budget | None, local: Budget | None) -> Budget | None:
    if carried is None or local is None:
        return local if carried is None else carried

    def least(a: Any, b: Any) -> Any:
        return b if a is None else a if b is None else min(a, b)

    return Budget(
        max_tokens=least(carried.max_tokens, local.max_tokens),
        max_usd=least(carried.max_usd, local.max_usd),
        max_llm_calls=least(carried.max_llm_calls, local.max_llm_calls),
    )


class remote_parent:
    """
    Run a block as the continuation of a call from another process: its steps join the
    caller's trace and spend from the caller's remaining budget.

    ``carrier`` holds the incoming headers, as written by `inject` on the calling side.
    Inside the block:

    - a step frame named ``remote:{caller step path}`` is active; its span is a child of
      the caller's span (of the current span instead, when server instrumentation already
      continued the same trace), so every step in the block belongs to the caller's trace;
    - that frame's budget is the remainder the caller carried, combined with ``budget``
      (if given) by taking the minimum of each limit; steps in the block are charged
      against it like any nested step, and exhausting it raises `StepBudgetExhausted`
      (boundary ``"fail"``);
    - `inject` carries the caller's persona and step path on, for calls further out.

    Incoming values are validated and advisory: a malformed, negative or oversized value
    is ignored (as if not sent) with one warning on the ``agentsteps`` logger, and none
    can raise a limit.

    When the carried budget is already spent (a remainder of 0 tokens, dollars or calls)
    the scope refuses to start: entering it raises `StepBudgetExhausted` and its span ends
    with status ``failed``. Pass ``refuse_spent=False`` for work that spends nothing
    (any usage recorded in the block then trips the budget as usual), or check
    `remaining_budget` yourself.

    ``as`` gives the scope's `ActiveStep`; `usage` (and `usage_headers`) give what the
    block spent, to send back to the caller.

    Args:
        carrier: The incoming headers: a dict, or anything with ``items()`` such as
            ``BaseHTTPRequestHandler.headers``. Header names are case-insensitive.
        budget: A local budget for the whole request (a `Budget` or dict).
        refuse_spent: Raise at entry when the carried budget has nothing left.

    Raises:
        StepBudgetExhausted: At entry, when the carried budget is spent (see above); in
            the block, when usage exceeds the scope's budget.
        TypeError, ValueError: ``carrier`` is not a mapping, or ``budget`` is invalid.

    Example:
        >>> import agentsteps
        >>> from agentsteps import Budget, record_usage, remote_parent, step
        >>> @step(budget=Budget(max_tokens=1_000))
        ... def plan():
        ...     headers = {}
        ...     agentsteps.inject(headers)
        ...     return headers
        >>> incoming = plan()
        >>> with remote_parent(incoming) as scope:
        ...     print(scope.name, scope.budget)
        remote:plan Budget(max_tokens=1000, max_usd=None, max_llm_calls=None)

    .. versionadded:: 0.1.0
    """

    __slots__ = ("_carried", "_defn", "_frame", "_refuse", "_token", "_used")

    def __init__(
        self,
        carrier: Mapping[str, Any] | Any,
        *,
        budget: Budget | Mapping[str, Any] | None = None,
        refuse_spent: bool = True,
    ) -> None:
        local = coerce_budget(budget, "remote_parent()")
        _check_bool("remote_parent()", refuse_spent)
        self._carried = extract(normalize_carrier(carrier, "remote_parent()"))
        self._defn = RemoteDefinition(self._carried, local)
        self._refuse = refuse_spent
        self._frame: Any = None
        self._token: Any = None
        self._used: ActiveStep | None = None

    @property
    def usage(self) -> Usage:
        """What the block has spent so far (also after it ended); zero before entry."""
        frame = self._used
        return ZERO_USAGE if frame is None else frame.subtree_usage

    # The sync and awaitable forms share everything but the lifecycle calls (`start` /
    # `astart`, ...), which await async hook handlers in the awaitable ones.
    def __enter__(self) -> ActiveStep:
        token = self._attach()
        frame: Any = None
        try:
            frame = start(self._defn, (), {})[0]
            refusal = self._admit(frame, token)
            if refusal is not None:
                fail_with(frame, refusal)  # ends the step (failed) and raises the refusal
        except BaseException as error:
            try:
                if frame is not None and not frame._ledger.closed:
                    # Interrupted (KeyboardInterrupt) after start() made it current.
                    fail(frame, error)
            finally:
                otel_context.detach(token)
            raise
        return cast(ActiveStep, frame)

    async def __aenter__(self) -> ActiveStep:
        token = self._attach()
        frame: Any = None
        try:
            frame = (await astart(self._defn, (), {}))[0]
            refusal = self._admit(frame, token)
            if refusal is not None:
                await afail_with(frame, refusal)  # as in __enter__
        except BaseException as error:
            try:
                if frame is not None and not frame._ledger.closed:
                    await afail(frame, error)  # cancelled or interrupted after astart()
            finally:
                otel_context.detach(token)
            raise
        return cast(ActiveStep, frame)

    def _attach(self) -> Any:
        """Check the scope is not active, and make the caller's context current."""
        if self._frame is not None:
            msg = "remote_parent() is already active; create a new one to re-enter"
            raise RuntimeError(msg)
        return otel_context.attach(self._context())

    def _admit(self, frame: ActiveStep, token: Any) -> StepBudgetExhausted | None:
        """Keep the started frame, or return the refusal to raise (the budget is spent)."""
        self._used = frame
        spent = self._carried.spent if self._refuse else None
        if spent is not None:
            return self._refusal(frame, spent)
        self._frame, self._token = frame, token
        return None

    def _context(self) -> otel_context.Context:
        ctx = otel_context.get_current()
        remote = self._carried.span_context
        if remote is not None:
            current = trace.get_current_span(ctx).get_span_context()
            # A server span of the same trace (HTTP server instrumentation extracted the
            # same traceparent) is already a descendant of the caller's span: keep it.
            if not (current.is_valid and current.trace_id == remote.trace_id):
                ctx = trace.set_span_in_context(NonRecordingSpan(remote), ctx)
        for key, value in self._carried.baggage.items():
            ctx = otel_baggage.set_baggage(key, value, ctx)
        return ctx

    def _refusal(self, frame: ActiveStep, limit: str) -> StepBudgetExhausted:
        with LEDGER_LOCK:
            frame._ledger.exhausted = limit
        exc = exhaustion_error(frame, frame._ledger, limit)
        # The default message ("0 > 0 calls") describes overspending; say what happened.
        msg = (
            f"step {frame.name!r} refused to start: the caller's {limit} budget is already "
            f"spent (0 {_UNITS[limit]} left)"
        )
        exc.args = (msg,)
        return exc

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> Literal[False]:
        frame, token, here = self._release()
        try:
            if exc is None:
                complete(frame, None)
            else:
                # The boundary is "fail": fail() never asks to swallow the exception.
                fail(frame, exc)
        finally:
            if here:
                otel_context.detach(token)
        return False

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> Literal[False]:
        frame, token, here = self._release()
        try:
            if exc is None:
                await acomplete(frame, None)
            else:
                await afail(frame, exc)  # as in __exit__
        finally:
            if here:
                otel_context.detach(token)
        return False

    def _release(self) -> tuple[Any, Any, bool]:
        """The frame and context token to end, and whether the frame is current here."""
        frame, self._frame = self._frame, None
        token, self._token = self._token, None
        # Not current when a generator's body is finalised on its own: see `stack.pop`.
        return frame, token, is_current(frame)


def with_remote_parent(
    carrier: Callable[..., Any],
    *,
    budget: Budget | Mapping[str, Any] | None = None,
    refuse_spent: bool = True,
) -> Callable[[Callable[P, R]], Callable[P, R]]:
    """
    Decorate a request handler so that each call runs inside `remote_parent`.

    ``carrier`` is called with the handler's own arguments and returns the incoming
    headers, e.g. ``lambda self: self.headers`` for a `BaseHTTPRequestHandler` method or
    ``lambda request: request.headers`` for a framework view. Works on plain and
    ``async`` functions.

    A refusal (the carried budget already spent) raises `StepBudgetExhausted` from the
    call before the handler runs: map it to a response in your framework's exception
    handling (HTTP 402 or 429 are common choices). To report usage back, call
    `usage_headers` inside the handler, where the scope is still active.

    Args:
        carrier: Gets the incoming headers from the handler's arguments.
        budget: A local budget for each request, combined with the carried one.
        refuse_spent: As for `remote_parent`.

    Example:
        >>> from agentsteps import current_step, with_remote_parent
        >>> @with_remote_parent(lambda request: request["headers"])
        ... def handle(request):
        ...     return current_step().name
        >>> handle({"headers": {"baggage": "agentsteps.step_path=plan"}})
        'remote:plan'

    .. versionadded:: 0.1.0
    """
    _check_getter(carrier)
    _check_bool("with_remote_parent()", refuse_spent)
    coerce_budget(budget, "with_remote_parent()")

    def decorator(fn: Callable[P, R]) -> Callable[P, R]:
        if inspect.isgeneratorfunction(fn) or inspect.isasyncgenfunction(fn):
            msg = (
                "with_remote_parent() decorates plain and async functions, not generators "
                f"(got {getattr(fn, '__qualname__', fn)!r}); use `with remote_parent(...)` "
                "inside the generator instead"
            )
            raise TypeError(msg)
        if inspect.iscoroutinefunction(fn):
            afn = cast(Callable[..., Any], fn)

            @functools.wraps(fn)
            async def async_handler(*args: Any, **kwargs: Any) -> Any:
                scope = remote_parent(
                    carrier(*args, **kwargs), budget=budget, refuse_spent=refuse_spent
                )
                async with scope:
                    return await afn(*args, **kwargs)

            return cast(Callable[P, R], async_handler)

        @functools.wraps(fn)
        def handler(*args: P.args, **kwargs: P.kwargs) -> R:
            scope = remote_parent(
                carrier(*args, **kwargs), budget=budget, refuse_spent=refuse_spent
            )
            with scope:
                return fn(*args, **kwargs)

        return handler

    return decorator


# The checks take `object`: on the annotated parameters mypy would call them unreachable.
def _check_bool(owner: str, value: object) -> None:
    if not isinstance(value, bool):
        msg = f"{owner}: 'refuse_spent' must be a bool (got {value!r})"
        raise TypeError(msg)


def _check_getter(carrier: object) -> None:
    if not callable(carrier):
        msg = (
            "with_remote_parent(): 'carrier' must be a callable that takes the handler's "
            "arguments and returns the incoming headers, e.g. lambda request: "
            f"request.headers (got {carrier!r} of type {type(carrier).__name__})"
        )
        raise TypeError(msg)
