"""Engines for `moor compose`: the reference dockerd in a network namespace of its own (so
that Compose's bridge networks stay off the host), and moord."""

from __future__ import annotations

import fcntl
import os
import subprocess
import tempfile
from collections.abc import Iterator

import pytest
from composekit import ComposeEngine
from enginekit import Daemon, start_daemon, stop_daemon
from peers import Dockerd, dockerd_available, start_dockerd, stop_dockerd


@pytest.fixture(scope="module", params=["dockerd", "moord"])
def engine(request: pytest.FixtureRequest, busybox_tar: bytes) -> Iterator[ComposeEngine]:
    name: str = request.param
    if name == "dockerd" and not dockerd_available():
        pytest.skip("needs dockerd")
    with tempfile.TemporaryDirectory(prefix=f"compose-{name}-") as base:
        daemon: Daemon | Dockerd = (start_dockerd(base, networking=True) if name == "dockerd"
                                    else start_daemon(base))
        try:
            daemon.docker("import", "-", "busybox:latest", input=busybox_tar, check=True)
            yield ComposeEngine(name, daemon, base)
        finally:
            leftover = daemon.docker("ps", "-aq").stdout.decode().split()
            if leftover:
                daemon.docker("rm", "-f", *leftover)
            if isinstance(daemon, Daemon):
                stop_daemon(daemon)
            else:
                stop_dockerd(daemon)


# The realistic application's base: Debian bookworm (minbase) with python3, redis-server and
# postgresql, from the Debian mirror; made once, then cached across runs (~40 s, 0.5 GB).
DEBIAN_APP_PACKAGES = "python3,redis-server,postgresql"


@pytest.fixture(scope="session")
def debian_app_tar() -> str:
    cache = os.path.join(os.environ.get("XDG_CACHE_HOME") or os.path.expanduser("~/.cache"),
                         "moorage")
    path = os.path.join(cache, "bookworm-app.tar")
    os.makedirs(cache, exist_ok=True)
    # Parallel workers and other runs on the machine make it once, never over each other.
    with open(path + ".lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if not os.path.isfile(path):
            partial = path + ".part.tar"  # mmdebstrap picks the format by the extension
            subprocess.run(["mmdebstrap", "--quiet", "--variant=minbase",
                            f"--include={DEBIAN_APP_PACKAGES}", "bookworm", partial],
                           check=True, timeout=900)
            os.replace(partial, path)
    return path
