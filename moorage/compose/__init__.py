"""`moor compose`: the Compose Specification, client-side, over the Engine API only."""
