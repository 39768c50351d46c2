"""The arena's seed agent files (read as program files; each runs in the sandbox)."""
