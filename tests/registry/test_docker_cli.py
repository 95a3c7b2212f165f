"""The real docker CLI, through a real dockerd, logs in, pushes to and pulls from our registry."""

from __future__ import annotations

import json
import os
import subprocess
import tempfile
from collections.abc import Iterator

import pytest
from peers import Dockerd, dockerd_available, dockerd_running
from registrykit import Server, start_moor, write_htpasswd

from moorage.devkit.busybox import build_rootfs

pytestmark = pytest.mark.skipif(not dockerd_available(), reason="dockerd is not installed")


@pytest.fixture(scope="module")
def dockerd() -> Iterator[Dockerd]:
    with dockerd_running("registry-dockerd-") as daemon:
        yield daemon


@pytest.fixture(scope="module")
def authed_registry() -> Iterator[Server]:
    with tempfile.TemporaryDirectory(prefix="moor-registry-docker-") as base:
        htpasswd = write_htpasswd(os.path.join(base, "htpasswd"), {"dev": "letmein"})
        with start_moor(base, "--htpasswd", htpasswd) as server:
            yield server


def _ok(result: subprocess.CompletedProcess[bytes]) -> str:
    assert result.returncode == 0, result.stderr.decode()
    return result.stdout.decode()


def test_login_push_pull(dockerd: Dockerd, authed_registry: Server, tmp_path: str) -> None:
    image = f"{authed_registry.host}/busybox:latest"
    rootfs = os.path.join(str(tmp_path), "rootfs")
    build_rootfs(rootfs)
    tar = subprocess.run(["tar", "-C", rootfs, "-c", "."], capture_output=True, check=True).stdout
    _ok(dockerd.docker("import", "-", image, input=tar))

    refused = dockerd.docker("push", image)
    assert refused.returncode != 0
    assert "no basic auth credentials" in refused.stderr.decode() or \
        "unauthorized" in refused.stderr.decode()
    wrong = dockerd.docker("login", authed_registry.host, "-u", "dev", "--password-stdin",
                           input="nope")
    assert wrong.returncode != 0
    _ok(dockerd.docker("login", authed_registry.host, "-u", "dev", "--password-stdin",
                       input="letmein"))

    pushed = _ok(dockerd.docker("push", image))
    assert "digest: sha256:" in pushed
    pushed_digest = pushed.split("digest: ")[1].split()[0]
    _ok(dockerd.docker("rmi", image))
    _ok(dockerd.docker("pull", image))
    info = json.loads(_ok(dockerd.docker("image", "inspect", image)))[0]
    assert f"{authed_registry.host}/busybox@{pushed_digest}" in info["RepoDigests"]
    # A second push finds every layer present (HEAD) and uploads nothing.
    assert "Layer already exists" in _ok(dockerd.docker("push", image))
    _ok(dockerd.docker("logout", authed_registry.host))
