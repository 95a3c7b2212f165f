"""moor vs the docker CLI against the same daemons: start-up and end-to-end commands.

    .venv/bin/python bench/cli.py [--runs 20]

`version` runs against a moord started here; `ps` (50 containers) and
`run --rm busybox true` against a reference dockerd until moord runs containers.
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


def compare(label: str, args: list[str], host: str, runs: int) -> None:
    env = {**os.environ, "DOCKER_HOST": host}
    env.pop("DOCKER_CONTEXT", None)
    ours: list[float] = []
    theirs: list[float] = []
    for _ in range(2):  # warm the page cache and the daemon
        timed([MOOR, *args], env)
        timed([DOCKER_CLI, *args], env)
    for _ in range(runs):
        ours.append(timed([MOOR, *args], env))
        theirs.append(timed([DOCKER_CLI, *args], env))
    m, d = statistics.median(ours) * 1000, statistics.median(theirs) * 1000
    print(f"{label:<34} moor {m:7.1f} ms   docker {d:7.1f} ms   ratio {m / d:5.2f}")


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--runs", type=int, default=20)
    runs = parser.parse_args().runs
    compileall.compile_dir(os.path.join(ROOT, "moorage", "cli"), quiet=1)
    compileall.compile_dir(os.path.join(ROOT, "moorage", "client"), quiet=1)
    compileall.compile_file(os.path.join(ROOT, "moorage", "__init__.py"), quiet=1)
    print(f"medians of {runs} alternating runs (moor: {MOOR}, docker: {DOCKER_CLI})")
    compare("--version (pure start-up)", ["--version"], "unix:///nonexistent", runs)
    with tempfile.TemporaryDirectory(prefix="bench-cli-") as base:
        os.makedirs(os.path.join(base, "moord"))
        moord = start_daemon(os.path.join(base, "moord"))
        try:
            compare("version (moord)", ["version"], moord.host, runs)
        finally:
            stop_daemon(moord)
        os.makedirs(os.path.join(base, "dockerd"))
        dockerd = start_dockerd(os.path.join(base, "dockerd"))
        try:
            rootfs = os.path.join(base, "rootfs")
            busybox.build_rootfs(rootfs)
            archive = os.path.join(base, "busybox.tar")
            with tarfile.open(archive, "w") as tar:
                tar.add(rootfs, arcname=".")
            with open(archive, "rb") as f:
                dockerd.docker("import", "-", "busybox:latest", input=f.read(), check=True)
            compare("version (dockerd)", ["version"], dockerd.host, runs)
            compare("run --rm busybox true (dockerd)", ["run", "--rm", "busybox", "true"],
                    dockerd.host, runs)
            for i in range(50):
                dockerd.docker("create", "--name", f"bench{i}", "busybox", "true", check=True)
            compare("ps -a, 50 containers (dockerd)", ["ps", "-a"], dockerd.host, runs)
        finally:
            stop_dockerd(dockerd)


if __name__ == "__main__":
    main()
