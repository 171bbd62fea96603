"""The Anthropic Messages API on localhost, with the real cache billing rules (to be built: issue 3)."""
