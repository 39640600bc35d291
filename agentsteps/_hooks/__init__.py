"""Hooks: the registry, registration API, event objects, and running handlers at each seam."""
