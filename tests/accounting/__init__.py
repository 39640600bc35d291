"""Values and state: budgets, boundaries, pricing, unpriced usage, shared budgets and stores."""
