"""
A generator step that streams model output until its budget stops it.

    python examples/streaming_notes.py

``release_notes`` is a generator step: it streams one note per change, chunk by chunk,
and the caller prints the chunks as they come. The step's budget covers the whole
generator, however long the caller keeps pulling. Each chunk is charged before it is
handed on, so the chunk that would take the step over its budget is never printed: the
``"continue"`` boundary ends the generator quietly, mid-sentence, the loop simply stops,
and the step is recorded as ``skipped`` with what it spent.
"""

from __future__ import annotations

from collections.abc import Iterator

import agentsteps
from agentsteps import Budget, step
from agentsteps.testing import ScriptedModel

CHANGES = [
    "RetryPolicy.run takes a timeout",
    "Session.send passes its timeout on",
    "TimeoutError names the attempts made",
    "the default deadline is 30 seconds",
    "retries are logged at debug level",
    "the backoff has jitter",
]

llm = ScriptedModel(
    lambda prompt: (
        f"- {prompt.split(': ', 1)[1]}, so slow servers no longer hang your "
        "calls forever; nothing to change in your code."
    ),
    system="You write one line of release notes per change.",
    prompt_cache=True,
)


BUDGET = Budget(max_tokens=175)


@step(model="scripted-mini", budget=BUDGET, error_boundary="continue")
def release_notes(changes: list[str]) -> Iterator[str]:
    for change in changes:
        yield from llm.stream(f"Release note for: {change}")
        yield "\n"


if __name__ == "__main__":
    print("Release notes (streamed):")
    with agentsteps.run() as collected:
        for chunk in release_notes(CHANGES):
            print(chunk, end="", flush=True)
    notes = collected.steps[-1]
    print(
        f"\n(stopped by the budget in note {len(llm.calls)} of {len(CHANGES)}: "
        f"{notes.subtree_usage.total_tokens} of {BUDGET.max_tokens} tokens; "
        f"status {notes.status})"
    )
    print()
    agentsteps.print_report(collected)
