"""Dockerfile builds: moord vs the reference dockerd's classic builder and BuildKit.

    .venv/bin/python bench/build.py [--runs 3]

A 10-step Dockerfile over a 20 MB context (COPY of it, RUNs, config steps), built
against a moord and a dockerd started here: by the docker CLI 28 with DOCKER_BUILDKIT=0
(moord, dockerd's classic builder), by `moor build` (moord; it sends only the files
that changed since the last build to moord's kept copy of the context, as BuildKit's
filesync does, where the docker CLI sends the whole tar), and by Debian's docker
20.10 CLI with DOCKER_BUILDKIT=1 (dockerd's built-in BuildKit, nothing pulled; that
dockerd runs in a network namespace of its own). Cold (--no-cache), fully cached, and
after changing one source file (the COPY and the steps after it run again; changed
anew before each client, as moord's two clients share its cache). Medians, and moord's
time as a ratio of each reference's.
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import tempfile
import time
from dataclasses import dataclass

from benchkit import ROOT, moord_and_dockerd
from enginekit import Daemon
from peers import DOCKER_CLI, Dockerd

DOCKERFILE = """FROM busybox
ENV APP=/app
WORKDIR /app
COPY data /app/data
COPY src /app/src
RUN ls -R /app > /listing
RUN cat /app/src/main.txt > /app/copy
LABEL bench=1
EXPOSE 8080
CMD ["cat", "/app/copy"]
"""


def make_context(root: str) -> None:
    os.makedirs(os.path.join(root, "data"))
    os.makedirs(os.path.join(root, "src"))
    for i in range(20):  # 20 files of 1 MB
        with open(os.path.join(root, "data", f"blob{i}.bin"), "wb") as f:
            f.write(os.urandom(1 << 20))
    with open(os.path.join(root, "src", "main.txt"), "w") as f:
        f.write("v0\n")
    with open(os.path.join(root, "Dockerfile"), "w") as f:
        f.write(DOCKERFILE)


BUILDKIT_CLI = "/usr/bin/docker"  # Debian's docker.io 20.10: BuildKit in the client
MOOR_CLI = os.path.join(ROOT, ".venv", "bin", "moor")


@dataclass(frozen=True)
class Builder:
    daemon: Daemon | Dockerd
    cli: str
    buildkit: str  # DOCKER_BUILDKIT


def timed(builder: Builder, args: list[str]) -> float:
    config = os.path.join(builder.daemon.data_root, "..", "docker-config")
    env = {**os.environ, "DOCKER_HOST": builder.daemon.host, "DOCKER_CONFIG": config,
           "DOCKER_BUILDKIT": builder.buildkit}
    env.pop("DOCKER_CONTEXT", None)
    if builder.buildkit == "1":
        args = [*args[:1], "--progress=plain", *args[1:]]
    start = time.perf_counter()
    done = subprocess.run([builder.cli, *args], env=env, capture_output=True)
    elapsed = time.perf_counter() - start
    if done.returncode != 0:
        raise RuntimeError(f"{args} failed: {done.stderr.decode()}")
    return elapsed


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--runs", type=int, default=3)
    runs = parser.parse_args().runs
    with tempfile.TemporaryDirectory(prefix="bench-build-") as base, \
            moord_and_dockerd(base, networking=True) as pair:
        context = os.path.join(base, "ctx")
        make_context(context)
        builders = {"moord": Builder(pair.moord, DOCKER_CLI, "0"),
                    "moor": Builder(pair.moord, MOOR_CLI, "0"),
                    "classic": Builder(pair.dockerd, DOCKER_CLI, "0"),
                    "buildkit": Builder(pair.dockerd, BUILDKIT_CLI, "1")}
        results: dict[str, dict[str, list[float]]] = {
            k: {"cold": [], "cached": [], "one file": []} for k in builders}
        for run in range(runs):
            for name, builder in builders.items():
                times = results[name]
                times["cold"].append(timed(builder, [
                    "build", "--no-cache", "-t", "bench", context]))
                times["cached"].append(timed(builder, ["build", "-t", "bench", context]))
            for name, builder in builders.items():
                with open(os.path.join(context, "src", "main.txt"), "w") as f:
                    f.write(f"v{run + 1} {name}\n")
                results[name]["one file"].append(timed(builder, [
                    "build", "-t", "bench", context]))
        print(f"{'build (10 steps, 20 MB context)':32} {'moord':>8} {'classic':>8} "
              f"{'BuildKit':>8} {'/classic':>8} {'/BuildKit':>9}")
        for kind in ("cold", "cached", "one file"):
            classic, buildkit = (statistics.median(results[name][kind])
                                 for name in ("classic", "buildkit"))
            for client in ("moord", "moor"):
                ours = statistics.median(results[client][kind])
                label = kind + ("" if client == "moord" else " (moor build)")
                print(f"{label:32} {ours:7.3f}s {classic:7.3f}s {buildkit:7.3f}s "
                      f"{ours / classic:8.2f} {ours / buildkit:9.2f}")
        print("load:", os.getloadavg())


if __name__ == "__main__":
    main()
