"""Shared fixtures: busybox bundles, runtimes under test, and a whole-run leak check.

The leak check snapshots the host before the first test and compares after the
last: a runtime that leaves a mount, a cgroup or a process behind fails the run
even when every single test passed.

No test may reach Docker Hub: a `docker run` of an image the daemon lacks makes the CLI
ask its daemon to pull it from registry-1.docker.io. Every process of the run (daemons,
CLIs, registries) gets an HTTPS proxy that refuses every connection, so such a pull
fails at once on 127.0.0.1 and the Hub's name is never resolved; loopback is exempt.
"""

from __future__ import annotations

import os
import socket
import subprocess
import time
import urllib.parse
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from runtimekit import (
    BINARIES,
    BundleFactory,
    Runtime,
    available,
    cgroup_dirs,
    is_leaked_process,
    mount_table,
    proc_starttime,
    processes,
)

from moorage.devkit import busybox


@pytest.fixture
def make_runtime(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Callable[[str], Runtime]]:
    """Factory: ``make_runtime("runc")`` → a Runtime whose containers are deleted at teardown."""
    made: list[Runtime] = []

    def factory(name: str) -> Runtime:
        root = tmp_path_factory.mktemp(f"state-{name}")
        rt = Runtime(name, BINARIES[name], str(root))
        made.append(rt)
        return rt

    yield factory
    for rt in made:
        rt.cleanup()


@pytest.fixture(params=["moor-runtime", "runc"])
def runtime(request: pytest.FixtureRequest, make_runtime: Callable[[str], Runtime]) -> Runtime:
    """The runtime under test; runc runs the same assertions as the reference."""
    name: str = request.param
    if not available(name):
        pytest.skip(f"{name} not installed")
    return make_runtime(name)


@pytest.fixture
def moor(make_runtime: Callable[[str], Runtime]) -> Runtime:
    return make_runtime("moor-runtime")


# --------------------------------------------------------------------------- bundles


@pytest.fixture(scope="session")
def busybox_rootfs(tmp_path_factory: pytest.TempPathFactory) -> str:
    """One busybox rootfs per session; bundles copy it (cp -a is ~10 ms)."""
    dest = str(tmp_path_factory.mktemp("busybox") / "rootfs")
    busybox.build_rootfs(dest)
    return dest


@pytest.fixture(scope="session")
def busybox_tar(busybox_rootfs: str) -> bytes:
    """The rootfs as a tarball for `docker import` (engine and compose tests)."""
    return subprocess.run(["tar", "-C", busybox_rootfs, "-c", "."], capture_output=True,
                          check=True).stdout




@pytest.fixture
def bundle(tmp_path: Path, busybox_rootfs: str) -> BundleFactory:
    """Factory: ``bundle(config=None, args=[...], name="b")`` → path of a fresh bundle."""
    counter = [0]

    def factory(
        config: dict[str, Any] | None = None,
        *,
        args: list[str] | None = None,
        name: str | None = None,
    ) -> str:
        if config is None:
            config = busybox.default_config(args or ["true"])
        counter[0] += 1
        path = tmp_path / (name or f"bundle{counter[0]}")
        return busybox.make_bundle(str(path), config, busybox_rootfs)

    return factory


# --------------------------------------------------------------------------- no Docker Hub

# Bound and never listening: a connection to it is refused, and no other process can
# take the port while the run lasts.
_REFUSING = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
_REFUSING.bind(("127.0.0.1", 0))
# The package registries the machine may reach stay direct: `moor machine`'s image takes
# its wheels from PyPI (or the index pip is configured with).
_PACKAGE_INDEXES = {"pypi.org", "files.pythonhosted.org"} | {
    urllib.parse.urlsplit(url).hostname or ""
    for name in ("PIP_INDEX_URL", "PIP_EXTRA_INDEX_URL")
    for url in os.environ.get(name, "").split()} - {""}
HUB_GUARD = {"HTTPS_PROXY": f"http://127.0.0.1:{_REFUSING.getsockname()[1]}",
             "NO_PROXY": ",".join(["localhost", "127.0.0.1", "::1", *sorted(_PACKAGE_INDEXES)])}
# Set at import, before any fixture starts a daemon; both spellings, as Go and Python
# each prefer one.
for _name, _value in HUB_GUARD.items():
    os.environ[_name] = os.environ[_name.lower()] = _value


# --------------------------------------------------------------------------- leak check


def network_objects() -> set[str]:
    """The host's links, nftables tables and named network namespaces."""
    links = subprocess.run(["ip", "-o", "link"], capture_output=True, text=True).stdout
    tables = subprocess.run(["nft", "list", "tables"], capture_output=True, text=True).stdout
    found = {f"link: {line.split(':')[1].strip().split('@')[0]}"
             for line in links.splitlines() if line.count(":") >= 2}
    found |= {f"nft: {line.strip()}" for line in tables.splitlines() if line.strip()}
    found |= {f"netns: {name}" for name in
              (os.listdir("/run/netns") if os.path.isdir("/run/netns") else ())}
    return found


@pytest.fixture(scope="session", autouse=True)
def no_leaks() -> Iterator[None]:
    """After the whole run, no new mounts, moor/test cgroups, container processes, network
    links, nftables tables or named network namespaces remain."""
    mounts, cgroups, procs = mount_table(), cgroup_dirs(), processes()
    networking = network_objects()
    yield
    me = os.getpid()
    problems: list[str] = []
    # Processes killed by `delete --force` can take a moment to be reaped.
    for _ in range(20):
        problems = []
        problems += [f"mount: {m}" for m in sorted(mount_table() - mounts)]
        problems += [f"cgroup: {c}" for c in sorted(cgroup_dirs() - cgroups)]
        problems += sorted(network_objects() - networking)
        for pid, cmd in sorted(processes().items()):
            if pid in procs and proc_starttime(pid) is not None and procs[pid] == cmd:
                continue
            if is_leaked_process(pid, me):
                problems.append(f"process: {pid} {cmd}")
        if not problems:
            return
        time.sleep(0.1)
    raise AssertionError("the test run leaked:\n  " + "\n  ".join(problems))
