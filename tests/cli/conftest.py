"""A real dockerd (and, for what it serves, a moord) driven by both `moor` and `docker`."""

from __future__ import annotations

import os
import subprocess
import sys
import tarfile
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass

import pytest
from enginekit import Daemon, start_daemon, stop_daemon
from peers import DOCKER_CLI, dockerd_available, start_dockerd, stop_dockerd

from moorage.devkit import busybox

MOOR = os.path.join(os.path.dirname(sys.executable), "moor")


@dataclass
class Clis:
    """The two command lines, pointed at the same daemon."""

    host: str
    config: str

    def env(self, **extra: str) -> dict[str, str]:
        env = {k: v for k, v in os.environ.items()
               if k not in ("DOCKER_HOST", "MOOR_HOST", "DOCKER_CONTEXT")}
        return {**env, "DOCKER_HOST": self.host, "DOCKER_CONFIG": self.config, **extra}

    def run(self, binary: str, *args: str, input: bytes | None = None,
            timeout: float = 60, **env: str) -> subprocess.CompletedProcess:
        return subprocess.run([binary, *args], env=self.env(**env), input=input,
                              capture_output=True, timeout=timeout)

    def moor(self, *args: str, **kw: object) -> subprocess.CompletedProcess:
        return self.run(MOOR, *args, **kw)  # type: ignore[arg-type]

    def docker(self, *args: str, **kw: object) -> subprocess.CompletedProcess:
        return self.run(DOCKER_CLI, *args, **kw)  # type: ignore[arg-type]


@pytest.fixture(scope="session")
def dockerd_clis() -> Iterator[Clis]:
    if not dockerd_available():
        pytest.skip("dockerd not installed")
    with tempfile.TemporaryDirectory(prefix="moor-cli-") as base:
        daemon = start_dockerd(base)
        clis = Clis(daemon.host, os.path.join(base, "docker-config"))
        try:
            rootfs = os.path.join(base, "rootfs")
            busybox.build_rootfs(rootfs)
            tar_path = os.path.join(base, "busybox.tar")
            with tarfile.open(tar_path, "w") as tar:
                tar.add(rootfs, arcname=".")
            with open(tar_path, "rb") as f:
                done = clis.docker("import", "-", "busybox:latest", input=f.read())
            assert done.returncode == 0, done.stderr
            yield clis
        finally:
            stop_dockerd(daemon)


@pytest.fixture
def clis(dockerd_clis: Clis) -> Iterator[Clis]:
    """Per test: removes every container the test left behind."""
    yield dockerd_clis
    left = dockerd_clis.docker("ps", "-aq").stdout.decode().split()
    if left:
        dockerd_clis.docker("rm", "-f", *left)


@pytest.fixture(scope="session")
def moord() -> Iterator[Daemon]:
    with tempfile.TemporaryDirectory(prefix="moor-cli-moord-") as base:
        daemon = start_daemon(base)
        try:
            yield daemon
        finally:
            stop_daemon(daemon)
