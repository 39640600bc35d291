"""Model calls: llm_call, metered streams, usage capture, one span per call, the offline model."""
