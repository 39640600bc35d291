"""
Span attribute and event names, in one place.

The ``gen_ai.*`` names follow the OpenTelemetry GenAI semantic conventions; they are
defined here as plain strings because the conventions package marks its GenAI constants
deprecated while the conventions move repository. Everything agentsteps adds of its own
lives under ``agentsteps.*``. `docs/attributes.md` lists them all with their meaning.
"""

from __future__ import annotations

# OpenTelemetry GenAI conventions
GEN_AI_OPERATION_NAME = "gen_ai.operation.name"
GEN_AI_PROVIDER_NAME = "gen_ai.provider.name"
GEN_AI_AGENT_NAME = "gen_ai.agent.name"
GEN_AI_REQUEST_MODEL = "gen_ai.request.model"
GEN_AI_RESPONSE_MODEL = "gen_ai.response.model"
GEN_AI_USAGE_INPUT_TOKENS = "gen_ai.usage.input_tokens"
GEN_AI_USAGE_OUTPUT_TOKENS = "gen_ai.usage.output_tokens"
GEN_AI_USAGE_CACHE_READ_INPUT_TOKENS = "gen_ai.usage.cache_read.input_tokens"
GEN_AI_USAGE_CACHE_WRITE_INPUT_TOKENS = "gen_ai.usage.cache_write.input_tokens"
GEN_AI_USAGE_REASONING_OUTPUT_TOKENS = "gen_ai.usage.reasoning.output_tokens"
ERROR_TYPE = "error.type"

OPERATION_INVOKE_AGENT = "invoke_agent"
OPERATION_INVOKE_WORKFLOW = "invoke_workflow"
OPERATION_CHAT = "chat"
PROVIDER_AGENTSTEPS = "agentsteps"

# agentsteps' own namespace
KIND = "agentsteps.kind"  # "step" | "persona" | "llm_call"
STEP_NAME = "agentsteps.step.name"
STEP_FUNCTION = "agentsteps.step.function"
STEP_STATUS = "agentsteps.step.status"
STEP_ERROR_BOUNDARY = "agentsteps.step.error_boundary"
STEP_MODEL = "agentsteps.step.model"
PERSONA_NAME = "agentsteps.persona.name"
PERSONA_FUNCTION = "agentsteps.persona.function"
PERSONA_STATUS = "agentsteps.persona.status"
BUDGET_MAX_TOKENS = "agentsteps.budget.max_tokens"
BUDGET_MAX_USD = "agentsteps.budget.max_usd"
BUDGET_MAX_LLM_CALLS = "agentsteps.budget.max_llm_calls"
BUDGET_EXHAUSTED_LIMIT = "agentsteps.budget.exhausted_limit"

# Set on the root step of a `remote_parent` scope: who called from the other process.
REMOTE_CALLER_STEP_PATH = "agentsteps.remote.caller_step_path"
REMOTE_CALLER_PERSONA = "agentsteps.remote.caller_persona"

# Usage is written twice on a step span: what the step recorded itself ("self") and what
# its whole subtree recorded ("subtree"). Backends that sum a metric over all spans of a
# trace should sum the "self" figures, which never count anything twice.
USAGE_FIELDS = (
    "input_tokens",
    "output_tokens",
    "cache_read_tokens",
    "cache_write_tokens",
    "reasoning_tokens",
    "cost_usd",
    "llm_calls",
    "unpriced_calls",
)
SELF_USAGE = {f: f"agentsteps.usage.self.{f}" for f in USAGE_FIELDS}
SUBTREE_USAGE = {f: f"agentsteps.usage.subtree.{f}" for f in USAGE_FIELDS}

# Span events
EVENT_BUDGET_EXHAUSTED = "agentsteps.budget_exhausted"
EVENT_HOOK = "agentsteps.hook"
EVENT_REMOTE_USAGE = "agentsteps.remote_usage"
