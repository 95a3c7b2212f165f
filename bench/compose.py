"""`moor compose` vs docker-compose 1.29: `up -d` and `down` of a 6-service project.

    .venv/bin/python bench/compose.py [--runs 5]

The full project (2 networks, 2 volumes, healthchecks) on moord and on the reference
dockerd (in a network namespace of its own), with each client: moor compose on moord vs
docker-compose on dockerd is the issue's figure; the same engine with either client shows
the client's share.

Runs alternate between the contenders; medians of the wall time, and of the client's own
CPU time (user + system, its children included), which a loaded machine disturbs less.
Each run's `down` leaves nothing.
"""

from __future__ import annotations

import argparse
import compileall
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import time

from benchkit import ROOT, moord_and_dockerd

sys.path.insert(0, os.path.join(ROOT, "tests", "compose"))
from composekit import DOCKER_COMPOSE, MOOR

SERVICE = """
  {name}:
    image: busybox:latest
    command: sh -c 'touch /tmp/ok; exec sleep 1000'
    stop_signal: SIGKILL
    networks: [{net}]
    volumes: [{vol}:/data]
    healthcheck:
      test: ["CMD", "test", "-f", "/tmp/ok"]
      interval: 1s
"""


def project_file() -> str:
    services = [SERVICE.format(name=f"s{i}", net=f"net{i % 2}", vol=f"vol{i % 2}")
                for i in range(6)]
    return "services:" + "".join(services) + \
        "networks: {net0: {}, net1: {}}\nvolumes: {vol0: {}, vol1: {}}\n"


Sample = tuple[float, float]  # wall, client CPU (s)


def _children_cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def timed(cmd: list[str], cwd: str, host: str) -> Sample:
    env = {**os.environ, "DOCKER_HOST": host}
    cpu = _children_cpu()
    start = time.perf_counter()
    result = subprocess.run(cmd, cwd=cwd, env=env, capture_output=True, text=True, timeout=300)
    elapsed = time.perf_counter() - start
    if result.returncode != 0:
        raise SystemExit(f"{' '.join(cmd)} failed:\n{result.stderr}")
    return elapsed, _children_cpu() - cpu


def client(kind: str, host: str) -> list[str]:
    return [MOOR, "-H", host, "compose"] if kind == "moor" \
        else [DOCKER_COMPOSE, "--ansi", "never"]


def measure(contenders: list[tuple[str, str, str]], folder: str, runs: int
            ) -> dict[str, tuple[list[Sample], list[Sample]]]:
    found: dict[str, tuple[list[Sample], list[Sample]]] = {}
    for _ in range(runs):
        for label, kind, host in contenders:
            ups, downs = found.setdefault(label, ([], []))
            ups.append(timed([*client(kind, host), "-p", "bench", "up", "-d"], folder, host))
            downs.append(timed([*client(kind, host), "-p", "bench", "down", "-v"], folder,
                               host))
    return found


def _median(samples: list[Sample], which: int) -> float:
    return statistics.median(s[which] for s in samples)


def report(title: str, found: dict[str, tuple[list[Sample], list[Sample]]],
           pairs: list[tuple[str, str]]) -> None:
    print(f"\n{title}   (wall, and the client's CPU in brackets)")
    for label, (ups, downs) in found.items():
        print(f"  {label:<26} up -d {_median(ups, 0):6.2f} s ({_median(ups, 1):5.2f})   "
              f"down {_median(downs, 0):6.2f} s ({_median(downs, 1):5.2f})")
    for ours, theirs in pairs:
        up, down = (_median(found[ours][i], 0) / _median(found[theirs][i], 0) for i in (0, 1))
        print(f"  {ours} / {theirs}: up -d {up:.2f}x, down {down:.2f}x")


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--runs", type=int, default=5)
    runs = parser.parse_args().runs
    compileall.compile_dir(os.path.join(ROOT, "moorage"), quiet=1)
    with tempfile.TemporaryDirectory(prefix="bench-compose-") as base, \
            moord_and_dockerd(base, networking=True) as pair:
        moord, dockerd = pair.moord, pair.dockerd
        folder = os.path.join(base, "project")
        os.makedirs(folder)
        with open(os.path.join(folder, "compose.yaml"), "w") as f:
            f.write(project_file())
        report("6 services, 2 networks, 2 volumes, healthchecks",
               measure([("moor compose @ moord", "moor", moord.host),
                        ("docker-compose @ moord", "dc", moord.host),
                        ("moor compose @ dockerd", "moor", dockerd.host),
                        ("docker-compose @ dockerd", "dc", dockerd.host)], folder, runs),
               [("moor compose @ moord", "docker-compose @ dockerd"),
                ("moor compose @ moord", "docker-compose @ moord"),
                ("moor compose @ dockerd", "docker-compose @ dockerd")])


if __name__ == "__main__":
    main()
