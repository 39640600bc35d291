"""Exporting spans: configure_tracing, failure-proof exporters, the JSONL trace file."""
