"""
`llm_call`: one model call as a span of its own, checked against the budget before it is made.

Cohesive: the `LLMCall` class is one model call's state machine (new, open, ended), its
figures and its pre-flight reservation, all under one lock; its telemetry is in
call_telemetry.py, the budget checks in preflight.py and pricing in `_accounting`.
"""

from __future__ import annotations

import time
from contextvars import ContextVar
from types import TracebackType
from typing import Any, cast

from opentelemetry import context as otel_context
from opentelemetry import trace

from .._accounting.pricing import price
from .._accounting.usage import ZERO_USAGE, Usage
from .._core.context import CALL as _OPEN_CALL
from .._core.context import CURRENT, ActivePersona, ActiveStep
from .._core.instruments import (
    Instruments,
    get_instruments,
)
from .._core.llm_spans import (
    infer_provider,
)
from .._core.locks import new_lock
from .._core.recording import (
    _check_cached,
    _check_str,
    _cost,
    _count,
    charge,
    unpriced_error,
)
from .._core.shared import release
from ..exceptions import UnpricedModelError
from .call_telemetry import close_span, open_span, record_metrics
from .preflight import affordable_output, headroom, preflight, raise_pending

__all__ = ["CALL", "LLMCall", "infer_provider", "llm_call"]

# The model call open in this context, so that usage captured from another library's span
# started inside it is given to the call instead of being charged a second time.
# The open call, set and read here typed with LLMCall: the same ContextVar as the runtime's.
CALL = cast("ContextVar[LLMCall | None]", _OPEN_CALL)

_NEW, _OPEN, _ENDED = 0, 1, 2


class LLMCall:
    """
    One model call, opened with `llm_call`: its span, its usage, its budget headroom.

    Use it as a context manager (``with`` or ``async with``). Inside, report what the
    provider said the call used with `record`, or, while a response streams in, charge it
    piece by piece with `add_usage` (or let `metered` do that for you). Every report is
    charged at once to the step the call was opened in and to every step around it, so a
    budget stops the work as soon as it is spent.

    Usage reported with `record` (or captured from an instrumented client's span by
    `UsageCaptureProcessor`) is the call's *total* and replaces what was charged before;
    `add_usage` adds to it. The steps are charged the difference each time, so an
    estimate charged during a stream is corrected by the final figures, never counted
    twice.

    A call that ends without any usage reported still counts as one model call (with zero
    tokens), so ``max_llm_calls`` holds even when a client reports nothing; a call left by
    an exception before anything was reported counts nothing.

    .. versionadded:: 0.1.0
    """

    __slots__ = (
        "_attached",
        "_charged",
        "_ctx_token",
        "_elsewhere",
        "_frame",
        "_input_estimate",
        "_lock",
        "_max_output_cap",
        "_meter",
        "_model",
        "_operation",
        "_otel_context",
        "_otel_token",
        "_provider",
        "_provider_nanos",
        "_recorded",
        "_reservation",
        "_response_model",
        "_source",
        "_span",
        "_started",
        "_state",
        "_totals",
        "_unpriced",
    )

    def __init__(
        self,
        model: str | None,
        provider: str | None,
        operation: str,
        input_tokens: int | None,
        max_output_tokens: int | None,
    ) -> None:
        self._model = model
        self._provider = provider
        self._operation = operation
        self._input_estimate = input_tokens
        self._max_output_cap = max_output_tokens
        # Reservations this call holds in shared budgets' stores (see preflight).
        self._reservation: Any = None
        self._frame: ActiveStep | ActivePersona | None = None
        self._span: Any = None
        self._ctx_token: Any = None
        self._otel_token: Any = None
        self._otel_context: Any = None
        self._state = _NEW
        self._lock = new_lock()  # re-entrant, fork-safe: see _core/locks.py
        # Input, output, cache read, cache write, reasoning tokens reported so far.
        self._totals = (0, 0, 0, 0, 0)
        # A cost the provider gave (nano-dollars), which then replaces our own pricing.
        self._provider_nanos: int | None = None
        # Whether record() gave the provider's figures: usage observed on another
        # library's span then no longer replaces them (it may know less, e.g. no cache).
        self._recorded = False
        self._response_model: str | None = None
        self._source: str | None = None
        # What the steps have been charged for this call. Each report charges the
        # difference to the new figures.
        self._charged = ZERO_USAGE
        # Unpriced usage observed under a dollar budget, raised when the block ends.
        self._unpriced: UnpricedModelError | None = None
        # Usage that record_usage reported inside the block, and its cost source: charged
        # by record_usage, shown on this call's span.
        self._attached: tuple[Usage, str] | None = None
        # Whether another instrumentation's span, below or above this one, describes the
        # same request: that span then carries the usage for backends, this one does not.
        self._elsewhere = False
        # The metric instruments when a meter provider is configured, and when it began.
        self._meter: Instruments | None = None
        self._started = 0.0

    # -- what the call knows -------------------------------------------------------------

    @property
    def model(self) -> str | None:
        """The model asked for (``model=``, else the step's model)."""
        return self._model

    @property
    def response_model(self) -> str | None:
        """The model the provider says answered, once `record` was given one."""
        return self._response_model

    @property
    def provider(self) -> str | None:
        """The provider's name (``gen_ai.provider.name``): given, or inferred from the model."""
        return self._provider

    @property
    def usage(self) -> Usage:
        """What this call has been charged so far, as a `Usage`."""
        with self._lock:
            return self._charged

    @property
    def cost_source(self) -> str | None:
        """
        Where the call's cost came from: ``"provider"`` (an explicit ``cost_usd``),
        ``"user"`` (a registered price), ``"catalog"`` (the price catalog) or
        ``"unknown"`` (no price: counted as $0 and as an unpriced call). ``None`` until
        the call is charged.
        """
        return self._source

    @property
    def max_output_tokens(self) -> int | None:
        """
        The most output tokens this call may still ask for, or ``None`` for no limit.

        The smallest of: the ``max_output_tokens`` given to `llm_call`; what every
        enclosing ``max_tokens`` budget has left once the ``input_tokens`` estimate given
        to `llm_call` is counted; and, for a priced model, what every ``max_usd`` budget
        can still pay for after that input. Pass it to your client (``max_tokens=`` /
        ``max_completion_tokens=``) and the call cannot overrun the budget. It is worked
        out from what the steps have left when you read it; see `max_output_tokens_for`
        to ask for another input size.
        """
        return self.max_output_tokens_for(self._input_estimate or 0)

    def max_output_tokens_for(self, input_tokens: int) -> int | None:
        """
        The most output tokens a call sending ``input_tokens`` may ask for now.

        Like `max_output_tokens`, for an input size of your choosing (for example after
        trimming the prompt). Returns ``0`` when the input alone uses up a budget.

        Args:
            input_tokens: The input tokens the call will send, cached ones included.

        Raises:
            TypeError, ValueError: ``input_tokens`` is not an int >= 0.
        """
        est = _count("input_tokens", input_tokens, "LLMCall.max_output_tokens_for()")
        frame = self._frame if self._state != _NEW else CURRENT.get()
        cap = self._max_output_cap
        if frame is None or frame._step is None:
            return cap
        tokens, nanos = headroom(frame)
        if tokens is not None:
            room = max(0, tokens - est)
            cap = room if cap is None else min(cap, room)
        if nanos is not None and cap != 0:
            room_usd = affordable_output(self._model, self._provider, est, nanos)
            if room_usd is not None:
                cap = room_usd if cap is None else min(cap, room_usd)
        return cap

    @property
    def trace_id(self) -> str | None:
        """Hex trace id of the call's span, or ``None`` when tracing is off."""
        return _span_ids(self._span)[0]

    @property
    def span_id(self) -> str | None:
        """Hex span id of the call's span, or ``None`` when tracing is off."""
        return _span_ids(self._span)[1]

    # -- reporting usage -----------------------------------------------------------------

    def record(
        self,
        input_tokens: int = 0,
        output_tokens: int = 0,
        *,
        cache_read_tokens: int = 0,
        cache_write_tokens: int = 0,
        reasoning_tokens: int = 0,
        cost_usd: float | None = None,
        response_model: str | None = None,
    ) -> None:
        """
        Report the call's usage as the provider gave it: these are the call's totals.

        They replace whatever was reported before for this call (streamed estimates, an
        earlier `record`, usage captured from an instrumented client's span), and the
        steps are charged the difference. Counts follow the
        OpenTelemetry GenAI conventions: ``input_tokens`` includes the cached tokens and
        ``output_tokens`` includes the reasoning tokens.

        Args:
            input_tokens: Prompt tokens, cached ones included.
            output_tokens: Completion tokens, reasoning tokens included.
            cache_read_tokens: Input tokens served from the prompt cache.
            cache_write_tokens: Input tokens written to the prompt cache.
            reasoning_tokens: Output tokens spent on hidden reasoning.
            cost_usd: What the call cost, if the provider said (cost source
                ``"provider"``); else it is priced from the model.
            response_model: The model the provider says answered (often a dated snapshot).

        Raises:
            StepBudgetExhausted: The usage took a step over budget (it is charged all
                the same), or an earlier one did and has not been raised yet.
            UnpricedModelError: No ``cost_usd`` and no known price for the model, under
                a ``max_usd`` budget (see `record_usage`); nothing is charged.
            RuntimeError: The call is not open (use it inside its ``with`` block).
            TypeError, ValueError: A bad argument (the message names it).
        """
        what = "LLMCall.record()"
        counts = _counts(
            what,
            input_tokens,
            output_tokens,
            cache_read_tokens,
            cache_write_tokens,
            reasoning_tokens,
        )
        nanos = None if cost_usd is None else _cost(cost_usd, what)
        _check_str("response_model", response_model, what)
        self._check_open(what)
        self._report(
            counts,
            what,
            replace=True,
            from_record=True,
            provider_nanos=nanos,
            response_model=response_model,
        )

    def add_usage(
        self,
        input_tokens: int = 0,
        output_tokens: int = 0,
        *,
        cache_read_tokens: int = 0,
        cache_write_tokens: int = 0,
        reasoning_tokens: int = 0,
    ) -> None:
        """
        Add usage to the call as it happens, for example per chunk of a streamed answer.

        Each addition is charged at once and checked against every enclosing budget, so
        an answer that runs over stops at the chunk that crossed the limit. A later
        `record` with the provider's final figures replaces the running total.

        Raises:
            StepBudgetExhausted: A budget is now exceeded (the usage is charged).
            RuntimeError: The call is not open.
            TypeError, ValueError: A count is not an int >= 0.
        """
        what = "LLMCall.add_usage()"
        counts = tuple(
            _count(name, value, what)
            for name, value in (
                ("input_tokens", input_tokens),
                ("output_tokens", output_tokens),
                ("cache_read_tokens", cache_read_tokens),
                ("cache_write_tokens", cache_write_tokens),
                ("reasoning_tokens", reasoning_tokens),
            )
        )
        self._check_open(what)
        self._report(counts, what, replace=False)

    def _check_open(self, what: str) -> None:
        if self._state != _OPEN:
            when = "before" if self._state == _NEW else "after"
            msg = (
                f"{what}: the model call is not open ({when} its 'with' block); report usage "
                "inside 'with llm_call(...) as call:'"
            )
            raise RuntimeError(msg)

    def _report(
        self,
        counts: tuple[int, ...],
        what: str,
        *,
        replace: bool,
        from_record: bool = False,
        provider_nanos: int | None = None,
        response_model: str | None = None,
        raise_now: bool = True,
        observed: bool = False,
    ) -> None:
        """
        Set (``replace``) or grow the call's totals and charge the steps the difference.

        ``from_record``: these are the provider's figures, and ``provider_nanos`` the
        call's cost (``None``: price it); otherwise a cost given earlier stays.
        ``observed`` usage (from another library's span) is ignored once `record` has
        given the call's figures.
        """
        with self._lock:
            if observed:
                self._elsewhere = True
                if self._recorded:
                    return
            fixed = provider_nanos if from_record else self._provider_nanos
            answered = self._response_model if response_model is None else response_model
            totals = counts if replace else tuple(map(sum, zip(self._totals, counts, strict=True)))
            inp, out, cread, cwrite, reason = totals
            if not replace:
                # Totals that grew piece by piece must still be a consistent whole.
                _check_cached(inp, cread, cwrite, what)
                _check_reasoning(out, reason, what)
            if fixed is not None:
                nanos, source = fixed, "provider"
            else:
                tokens = Usage._unchecked(inp, out, cread, cwrite, reason, 1, 0, 0)
                nanos, source = price(tokens, self._model, self._provider, answered)
            if source == "unknown" and (inp or out) and self._frame is not None:
                # Checked before anything changes: an unpriced record charges nothing.
                error = unpriced_error(self._frame, self._model or answered)
                if error is not None:
                    if not raise_now:
                        # Seen on another library's span, which must not raise: the call
                        # raises it when its block ends, unless a priced record came since.
                        self._unpriced = error
                        return
                    raise error
            self._unpriced = None
            if from_record:
                self._recorded = True
                self._provider_nanos = provider_nanos
            self._response_model = answered
            self._totals = (inp, out, cread, cwrite, reason)
            self._source = source
            unpriced = int(source == "unknown")
            new = Usage._unchecked(inp, out, cread, cwrite, reason, 1, unpriced, nanos)
            # Signed: a report may replace figures with smaller ones (see Usage._unchecked).
            delta = new._minus(self._charged)
            self._charged = new
            model = self._response_model or self._model
        frame = self._frame
        if frame is not None:
            charge(frame, delta, model, raise_now=raise_now)

    # -- the scope -----------------------------------------------------------------------

    def __enter__(self) -> LLMCall:
        if self._state != _NEW:
            msg = "llm_call(): this call was already opened; create a new llm_call() per call"
            raise RuntimeError(msg)
        frame = CURRENT.get()
        if frame is not None and frame._step is not None:
            if self._model is None:
                self._model = frame._model
            if self._provider is None:
                self._provider = infer_provider(self._model)
            raise_pending(frame)
            self._reservation = preflight(
                frame, self._model, self._provider, self._input_estimate or 0, self._max_output_cap
            )
            self._frame = frame
        elif self._provider is None:
            self._provider = infer_provider(self._model)
        self._state = _OPEN
        meter = self._meter = get_instruments()
        if meter is not None:
            self._started = time.perf_counter()
        open_span(self)
        self._ctx_token = CALL.set(self)
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        if self._state != _OPEN:
            return
        error = exc
        try:
            if exc is None and self._unpriced is not None:
                raise self._unpriced
            if exc is None and self._source is None:
                # Nothing reported: still one model call, so max_llm_calls holds.
                self._report((0, 0, 0, 0, 0), "llm_call()", replace=False)
        except BaseException as raised:
            error = raised
            raise
        finally:
            self._state = _ENDED
            self._close(error)

    async def __aenter__(self) -> LLMCall:
        return self.__enter__()

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.__exit__(exc_type, exc, tb)

    def _close(self, error: BaseException | None) -> None:
        held, self._reservation = self._reservation, None
        if held is not None:
            release(held)
        token, self._otel_token = self._otel_token, None
        context, self._otel_context = self._otel_context, None
        # Each only where this call is still the current one: a generator's body finalised
        # on its own by the garbage collector must not restore what was current when the
        # call began over the running code's context (see stack.pop).
        if CALL.get() is self:
            try:
                CALL.reset(self._ctx_token)
            except ValueError:
                # Left in another context than it was opened in: put back what was there.
                CALL.set(None)
        if token is not None and otel_context.get_current() is context:
            otel_context.detach(token)
        if self._meter is not None:
            record_metrics(self, self._meter, error)
        close_span(self, error)

    def _open(self) -> bool:
        """Whether the block is open (usage recorded now is part of this call)."""
        return self._state == _OPEN

    def _attach(self, usage: Usage, source: str) -> bool:
        """
        Add usage `record_usage` charged inside the block to this call's figures; returns
        whether its span shows them (else the record makes a span of its own).
        """
        if self._state != _OPEN:
            return False
        with self._lock:
            if self._attached is not None:
                old, source = self._attached
                usage = old + usage
            self._attached = (usage, source)
        return self._span is not None

    def __repr__(self) -> str:
        state = ("new", "open", "ended")[self._state]
        return f"<LLMCall {self._operation} {self._model!r} {state}>"


def llm_call(
    model: str | None = None,
    provider: str | None = None,
    *,
    operation: str = "chat",
    input_tokens: int | None = None,
    max_output_tokens: int | None = None,
) -> LLMCall:
    """
    Open one model call: a ``with`` (or ``async with``) block around the request.

    On entry the call is checked against the budget of every enclosing step *before any
    money is spent*: if one of them has nothing left (no tokens, dollars or calls, or no
    room for a single output token after ``input_tokens``), `StepBudgetExhausted` for
    the outermost such step is raised and nothing is charged. Otherwise a CLIENT span
    ``"{operation} {model}"`` opens as a child of the step's span, following the
    OpenTelemetry GenAI conventions, and `LLMCall.max_output_tokens` tells you the most
    output the call may ask for.

    Report usage with `LLMCall.record` (or stream it with `LLMCall.add_usage` /
    `metered`); it is charged to the step and every step around it, through the same
    path as `record_usage`, and written on the call's span (``gen_ai.usage.*``, cost and
    cost source) when the block ends. Outside any step the span is still made but nothing
    is charged.

    Args:
        model: The model asked for; defaults to the step's model (`current_model`).
        provider: The provider, as ``gen_ai.provider.name`` (``"openai"``,
            ``"anthropic"``, ...); also helps the price catalog. When not given it is
            inferred from the model name (``gpt-*`` and ``o1``-style
            names are ``openai``, ``claude-*`` ``anthropic``, ``gemini-*``
            ``gcp.gemini``), else left out.
        operation: The GenAI operation name: ``"chat"``, ``"text_completion"``,
            ``"embeddings"``, ``"generate_content"``...
        input_tokens: How many input tokens you are about to send, if you know
            (estimates are fine): the pre-flight check and `LLMCall.max_output_tokens`
            count them. Nothing is charged for it; report real usage with `record`.
        max_output_tokens: The most output tokens you want at most;
            `LLMCall.max_output_tokens` is never more than this.

    Raises:
        StepBudgetExhausted: On entry, when a budget cannot afford the call, or when
            usage observed earlier (`UsageCaptureProcessor`) took a step over budget.
        TypeError, ValueError: A bad argument (the message names it).

    Example:
        >>> from agentsteps import Budget, llm_call, step
        >>> @step(model="my-model", budget=Budget(max_tokens=1_000))
        ... def answer():
        ...     with llm_call(provider="openai", input_tokens=600) as call:
        ...         limit = call.max_output_tokens        # 400: ask the model for no more
        ...         call.record(input_tokens=600, output_tokens=120, cost_usd=0.0004)
        ...     return limit
        >>> answer()
        400

    .. versionadded:: 0.1.0
    """
    what = "llm_call()"
    _check_str("model", model, what)
    _check_str("provider", provider, what)
    op: object = operation  # checked at run time whatever the annotation says
    if not isinstance(op, str):
        got = f"{op!r} of type {type(op).__name__}"
        msg = f"{what}: 'operation' must be a non-empty str (got {got})"
        raise TypeError(msg)
    if not operation.strip():
        msg = f"{what}: 'operation' must be a non-empty str (got {operation!r})"
        raise ValueError(msg)
    if model is not None and not model.strip():
        msg = f"{what}: 'model' must be a non-empty str or None (got {model!r})"
        raise ValueError(msg)
    if input_tokens is not None:
        _count("input_tokens", input_tokens, what)
    if max_output_tokens is not None:
        _count("max_output_tokens", max_output_tokens, what)
    return LLMCall(model, provider, operation, input_tokens, max_output_tokens)


# Model names that say who serves the model, as GenAI gen_ai.provider.name values. Only
# names no other provider uses: a wrong provider is worse than none.
def _counts(what: str, *values: int) -> tuple[int, ...]:
    names = (
        "input_tokens",
        "output_tokens",
        "cache_read_tokens",
        "cache_write_tokens",
        "reasoning_tokens",
    )
    counts = tuple(_count(name, value, what) for name, value in zip(names, values, strict=True))
    inp, out, cread, cwrite, reason = counts
    _check_cached(inp, cread, cwrite, what)
    _check_reasoning(out, reason, what)
    return counts


def _check_reasoning(out: int, reason: int, what: str) -> None:
    if reason > out:
        msg = (
            f"{what}: 'reasoning_tokens' ({reason}) exceeds 'output_tokens' ({out}); "
            "output_tokens includes reasoning tokens (OpenTelemetry convention)"
        )
        raise ValueError(msg)


def _span_ids(span: Any) -> tuple[str | None, str | None]:
    if span is None:
        return None, None
    ctx = span.get_span_context()
    if not ctx.is_valid:
        return None, None
    return trace.format_trace_id(ctx.trace_id), trace.format_span_id(ctx.span_id)
