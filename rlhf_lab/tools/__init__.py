"""Tools a policy may call while it answers (algorithm.tools)."""
