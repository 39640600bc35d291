"""Hooks: registration and routing, events and payloads, handlers in control, budget events."""
