"""Fixtures: our registry and the distribution registry, one of each per module."""

from __future__ import annotations

import tempfile
from collections.abc import Iterator

import pytest
from registrykit import Server, start_distribution, start_moor


@pytest.fixture(scope="module")
def moor_registry() -> Iterator[Server]:
    with tempfile.TemporaryDirectory(prefix="moor-registry-") as base, start_moor(base) as server:
        yield server


@pytest.fixture(scope="module")
def distribution() -> Iterator[Server]:
    with tempfile.TemporaryDirectory(prefix="distribution-") as base, \
            start_distribution(base) as server:
        yield server


@pytest.fixture(params=["moor", "distribution"])
def registry(request: pytest.FixtureRequest) -> Server:
    """Both registries: a behaviour both show is the spec's, not an accident of ours."""
    name = "moor_registry" if request.param == "moor" else "distribution"
    return request.getfixturevalue(name)
