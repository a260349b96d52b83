"""Loss functions: the task losses here; method losses in their own modules."""
