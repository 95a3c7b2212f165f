"""`moor` and the real docker CLI side by side, against the same daemon: a real dockerd
(the reference) and moord (ours). Tests taking `clis` run once against each."""

from __future__ import annotations

import os
import subprocess
from collections.abc import Iterator

import pytest
from clikit import Clis
from enginekit import Daemon, moord_running
from peers import dockerd_available, dockerd_running

from moorage.devkit import busybox


def _import_busybox(clis: Clis, base: str) -> None:
    """busybox:latest from Debian's busybox-static, through `docker import` (no Hub)."""
    rootfs = os.path.join(base, "rootfs")
    busybox.build_rootfs(rootfs)
    tar = subprocess.run(["tar", "-C", rootfs, "-c", "."], capture_output=True, check=True)
    done = clis.docker("import", "-", "busybox:latest", input=tar.stdout)
    assert done.returncode == 0, done.stderr


@pytest.fixture(scope="session")
def dockerd_clis() -> Iterator[Clis]:
    if not dockerd_available():
        pytest.skip("dockerd not installed")
    with dockerd_running("moor-cli-") as daemon:
        base = os.path.dirname(daemon.data_root)
        clis = Clis(daemon.host, os.path.join(base, "docker-config"), "dockerd")
        _import_busybox(clis, base)
        yield clis


@pytest.fixture(scope="session")
def moord() -> Iterator[Daemon]:
    with moord_running("moor-cli-moord-") as daemon:
        yield daemon


@pytest.fixture(scope="session")
def moord_clis(moord: Daemon) -> Clis:
    clis = Clis(moord.host, os.path.join(moord.data_root, "..", "docker-config"), "moord")
    _import_busybox(clis, os.path.dirname(moord.data_root))
    return clis


@pytest.fixture(params=["dockerd", "moord"])
def clis(request: pytest.FixtureRequest) -> Iterator[Clis]:
    """Per test and per engine: removes every container the test left behind."""
    both: Clis = request.getfixturevalue(f"{request.param}_clis")
    yield both
    left = both.docker("ps", "-aq").stdout.decode().split()
    if left:
        both.docker("rm", "-f", *left)
