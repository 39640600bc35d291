"""Telemetry out: spans, conventions, exporters, metrics; real Jaeger, Phoenix and Prometheus."""
