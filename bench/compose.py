"""`moor compose` vs docker-compose 1.29: `up -d` and `down` of a 6-service project.

    .venv/bin/python bench/compose.py [--runs 5]

1. The full project (2 networks, 2 volumes, healthchecks) on the reference dockerd, in a
   network namespace of its own: moor compose vs docker-compose, the same engine, so the
   ratio is the client's share.
2. On moord, until its networks and volumes land: the same 6 services with
   `network_mode: none` and no volumes, moor compose vs docker-compose on moord, and
   moor compose on moord vs docker-compose on dockerd (the issue's figure, for what moord
   can run today).

Runs alternate between the contenders; medians. Each run's `down` leaves nothing.
"""

from __future__ import annotations

import argparse
import compileall
import os
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
{extra}"""
NETWORKED = """    networks: [{net}]
    volumes: [{vol}:/data]
    healthcheck:
      test: ["CMD", "test", "-f", "/tmp/ok"]
      interval: 1s
"""


def project_file(networked: bool) -> str:
    services = []
    for i in range(6):
        extra = NETWORKED.format(net=f"net{i % 2}", vol=f"vol{i % 2}") if networked \
            else "    network_mode: none\n"
        services.append(SERVICE.format(name=f"s{i}", extra=extra))
    tail = "networks: {net0: {}, net1: {}}\nvolumes: {vol0: {}, vol1: {}}\n" if networked else ""
    return "services:" + "".join(services) + tail


def timed(cmd: list[str], cwd: str, host: str) -> float:
    env = {**os.environ, "DOCKER_HOST": host}
    start = time.perf_counter()
    result = subprocess.run(cmd, cwd=cwd, env=env, capture_output=True, text=True, timeout=300)
    elapsed = time.perf_counter() - start
    if result.returncode != 0:
        raise SystemExit(f"{' '.join(cmd)} failed:\n{result.stderr}")
    return elapsed


def client(kind: str, host: str) -> list[str]:
    return [MOOR, "-H", host, "compose"] if kind == "moor" \
        else [DOCKER_COMPOSE, "--ansi", "never"]


def measure(contenders: list[tuple[str, str, str]], folder: str, runs: int
            ) -> dict[str, tuple[list[float], list[float]]]:
    found: dict[str, tuple[list[float], list[float]]] = {}
    for _ in range(runs):
        for label, kind, host in contenders:
            ups, downs = found.setdefault(label, ([], []))
            ups.append(timed([*client(kind, host), "-p", "bench", "up", "-d"], folder, host))
            downs.append(timed([*client(kind, host), "-p", "bench", "down", "-v"], folder,
                               host))
    return found


def report(title: str, found: dict[str, tuple[list[float], list[float]]],
           pairs: list[tuple[str, str]]) -> None:
    print(f"\n{title}")
    for label, (ups, downs) in found.items():
        print(f"  {label:<32} up -d {statistics.median(ups):6.2f} s   "
              f"down {statistics.median(downs):6.2f} s")
    for ours, theirs in pairs:
        up = statistics.median(found[ours][0]) / statistics.median(found[theirs][0])
        down = statistics.median(found[ours][1]) / statistics.median(found[theirs][1])
        print(f"  {ours} / {theirs}: up -d {up:.2f}x, down {down:.2f}x")


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--runs", type=int, default=5)
    runs = parser.parse_args().runs
    compileall.compile_dir(os.path.join(ROOT, "moorage"), quiet=1)
    with tempfile.TemporaryDirectory(prefix="bench-compose-") as base, \
            moord_and_dockerd(base, networking=True) as pair:
        moord, dockerd = pair.moord, pair.dockerd
        full = os.path.join(base, "full")
        plain = os.path.join(base, "plain")
        for folder, networked in ((full, True), (plain, False)):
            os.makedirs(folder)
            with open(os.path.join(folder, "compose.yaml"), "w") as f:
                f.write(project_file(networked))
        report("6 services, 2 networks, 2 volumes, healthchecks, on dockerd",
               measure([("moor compose @ dockerd", "moor", dockerd.host),
                        ("docker-compose @ dockerd", "dc", dockerd.host)], full, runs),
               [("moor compose @ dockerd", "docker-compose @ dockerd")])
        report("6 services, network_mode none (what moord runs today)",
               measure([("moor compose @ moord", "moor", moord.host),
                        ("docker-compose @ moord", "dc", moord.host),
                        ("docker-compose @ dockerd", "dc", dockerd.host)], plain, runs),
               [("moor compose @ moord", "docker-compose @ dockerd"),
                ("moor compose @ moord", "docker-compose @ moord")])


if __name__ == "__main__":
    main()
