"""Container routes (Engine API "Container" section)."""
