"""Per-module fixtures of the machine tests: each module its own store and local moord."""

from __future__ import annotations

import os
import subprocess
from collections.abc import Iterator

import pytest
from enginekit import Daemon, start_daemon, stop_daemon
from machinekit import Env

from moorage.devkit import busybox


@pytest.fixture(scope="module")
def env(tmp_path_factory: pytest.TempPathFactory, request: pytest.FixtureRequest) -> Env:
    return Env(tmp_path_factory.mktemp("machine"), request.module.NAME)


@pytest.fixture(scope="module")
def local_moord(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Daemon]:
    """A moord on the host holding busybox:latest, for `docker save | docker --context load`
    (there is no Docker Hub)."""
    base = str(tmp_path_factory.mktemp("local"))
    daemon = start_daemon(base)
    try:
        rootfs = os.path.join(base, "rootfs")
        busybox.build_rootfs(rootfs)
        tar = subprocess.run(["tar", "-C", rootfs, "-c", "."], capture_output=True, check=True)
        assert daemon.docker("import", "-", "busybox:latest", input=tar.stdout).returncode == 0
        yield daemon
    finally:
        stop_daemon(daemon)
