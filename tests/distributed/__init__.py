"""Across processes: propagation out and in, usage reported back, two real processes over HTTP."""
