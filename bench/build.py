"""Dockerfile builds: moord vs the reference dockerd's classic builder, side by side.

    .venv/bin/python bench/build.py [--runs 3]

A 10-step Dockerfile over a 20 MB context (COPY of it, RUNs, config steps), built by
the docker CLI (DOCKER_BUILDKIT=0) against a moord and a dockerd started here: cold
(--no-cache), fully cached, and after changing one source file (the COPY and the
steps after it run again). Medians, and moord's time as a ratio of dockerd's.
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import tempfile
import time

from benchkit import moord_and_dockerd
from peers import DOCKER_CLI

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


def timed(host: str, config: str, args: list[str]) -> float:
    env = {**os.environ, "DOCKER_HOST": host, "DOCKER_CONFIG": config, "DOCKER_BUILDKIT": "0"}
    env.pop("DOCKER_CONTEXT", None)
    start = time.perf_counter()
    done = subprocess.run([DOCKER_CLI, *args], env=env, capture_output=True)
    elapsed = time.perf_counter() - start
    if done.returncode != 0:
        raise RuntimeError(f"{args} failed: {done.stderr.decode()}")
    return elapsed


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--runs", type=int, default=3)
    runs = parser.parse_args().runs
    with tempfile.TemporaryDirectory(prefix="bench-build-") as base, \
            moord_and_dockerd(base) as pair:
        context = os.path.join(base, "ctx")
        make_context(context)
        peers = {"moord": pair.moord, "dockerd": pair.dockerd}
        results: dict[str, dict[str, list[float]]] = {
            k: {"cold": [], "cached": [], "one file": []} for k in peers}
        for run in range(runs):
            for name, daemon in peers.items():
                config = os.path.join(daemon.data_root, "..", "docker-config")
                times = results[name]
                times["cold"].append(timed(daemon.host, config, [
                    "build", "--no-cache", "-t", "bench", context]))
                times["cached"].append(timed(daemon.host, config, [
                    "build", "-t", "bench", context]))
            with open(os.path.join(context, "src", "main.txt"), "w") as f:
                f.write(f"v{run + 1}\n")
            for name, daemon in peers.items():
                config = os.path.join(daemon.data_root, "..", "docker-config")
                results[name]["one file"].append(timed(daemon.host, config, [
                    "build", "-t", "bench", context]))
        print(f"{'build (10 steps, 20 MB context)':34} {'moord':>9} {'dockerd':>9} "
              f"{'ratio':>7}")
        for kind in ("cold", "cached", "one file"):
            ours = statistics.median(results["moord"][kind])
            theirs = statistics.median(results["dockerd"][kind])
            print(f"{kind:34} {ours:8.3f}s {theirs:8.3f}s {ours / theirs:7.2f}")


if __name__ == "__main__":
    main()
