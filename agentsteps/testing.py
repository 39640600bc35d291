"""
An offline chat model for examples and tests: scripted replies, realistic usage, no network.

`ScriptedModel` answers from a list of replies (or a function of the prompt) and makes
each call through `llm_call`, exactly as a real client's call goes: checked against the
budget before it is made, traced as a model-call span, charged to the active step with
token counts from a documented estimate and a cost from a price table. It can simulate a
prompt cache, a streamed answer, latency and errors, and it keeps every call for your
assertions::

    >>> from agentsteps import Budget, run, step
    >>> from agentsteps.testing import ScriptedModel
    >>> llm = ScriptedModel(["LGTM, ship it."])
    >>> @step(model="scripted-mini", budget=Budget(max_tokens=1_000))
    ... def review(diff):
    ...     return llm.complete(f"Review this diff:\\n{diff}").text
    >>> with run() as r:
    ...     review("+ print('hello')")
    'LGTM, ship it.'
    >>> r.total.input_tokens, r.total.output_tokens, r.total.cost_usd
    (13, 4, 8.25e-06)
    >>> llm.prompts
    ["Review this diff:\\n+ print('hello')"]

The token estimate is deterministic, so tests can assert exact numbers:

- a text counts ``ceil(len(text.encode("utf-8")) / 4)`` tokens (`estimate_tokens`): about
  what GPT and Claude tokenizers give for English, and never zero for non-empty text;
- a prompt counts each message's content that way plus `MESSAGE_OVERHEAD_TOKENS` (4) for
  the message's role and framing (`count_prompt_tokens`);
- a reply counts its text (no overhead).
"""

from __future__ import annotations

from ._testing.model import ScriptedModel as ScriptedModel
from ._testing.replies import DEFAULT_MODEL as DEFAULT_MODEL
from ._testing.replies import DEFAULT_PRICES as DEFAULT_PRICES
from ._testing.replies import Reply as Reply
from ._testing.replies import ScriptedCall as ScriptedCall
from ._testing.replies import ScriptExhausted as ScriptExhausted
from ._testing.stream import ScriptedStream as ScriptedStream
from ._testing.tokens import MESSAGE_OVERHEAD_TOKENS as MESSAGE_OVERHEAD_TOKENS
from ._testing.tokens import count_prompt_tokens as count_prompt_tokens
from ._testing.tokens import estimate_tokens as estimate_tokens

__all__ = [
    "DEFAULT_MODEL",
    "DEFAULT_PRICES",
    "MESSAGE_OVERHEAD_TOKENS",
    "Reply",
    "ScriptExhausted",
    "ScriptedCall",
    "ScriptedModel",
    "ScriptedStream",
    "count_prompt_tokens",
    "estimate_tokens",
]

# Reprs, pickles, tracebacks and the API docs name the module users import from.
for _obj in (
    Reply,
    ScriptExhausted,
    ScriptedCall,
    ScriptedModel,
    ScriptedStream,
    count_prompt_tokens,
    estimate_tokens,
):
    _obj.__module__ = __name__
del _obj
