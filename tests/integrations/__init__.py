"""SDK instrumentation (instrument_*), the integrations modules, and the loopback fake providers."""
