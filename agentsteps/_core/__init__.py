"""The runtime: the active stack, the decorators and scopes, and how a step starts and ends."""
