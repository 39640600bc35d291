"""agentsteps test suite."""
