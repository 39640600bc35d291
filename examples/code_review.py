"""
A code-review pipeline with three personas, run offline on scripted models.

    python examples/code_review.py               # narrative, then the run report
    agentsteps run examples/code_review.py       # the same, traced to agentsteps-trace.jsonl

The author plans, patches and tries to write tests; the reviewer reviews; the merger
merges. Every step has a budget, and the run shows what budgets are for:

- ``write_tests`` overruns its budget with ``error_boundary="continue"``: it is skipped
  and the author carries on without new tests;
- the reviewer's step passes 80% of its budget and a threshold hook warns;
- ``resolve_conflicts`` overruns with ``error_boundary="escalate"`` on the small model,
  and the merger persona hands the work to the stronger one.

The models are `agentsteps.testing.ScriptedModel`s: no API key, no network, the same
numbers on every run.
"""

from __future__ import annotations

import agentsteps
from agentsteps import Budget, HookEvent, StepEscalated, on_persona, persona, step
from agentsteps.testing import ScriptedModel

PR = 'PR #42 "retry loop ignores the caller\'s timeout"'

PATCH = """\
--- a/client/retry.py
+++ b/client/retry.py
@@ -12,9 +12,13 @@ class RetryPolicy:
-    def run(self, call):
-        for attempt in range(self.max_attempts):
+    def run(self, call, timeout=None):
+        deadline = None if timeout is None else time.monotonic() + timeout
+        for attempt in range(self.max_attempts):
+            if deadline is not None and time.monotonic() >= deadline:
+                raise TimeoutError(f"gave up after {attempt} attempts")
             try:
                 return call()
             except TransientError:
                 time.sleep(self.backoff(attempt))
"""

TESTS = "\n".join(
    f"def test_retry_{case}():\n    policy = RetryPolicy(max_attempts=5)\n"
    f"    assert policy.run(flaky({n}), timeout={n / 10}) == 'ok'\n"
    for n, case in enumerate(
        ["first_try", "second_try", "deadline", "no_timeout", "zero", "backoff", "jitter"], 1
    )
)

MERGED = PATCH.replace("a/client", "main/client") + "\n".join(
    f"# kept from main: retry metric #{n} (counter, labelled by attempt)" for n in range(24)
)

SCRIPT = {
    "PLAN": "1. Pass the caller's timeout into RetryPolicy.run.\n"
    "2. Stop retrying once the deadline has passed.\n3. Cover both paths with tests.",
    "PATCH": PATCH,
    "TESTS": TESTS,
    "READ": "The patch threads a deadline through RetryPolicy.run and raises "
    "TimeoutError once it has passed; retries before the deadline are unchanged.",
    "VERDICT": "Approve. One nit: give the deadline check its own helper so the "
    "loop stays readable. No blocking issues.",
    "MERGE": MERGED,
}


def reply_for(prompt: str) -> str:
    """The scripted model's answer: chosen by the task word the prompt starts with."""
    return SCRIPT[prompt.split(":", 1)[0]]


# One model client per persona, each with its own system prompt; the prompt cache makes
# the repeated system prompt of a persona's later calls count as cached input. Each call
# takes 20 ms, so the report and the waterfall show realistic timings.
author_llm = ScriptedModel(
    reply_for, system="You are a careful Python developer.", prompt_cache=True, latency=0.02
)
reviewer_llm = ScriptedModel(
    reply_for, system="You review Python patches.", prompt_cache=True, latency=0.02
)
merger_llm = ScriptedModel(
    reply_for, system="You merge patches onto main.", prompt_cache=True, latency=0.02
)


def say(who: str, text: str) -> None:
    print(f"[{who}] {text}")


@on_persona("*", HookEvent.BUDGET_THRESHOLD, threshold_pct=80)
def warn_at_80_percent(event: agentsteps.HookContext) -> None:
    """Warn when a step of any persona has used 80% of its budget."""
    # A record that jumps past 100% fires this too; the step's error boundary, not a
    # warning, is what handles an overrun.
    if event.budget_pct is not None and event.budget_pct <= 100:
        who = event.persona or "-"
        say(who, f"warning: {event.step_name} is at {event.budget_pct:.0f}% of its budget")


# -- the author ------------------------------------------------------------------------


@step(budget=Budget(max_tokens=200))
def plan_change(issue: str) -> str:
    return author_llm.complete(f"PLAN: how to fix {issue}").text


@step(budget=Budget(max_tokens=600))
def write_patch(plan: str) -> str:
    return author_llm.complete(f"PATCH: implement this plan\n{plan}").text


@step(budget=Budget(max_tokens=300), error_boundary="continue", default=None)
def write_tests(patch: str) -> str | None:
    return author_llm.complete(f"TESTS: write tests for\n{patch}").text


@persona(name="author", model="scripted-mini")
def author(issue: str) -> str:
    plan = plan_change(issue)
    say("author", f"plan_change: {len(plan.splitlines())}-step plan")
    patch = write_patch(plan)
    say("author", f"write_patch: {len(patch.splitlines())}-line patch")
    if write_tests(patch) is None:
        say("author", "write_tests: out of budget, skipped; carrying on without new tests")
    return patch


# -- the reviewer ----------------------------------------------------------------------


@step(budget=Budget(max_tokens=350))
def review_patch(patch: str) -> str:
    summary = reviewer_llm.complete(f"READ: summarise this patch\n{patch}").text
    return reviewer_llm.complete(f"VERDICT: given this summary, approve or not?\n{summary}").text


@persona(name="reviewer", model="scripted-mini")
def reviewer(patch: str) -> str:
    verdict = review_patch(patch)
    say("reviewer", f"review_patch: {verdict.split('.')[0]}")
    return verdict


# -- the merger ------------------------------------------------------------------------


def _resolve(patch: str, verdict: str) -> str:
    return merger_llm.complete(f"MERGE: rebase onto main, keeping main's changes\n{patch}").text


# The same work declared twice: a cheap attempt that escalates when its budget runs out,
# and the stronger model with a budget in dollars that the persona falls back on.
resolve_conflicts = step(
    name="resolve_conflicts",
    model="scripted-mini",
    budget=Budget(max_tokens=600),
    error_boundary="escalate",
)(_resolve)
resolve_conflicts_strong = step(
    name="resolve_conflicts", model="scripted-pro", budget=Budget(max_usd=0.05)
)(_resolve)


@persona(name="merger")
def merger(patch: str, verdict: str) -> str:
    try:
        return resolve_conflicts(patch, verdict)
    except StepEscalated as exc:
        say("merger", f"resolve_conflicts on scripted-mini: {exc}")
        say("merger", "escalating: handing the merge to scripted-pro")
        merged = resolve_conflicts_strong(patch, verdict)
        say(
            "merger",
            f"resolve_conflicts on scripted-pro: merged ({len(merged.splitlines())} lines)",
        )
        return merged


def main() -> None:
    print(f"Reviewing {PR} with scripted models (offline)\n")
    patch = author(PR)
    verdict = reviewer(patch)
    merger(patch, verdict)
    print("\ndone: merged")


if __name__ == "__main__":
    with agentsteps.run() as collected:
        main()
    print()
    agentsteps.print_report(collected)
