"""OpenTelemetry metrics: model-call (GenAI) and spend metrics, and their set-up."""
