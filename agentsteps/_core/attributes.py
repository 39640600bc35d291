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
# The released conventions package (and the genai registry) name cache writes
# "cache_creation"; a draft renames them "cache_write". Written: the released name.
GEN_AI_USAGE_CACHE_CREATION_INPUT_TOKENS = "gen_ai.usage.cache_creation.input_tokens"
GEN_AI_USAGE_REASONING_OUTPUT_TOKENS = "gen_ai.usage.reasoning.output_tokens"
ERROR_TYPE = "error.type"
# Older names some instrumentations still write; read (never written) by usage capture.
GEN_AI_SYSTEM = "gen_ai.system"
GEN_AI_USAGE_PROMPT_TOKENS = "gen_ai.usage.prompt_tokens"
GEN_AI_USAGE_COMPLETION_TOKENS = "gen_ai.usage.completion_tokens"
GEN_AI_USAGE_CACHE_WRITE_INPUT_TOKENS = "gen_ai.usage.cache_write.input_tokens"  # the draft's
# OpenLLMetry's names (one underscore-joined segment), for Anthropic spans among others.
LLM_USAGE_CACHE_CREATION_INPUT_TOKENS = "gen_ai.usage.cache_creation_input_tokens"
LLM_USAGE_CACHE_READ_INPUT_TOKENS = "gen_ai.usage.cache_read_input_tokens"
# Cache-write names read by usage capture and reports, preferred first.
CACHE_WRITE_NAMES = (
    GEN_AI_USAGE_CACHE_CREATION_INPUT_TOKENS,
    GEN_AI_USAGE_CACHE_WRITE_INPUT_TOKENS,
    LLM_USAGE_CACHE_CREATION_INPUT_TOKENS,
)
CACHE_READ_NAMES = (GEN_AI_USAGE_CACHE_READ_INPUT_TOKENS, LLM_USAGE_CACHE_READ_INPUT_TOKENS)

# OpenInference span kind (Arize Phoenix; Langfuse reads it before gen_ai.operation.name).
# Neither backend knows invoke_workflow: without this, Phoenix shows a step as UNKNOWN and
# Langfuse, seeing a model attribute, as a GENERATION (whose subtree usage it may count again).
OPENINFERENCE_SPAN_KIND = "openinference.span.kind"
OPENINFERENCE_KIND_AGENT = "AGENT"
OPENINFERENCE_KIND_CHAIN = "CHAIN"  # the `agentsteps run` root span
OPENINFERENCE_KIND_LLM = "LLM"  # model-call spans: the ones Phoenix counts tokens and cost on
OPENINFERENCE_KIND_EMBEDDING = "EMBEDDING"
# OpenInference's model-call attributes, which Phoenix (and Arize) read on LLM spans.
LLM_MODEL_NAME = "llm.model_name"
LLM_PROVIDER = "llm.provider"
LLM_TOKEN_COUNT_PROMPT = "llm.token_count.prompt"  # input, cached included
LLM_TOKEN_COUNT_COMPLETION = "llm.token_count.completion"  # output, reasoning included
LLM_TOKEN_COUNT_TOTAL = "llm.token_count.total"
LLM_TOKEN_COUNT_CACHE_READ = "llm.token_count.prompt_details.cache_read"
LLM_TOKEN_COUNT_CACHE_WRITE = "llm.token_count.prompt_details.cache_write"
LLM_TOKEN_COUNT_REASONING = "llm.token_count.completion_details.reasoning"
LLM_COST_TOTAL = "llm.cost.total"  # USD

OPERATION_INVOKE_AGENT = "invoke_agent"
OPERATION_INVOKE_WORKFLOW = "invoke_workflow"
OPERATION_CHAT = "chat"
OPERATION_EMBEDDINGS = "embeddings"
# Operations whose spans describe one request to a model (as opposed to agents, tools).
MODEL_OPERATIONS = frozenset({"chat", "text_completion", "generate_content", "embeddings"})

# agentsteps' own namespace
KIND = "agentsteps.kind"  # "step" | "persona" | "llm_call"
KIND_LLM_CALL = "llm_call"
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

# On a model-call span (`llm_call`). The GenAI conventions have no cost attribute yet (a
# draft proposes gen_ai.usage.cost.*), so the cost is in our namespace, and written again
# where backends read it: Langfuse's gen_ai.usage.cost and OpenInference's llm.cost.total.
GEN_AI_USAGE_COST = "gen_ai.usage.cost"  # Langfuse: the generation's cost in USD
LLM_CALL_COST_USD = "agentsteps.usage.cost_usd"
LLM_CALL_COST_SOURCE = "agentsteps.usage.cost_source"  # provider | user | catalog | unknown
LLM_CALL_INPUT_ESTIMATE = "agentsteps.llm_call.input_tokens_estimate"
# Set (True) on a model-call span whose request another instrumentation's span describes
# too, below or above it: that span carries the usage for backends, this one does not.
LLM_CALL_USAGE_ELSEWHERE = "agentsteps.llm_call.usage_on_other_span"
LLM_CALL_MAX_OUTPUT_TOKENS = "agentsteps.llm_call.max_output_tokens"

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
HOOK_EVENT = "agentsteps.hook.event"  # which HookEvent fired
HOOK_HANDLER = "agentsteps.hook.handler"  # qualified name of the handler that ran
HOOK_DENIED = "agentsteps.hook.denied"  # the reason, when this handler denied the step
