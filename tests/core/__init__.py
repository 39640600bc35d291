"""Runtime: decorators, the active stack, records, argument checks, the public API and types."""
