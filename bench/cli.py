"""moor vs the docker CLI against the same daemons: start-up and end-to-end commands.

    .venv/bin/python bench/cli.py [--runs 20]

Against a moord started here, moor and the docker CLI side by side: `version`,
`ps -a` with 50 containers, `run --rm busybox true`. Then the issue's end-to-end goal:
`moor run --rm busybox true` against moord vs `docker run --rm busybox true` against
a reference dockerd (goal: ratio <= 0.30), and the same commands against dockerd.
Runs alternate moor/docker so drift hits both; medians are printed with ratios.
The moorage sources are byte-compiled first: this environment sets
PYTHONDONTWRITEBYTECODE, and an installed moor always has its .pyc files.
"""

from __future__ import annotations

import argparse
import compileall
import os
import statistics
import subprocess
import sys
import tarfile
import tempfile
import time
from collections.abc import Callable

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path[:0] = [os.path.join(ROOT, "tests"), os.path.join(ROOT, "tests", "engine")]

from enginekit import start_daemon, stop_daemon  # noqa: E402
from peers import DOCKER_CLI, start_dockerd, stop_dockerd  # noqa: E402

from moorage.devkit import busybox  # noqa: E402

MOOR = os.path.join(os.path.dirname(sys.executable), "moor")


def timed(argv: list[str], env: dict[str, str]) -> float:
    start = time.perf_counter()
    done = subprocess.run(argv, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    elapsed = time.perf_counter() - start
    if done.returncode != 0:
        raise RuntimeError(f"{argv} failed: {done.stderr.decode()}")
    return elapsed


def compare(label: str, args: list[str], host: str, runs: int,
            docker_host: str | None = None) -> None:
    """moor against `host` vs docker against `docker_host` (the same daemon by default)."""
    ours_env = {**os.environ, "DOCKER_HOST": host}
    theirs_env = {**os.environ, "DOCKER_HOST": docker_host or host}
    for env in (ours_env, theirs_env):
        env.pop("DOCKER_CONTEXT", None)
    ours: list[float] = []
    theirs: list[float] = []
    for _ in range(2):  # warm the page cache and the daemon
        timed([MOOR, *args], ours_env)
        timed([DOCKER_CLI, *args], theirs_env)
    for _ in range(runs):
        ours.append(timed([MOOR, *args], ours_env))
        theirs.append(timed([DOCKER_CLI, *args], theirs_env))
    m, d = statistics.median(ours) * 1000, statistics.median(theirs) * 1000
    print(f"{label:<52} moor {m:7.1f} ms   docker {d:7.1f} ms   ratio {m / d:5.2f}")


def import_busybox(docker: Callable[..., object], archive: str) -> None:
    with open(archive, "rb") as f:
        docker("import", "-", "busybox:latest", input=f.read(), check=True)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--runs", type=int, default=20)
    runs = parser.parse_args().runs
    compileall.compile_dir(os.path.join(ROOT, "moorage", "cli"), quiet=1)
    compileall.compile_dir(os.path.join(ROOT, "moorage", "client"), quiet=1)
    compileall.compile_file(os.path.join(ROOT, "moorage", "__init__.py"), quiet=1)
    print(f"medians of {runs} alternating runs (moor: {MOOR}, docker: {DOCKER_CLI})")
    compare("--version (pure start-up)", ["--version"], "unix:///nonexistent", runs)
    true = ["run", "--rm", "busybox", "true"]
    with tempfile.TemporaryDirectory(prefix="bench-cli-") as base:
        rootfs = os.path.join(base, "rootfs")
        busybox.build_rootfs(rootfs)
        archive = os.path.join(base, "busybox.tar")
        with tarfile.open(archive, "w") as tar:
            tar.add(rootfs, arcname=".")
        os.makedirs(os.path.join(base, "moord"))
        os.makedirs(os.path.join(base, "dockerd"))
        moord = start_daemon(os.path.join(base, "moord"))
        dockerd = start_dockerd(os.path.join(base, "dockerd"))
        try:
            import_busybox(moord.docker, archive)
            import_busybox(dockerd.docker, archive)
            compare("version (moord)", ["version"], moord.host, runs)
            compare("run --rm busybox true (moord)", true, moord.host, runs)
            compare("run --rm busybox true (moor+moord vs docker+dockerd)", true, moord.host,
                    runs, docker_host=dockerd.host)
            compare("version (dockerd)", ["version"], dockerd.host, runs)
            compare("run --rm busybox true (dockerd)", true, dockerd.host, runs)
            for daemon in (moord, dockerd):
                for i in range(50):
                    daemon.docker("create", "--name", f"bench{i}", "busybox", "true",
                                  check=True)
            compare("ps -a, 50 containers (moord)", ["ps", "-a"], moord.host, runs)
            compare("ps -a, 50 containers (dockerd)", ["ps", "-a"], dockerd.host, runs)
        finally:
            stop_dockerd(dockerd)
            stop_daemon(moord)


if __name__ == "__main__":
    main()
