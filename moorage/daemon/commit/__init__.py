"""Commit and changes: a container\x27s writable layer as an image, and as a list."""
