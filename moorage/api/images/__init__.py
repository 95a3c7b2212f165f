"""Image routes (Engine API "Image" section)."""
