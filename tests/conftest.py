"""Shared fixtures: busybox bundles, runtimes under test, and a whole-run leak check.

The leak check snapshots the host before the first test and compares after the
last: a runtime that leaves a mount, a cgroup or a process behind fails the run
even when every single test passed. It looks only at what this run made
(runstate.py): other runs share the machine.

With pytest-xdist (`make test`), a test module is one unit of work, kept on one worker
with its module fixtures; the machine tests share one worker (scheduling.py).

No test may reach Docker Hub: a `docker run` of an image the daemon lacks makes the CLI
ask its daemon to pull it from registry-1.docker.io. Every process of the run (daemons,
CLIs, registries) gets an HTTPS proxy that refuses every connection, so such a pull
fails at once on 127.0.0.1 and the Hub's name is never resolved; loopback is exempt.
"""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import time
import urllib.parse
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import peers
import pytest
import runstate
from runtimekit import BINARIES, BundleFactory, Runtime, available

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


# --------------------------------------------------------------------------- the run

# Before any fixture makes a temporary folder: everything the run makes lives under it.
RUN_ROOT = runstate.run_root()


def _is_worker(config: pytest.Config) -> bool:
    return hasattr(config, "workerinput")


@pytest.hookimpl(tryfirst=True)
def pytest_configure(config: pytest.Config) -> None:
    # Short, so that sockets under tmp_path stay within 108 bytes; xdist gives each
    # worker a folder in it.
    if not _is_worker(config) and config.option.basetemp is None:
        config.option.basetemp = os.path.join(RUN_ROOT, "t")


@pytest.hookimpl(optionalhook=True)
def pytest_xdist_make_scheduler(config: pytest.Config, log: Any) -> Any:
    from scheduling import ModuleScheduling

    return ModuleScheduling(config, log)


# --------------------------------------------------------------------------- leak check
# Once per run, in the process that owns it (xdist's controller, or pytest alone): the
# snapshot is taken before the workers start and compared after they have all exited.

_LEAKS = pytest.StashKey[list[str]]()
_BEFORE = pytest.StashKey[runstate.Snapshot]()
_CGROUP_PARENTS = pytest.StashKey[set[str]]()


def pytest_sessionstart(session: pytest.Session) -> None:
    if not _is_worker(session.config):
        session.config.stash[_BEFORE] = runstate.Snapshot.take()
        session.config.stash[_CGROUP_PARENTS] = peers.docker_cgroup_parents()


@pytest.hookimpl(trylast=True)
def pytest_sessionfinish(session: pytest.Session) -> None:
    """After the whole run, nothing the run made may remain: mounts, cgroups, container
    processes, network links, nftables tables or named network namespaces."""
    before = session.config.stash.get(_BEFORE, None)
    if before is None:
        return
    # Workers' dockerds share them: the last one stopped may not have been the one that
    # made them, so whatever appeared during the run goes now that all have stopped.
    peers.remove_docker_cgroup_parents(session.config.stash[_CGROUP_PARENTS])
    problems: list[str] = []
    # Processes killed by `delete --force` can take a moment to be reaped, and another
    # run's container may sit for a moment in a cgroup it has not yet entered.
    for _ in range(30):
        problems = before.leaks()
        if not problems:
            break
        time.sleep(0.1)
    session.config.stash[_LEAKS] = problems
    if problems:
        session.exitstatus = pytest.ExitCode.TESTS_FAILED
    elif session.exitstatus in (pytest.ExitCode.OK, pytest.ExitCode.NO_TESTS_COLLECTED):
        shutil.rmtree(RUN_ROOT, ignore_errors=True)


def pytest_terminal_summary(terminalreporter: Any, config: pytest.Config) -> None:
    problems = config.stash.get(_LEAKS, [])
    if problems:
        terminalreporter.write_sep("=", "the test run leaked", red=True)
        terminalreporter.write_line("\n".join(f"  {p}" for p in problems))
    if problems or terminalreporter.stats.get("failed") or terminalreporter.stats.get("error"):
        terminalreporter.write_line(f"the run's files are kept in {RUN_ROOT}")
