"""Across processes: trace and budget propagation in and out, usage sent back."""
