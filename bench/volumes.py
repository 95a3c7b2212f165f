"""Volumes on moord vs the reference dockerd, side by side in one run.

    .venv/bin/python bench/volumes.py [--runs 30]

Through the Engine API (docker SDK, API 1.41 on both): a volume's create + remove, a
`volume ls` with 100 volumes, an inspect; and with the docker CLI,
`run --rm busybox true` without a volume, with a named one, a tmpfs one and an
anonymous one. Medians, with moord/dockerd ratios
(below 1: moord is faster).
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from collections.abc import Callable

import docker
from benchkit import moord_and_dockerd


def median(action: Callable[[], object], runs: int) -> float:
    action()  # warm
    times = []
    for _ in range(runs):
        start = time.perf_counter()
        action()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def measure(daemon: object, runs: int) -> dict[str, float]:
    client = docker.APIClient(base_url=daemon.host, version="1.41", timeout=60)  # type: ignore[attr-defined]
    found: dict[str, float] = {}
    counter = iter(range(10**6))

    def create_remove() -> None:
        name = f"bench-{next(counter)}"
        client.create_volume(name)
        client.remove_volume(name)

    found["create+rm"] = median(create_remove, runs)
    for i in range(100):
        client.create_volume(f"many-{i}", labels={"i": str(i)})
    found["ls (100)"] = median(lambda: client.volumes(), runs)
    found["inspect"] = median(lambda: client.inspect_volume("many-7"), runs)
    for i in range(100):
        client.remove_volume(f"many-{i}")
    client.create_volume("named")
    client.create_volume("tmp", driver_opts={"type": "tmpfs", "device": "tmpfs"})

    def run(*args: str) -> Callable[[], None]:
        return lambda: daemon.docker("run", "--rm", *args, "bench-bb", "true",  # type: ignore[attr-defined]
                                     check=True)

    found["run --rm"] = median(run(), runs)
    found["run --rm -v named:/d"] = median(run("-v", "named:/d"), runs)
    found["run --rm -v tmpfs-vol:/d"] = median(run("-v", "tmp:/d"), runs)
    found["run --rm -v /anon"] = median(run("-v", "/anon"), runs)
    for name in ("named", "tmp"):
        client.remove_volume(name)
    client.close()
    return found


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--runs", type=int, default=30)
    runs = parser.parse_args().runs
    with tempfile.TemporaryDirectory(prefix="bench-volumes-") as base, \
            moord_and_dockerd(base, "bench-bb") as pair:
        results = [measure(daemon, runs) for daemon in (pair.moord, pair.dockerd)]
    ours, theirs = results
    print(f"{'':28} {'moord ms':>10} {'dockerd ms':>11} {'ratio':>7}")
    for key in ours:
        ratio = ours[key] / theirs[key] if theirs[key] > 0 else float("nan")
        print(f"{key:28} {ours[key] * 1000:10.2f} {theirs[key] * 1000:11.2f} {ratio:7.2f}")


if __name__ == "__main__":
    main()
