"""Instrumenting the provider SDKs, so every model request made inside a step is an `llm_call`."""
