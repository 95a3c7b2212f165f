"""Exec instances: create, start (hijacked or detached), resize, inspect."""
