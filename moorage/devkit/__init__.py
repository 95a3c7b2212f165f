"""Helpers for tests, the demo and benchmarks: fixtures that build OCI bundles."""
