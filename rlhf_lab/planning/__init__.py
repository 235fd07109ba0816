"""Memory and time plans of a run, from its settings and its model's shape alone (no torch, no weights)."""
