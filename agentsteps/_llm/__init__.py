"""Model calls: the llm_call scope, its budget pre-flight, metered streams, usage capture."""
