"""Dockerfile builds: the build context, the steps, the cache."""
