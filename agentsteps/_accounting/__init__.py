"""Budgets, usage ledgers, charging usage to the active steps, and pricing."""
