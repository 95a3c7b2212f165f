"""A real moord on a temporary socket and data-root, driven by the real docker CLI and SDK."""

from __future__ import annotations

import tempfile
from collections.abc import Iterator

import pytest
from enginekit import Daemon, start_daemon, stop_daemon


@pytest.fixture(scope="session")
def moord() -> Iterator[Daemon]:
    """One daemon for the session (tests share it and clean up their own objects)."""
    with tempfile.TemporaryDirectory(prefix="moord-test-") as base:
        daemon = start_daemon(base)
        try:
            yield daemon
        finally:
            stop_daemon(daemon)
