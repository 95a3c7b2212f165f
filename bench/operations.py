"""Engine operations, moord vs a reference dockerd, the docker CLI against both.

    .venv/bin/python bench/operations.py [--runs 10] [--containers 20] [--tree-mb 200]
                                         [--baseline TREE]

`docker exec cc true` latency (goal: ratio <= 0.5), `docker stats --no-stream` with N
running containers, and `docker cp` of a directory tree of --tree-mb MB into and out
of a running container (goal: throughput ratio >= 1.5). Runs alternate between the
daemons so drift hits both; medians are printed with moord/dockerd ratios.
--baseline TREE adds a third daemon, "moord-base", running the moorage of another
source tree (`git archive main | tar -x -C TREE`), in the same alternation: A/B.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import shutil
import statistics
import subprocess
import tempfile
import time

from benchkit import baseline_moord, moord_and_dockerd
from peers import DOCKER_CLI

IMAGE = "busybox:latest"


def docker(host: str, *args: str, input: bytes | None = None) -> float:
    env = {**os.environ, "DOCKER_HOST": host}
    env.pop("DOCKER_CONTEXT", None)
    start = time.perf_counter()
    done = subprocess.run([DOCKER_CLI, *args], env=env, input=input, capture_output=True)
    elapsed = time.perf_counter() - start
    if done.returncode != 0:
        raise RuntimeError(f"docker {' '.join(args)} failed: {done.stderr.decode()}")
    return elapsed


def side_by_side(label: str, hosts: dict[str, str], runs: int, *args: str,
                 prepare: tuple[str, ...] = ()) -> dict[str, float]:
    times: dict[str, list[float]] = {name: [] for name in hosts}
    for _ in range(runs):
        for name, host in hosts.items():
            if prepare:
                docker(host, *prepare)
            times[name].append(docker(host, *args))
    medians = {name: statistics.median(values) for name, values in times.items()}
    report(label, medians)
    return medians


def report(label: str, medians: dict[str, float]) -> None:
    ours, theirs = medians["moord"], medians["dockerd"]
    print(f"{label:44} moord {ours * 1000:8.1f} ms   dockerd {theirs * 1000:8.1f} ms   "
          f"ratio {ours / theirs:.2f}", flush=True)
    if "moord-base" in medians:
        base = medians["moord-base"]
        print(f"{'':44} moord-base {base * 1000:8.1f} ms   ratio to dockerd "
              f"{base / theirs:.2f}, moord/moord-base {ours / base:.2f}", flush=True)
    print(f"{'':44} (load {os.getloadavg()[0]:.1f})", flush=True)


def make_tree(path: str, megabytes: int) -> None:
    """`megabytes` of files of 64 KiB to 4 MiB in nested directories."""
    os.makedirs(path)
    chunk = os.urandom(1 << 20)
    written, n = 0, 0
    while written < megabytes << 20:
        size = (64 << 10) << (n % 7)  # 64 KiB .. 4 MiB
        directory = os.path.join(path, f"d{n % 10}", f"s{n % 3}")
        os.makedirs(directory, exist_ok=True)
        with open(os.path.join(directory, f"f{n}"), "wb") as f:
            left = size
            while left:
                piece = chunk[:min(left, len(chunk))]
                f.write(piece)
                left -= len(piece)
        written += size
        n += 1


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--runs", type=int, default=10)
    parser.add_argument("--containers", type=int, default=20)
    parser.add_argument("--tree-mb", type=int, default=200)
    parser.add_argument("--only", choices=("exec", "stats", "cp"), action="append",
                        help="these parts only (default: all)")
    parser.add_argument("--baseline", metavar="TREE",
                        help="also run the moorage of this source tree, as moord-base")
    opts = parser.parse_args()
    parts = set(opts.only or ("exec", "stats", "cp"))
    with tempfile.TemporaryDirectory(prefix="bench-ops-") as base, \
            moord_and_dockerd(base, IMAGE) as pair, contextlib.ExitStack() as stack:
        hosts = {"moord": pair.moord.host}
        if opts.baseline:
            # Right after moord: after dockerd, whose runc has just written cgroup.procs,
            # the kernel would spare the previous engine's exec its RCU wait.
            hosts["moord-base"] = stack.enter_context(
                baseline_moord(base, opts.baseline, IMAGE)).host
        hosts["dockerd"] = pair.dockerd.host
        for host in hosts.values():
            docker(host, "run", "-d", "--name", "cc", IMAGE, "sleep", "3600")
        if "exec" in parts:
            side_by_side("docker exec cc true", hosts, opts.runs, "exec", "cc", "true")
        if "stats" in parts:
            for host in hosts.values():
                for i in range(opts.containers - 1):
                    docker(host, "run", "-d", "--name", f"s{i}", IMAGE, "sleep", "3600")
            side_by_side(f"docker stats --no-stream ({opts.containers} containers)", hosts,
                         max(3, opts.runs // 3), "stats", "--no-stream")
        if "cp" not in parts:
            return
        tree = os.path.join(base, "tree")
        make_tree(tree, opts.tree_mb)
        runs = max(3, opts.runs // 3)
        into = side_by_side(f"docker cp {opts.tree_mb} MB tree into cc", hosts, runs,
                            "cp", tree, "cc:/tmp/tree",
                            prepare=("exec", "cc", "rm", "-rf", "/tmp/tree"))
        out = os.path.join(base, "out")
        times: dict[str, list[float]] = {name: [] for name in hosts}
        for _ in range(runs):
            for name, host in hosts.items():
                shutil.rmtree(out, ignore_errors=True)
                times[name].append(docker(host, "cp", "cc:/tmp/tree", out))
        back = {name: statistics.median(v) for name, v in times.items()}
        report(f"docker cp {opts.tree_mb} MB tree out of cc", back)
        for label, medians in (("into", into), ("out of", back)):
            rate = {n: opts.tree_mb / t for n, t in medians.items()}
            print(f"cp {label} the container: moord {rate['moord']:.0f} MB/s, dockerd "
                  f"{rate['dockerd']:.0f} MB/s, throughput ratio "
                  f"{rate['moord'] / rate['dockerd']:.2f} (goal >= 1.5)")
            if "moord-base" in rate:
                print(f"  moord-base {rate['moord-base']:.0f} MB/s, throughput ratio "
                      f"{rate['moord-base'] / rate['dockerd']:.2f}")


if __name__ == "__main__":
    main()
