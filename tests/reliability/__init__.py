"""Reliability: cancellation, interrupts, threads, fork, memory, bad and hostile input."""
