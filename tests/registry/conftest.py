"""Fixtures: our registry and the distribution registry, one of each per module."""

from __future__ import annotations

import tempfile
from collections.abc import Iterator

import pytest
from registrykit import Server, start_distribution, start_moor, stop_server


@pytest.fixture(scope="module")
def moor_registry() -> Iterator[Server]:
    with tempfile.TemporaryDirectory(prefix="moor-registry-") as base:
        server = start_moor(base)
        try:
            yield server
        finally:
            stop_server(server)


@pytest.fixture(scope="module")
def distribution() -> Iterator[Server]:
    with tempfile.TemporaryDirectory(prefix="distribution-") as base:
        server = start_distribution(base)
        try:
            yield server
        finally:
            stop_server(server)


@pytest.fixture(params=["moor", "distribution"])
def registry(request: pytest.FixtureRequest) -> Server:
    """Both registries: a behaviour both show is the spec's, not an accident of ours."""
    name = "moor_registry" if request.param == "moor" else "distribution"
    return request.getfixturevalue(name)
