"""The parts of `agentsteps.testing`: the token estimate, replies, the model and its streams."""
