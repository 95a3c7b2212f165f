"""Volume routes (Engine API "Volume" section)."""
