"""A real moord on a temporary socket and data-root, driven by the real docker CLI and SDK."""

from __future__ import annotations

import tempfile
from collections.abc import Iterator

import pytest
from comparekit import Pair
from enginekit import Daemon, Engine, Footprint, moord_running, reap, start_daemon, stop_daemon
from peers import Dockerd, dockerd_available, start_dockerd, stop_dockerd


@pytest.fixture
def names(pair: Pair) -> Iterator[list[str]]:
    """Container names a comparison test uses (a module's `pair`); removed from both
    daemons at teardown."""
    made: list[str] = []
    yield made
    if made:
        pair.both("rm", "-f", *made)


@pytest.fixture(scope="session")
def moord() -> Iterator[Daemon]:
    """One daemon for the session (tests share it and clean up their own objects)."""
    with moord_running("moord-test-") as daemon:
        yield daemon


# --------------------------------------------------------------------------- engine core (issue 9)


@pytest.fixture(scope="module", params=["moord", "dockerd"])
def engine(request: pytest.FixtureRequest, busybox_tar: bytes) -> Iterator[Engine]:
    """A fresh moord, then the reference dockerd, each running a module's scenarios.

    Both must behave as Docker does: the dockerd run shows the scenario is right. At the
    end of the module neither may have left a mount under its directory, a cgroup of one
    of its containers or a process tied to it."""
    name: str = request.param
    if name == "dockerd" and not dockerd_available():
        pytest.skip("needs dockerd")
    with tempfile.TemporaryDirectory(prefix=f"core-{name}-") as base:
        daemon: Daemon | Dockerd = start_daemon(base) if name == "moord" else start_dockerd(base)
        found = Engine(name, daemon, base, Footprint.nothing(), set())
        left: list[str] = []
        try:
            daemon.docker("import", "-", "busybox:latest", input=busybox_tar, check=True)
            # Helpers a daemon starts with its first container belong in the baseline.
            daemon.docker("run", "--rm", "busybox:latest", "true", check=True)
            found.baseline = Footprint.take(base, set())
            yield found
            left = found.clean()
        finally:
            if isinstance(daemon, Daemon):
                stop_daemon(daemon)
            else:
                stop_dockerd(daemon)
            # With the daemon gone, whatever is still tied to its directory is left over.
            reap(base, found.ids, Footprint.nothing())
        assert not left, f"{name} left behind:\n  " + "\n  ".join(left)


@pytest.fixture
def core(engine: Engine) -> Iterator[Engine]:
    """The module's engine for one test; the containers the test made are removed after it
    and must leave nothing behind."""
    mine = Engine(engine.name, engine.daemon, engine.base, engine.baseline, set())
    yield mine
    engine.ids.update(mine.ids)
    left = mine.clean(mine.ids)
    reap(mine.base, mine.ids, mine.baseline)
    assert not left, f"{mine.name} left behind:\n  " + "\n  ".join(left)
