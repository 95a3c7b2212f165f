"""Engine operations, moord vs a reference dockerd, the docker CLI against both.

    .venv/bin/python bench/operations.py [--runs 10] [--containers 50] [--tree-mb 200]
        [--stream-seconds 30] [--commit-mb 100] [--only exec|stats|stream|commit|cp]
        [--baseline TREE]

`docker exec cc true` latency (goal: ratio <= 0.5), `docker stats --no-stream` with N
running containers (goal <= 0.5), the CPU the engine spends while `docker stats`
streams those N containers' figures (goal <= dockerd's; every process of each engine
counted: dockerd with its containerd and shims, moord with its shims), `docker commit`
of a container with --commit-mb MB of changes (goal <= 0.7), and `docker cp` of a
directory tree of --tree-mb MB into and out of a running container (goal: throughput
ratio >= 1.5). Runs alternate between the daemons so drift hits both; medians are
printed with moord/dockerd ratios. --baseline TREE adds a third daemon, "moord-base",
running the moorage of another source tree (`git archive main | tar -x -C TREE`), in
the same alternation: A/B.
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


def _engine_processes(daemon: int, base: str) -> list[int]:
    """The daemon, the processes that name its folder (shims leave the daemon's tree:
    containerd's daemonize, moord's are the zygote's), and all their descendants."""
    children: dict[int, list[int]] = {}
    todo = [daemon]
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                with open(f"/proc/{entry}/stat") as f:
                    ppid = int(f.read().rsplit(")", 1)[1].split()[1])
                with open(f"/proc/{entry}/cmdline", "rb") as f:
                    if base.encode() in f.read():
                        todo.append(int(entry))
            except (OSError, IndexError, ValueError):
                continue
            children.setdefault(ppid, []).append(int(entry))
    found: list[int] = []
    while todo:
        pid = todo.pop()
        if pid not in found:
            found.append(pid)
            todo += children.get(pid, [])
    return found


def _cpu_seconds(pids: list[int]) -> float:
    """User and system time of `pids` and of the children they reaped."""
    ticks = 0
    for pid in pids:
        try:
            with open(f"/proc/{pid}/stat") as f:
                fields = f.read().rsplit(")", 1)[1].split()
        except OSError:
            continue
        ticks += sum(int(v) for v in fields[11:15])
    return ticks / os.sysconf("SC_CLK_TCK")


def stream_cpu(hosts: dict[str, str], roots: dict[str, tuple[int, str]], seconds: float,
               containers: int) -> None:
    """Each engine's CPU while one `docker stats` streams for `seconds` (one engine at a
    time: the other idles)."""
    used = {}
    for name, (daemon, folder) in roots.items():
        host = hosts[name]
        pids = _engine_processes(daemon, folder)
        before = _cpu_seconds(pids)
        env = {**os.environ, "DOCKER_HOST": host}
        env.pop("DOCKER_CONTEXT", None)
        client = subprocess.Popen([DOCKER_CLI, "stats", "--format", "{{.Name}} {{.CPUPerc}}"],
                                  env=env, stdout=subprocess.DEVNULL)
        time.sleep(seconds)
        client.terminate()
        client.wait()
        used[name] = _cpu_seconds(pids) - before
    print(f"CPU of the engine while `docker stats` streams {containers} containers for "
          f"{seconds:.0f} s: moord {used['moord']:.2f} s, dockerd {used['dockerd']:.2f} s, "
          f"ratio {used['moord'] / used['dockerd']:.2f} (goal <= 1)", flush=True)


def make_tree(path: str, megabytes: int) -> None:
    """`megabytes` of files of 64 KiB to 4 MiB in nested directories, on disk."""
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
            # On disk now, not written back during the first daemon's copy.
            f.flush()
            os.fsync(f.fileno())
        written += size
        n += 1


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--runs", type=int, default=10)
    parser.add_argument("--containers", type=int, default=50)
    parser.add_argument("--tree-mb", type=int, default=200)
    parser.add_argument("--stream-seconds", type=float, default=30)
    parser.add_argument("--commit-mb", type=int, default=100)
    parts_all = ("exec", "stats", "stream", "commit", "cp")
    parser.add_argument("--only", choices=parts_all, action="append",
                        help="these parts only (default: all)")
    parser.add_argument("--baseline", metavar="TREE",
                        help="also run the moorage of this source tree, as moord-base")
    opts = parser.parse_args()
    parts = set(opts.only or parts_all)
    with tempfile.TemporaryDirectory(prefix="bench-ops-") as base, \
            moord_and_dockerd(base, IMAGE) as pair, contextlib.ExitStack() as stack:
        hosts = {"moord": pair.moord.host}
        roots = {"moord": (pair.moord.process.pid, os.path.dirname(pair.moord.data_root))}
        if opts.baseline:
            # Right after moord: after dockerd, whose runc has just written cgroup.procs,
            # the kernel would spare the previous engine's exec its RCU wait.
            previous = stack.enter_context(baseline_moord(base, opts.baseline, IMAGE))
            hosts["moord-base"] = previous.host
            roots["moord-base"] = (previous.process.pid, os.path.dirname(previous.data_root))
        hosts["dockerd"] = pair.dockerd.host
        roots["dockerd"] = (pair.dockerd.process.pid, os.path.dirname(pair.dockerd.data_root))
        for host in hosts.values():
            docker(host, "run", "-d", "--name", "cc", IMAGE, "sleep", "3600")
        if "exec" in parts:
            side_by_side("docker exec cc true", hosts, opts.runs, "exec", "cc", "true")
        if parts & {"stats", "stream"}:
            for host in hosts.values():
                for i in range(opts.containers - 1):
                    docker(host, "run", "-d", "--name", f"s{i}", IMAGE, "sleep", "3600")
        if "stats" in parts:
            side_by_side(f"docker stats --no-stream ({opts.containers} containers)", hosts,
                         max(3, opts.runs // 3), "stats", "--no-stream")
        if "stream" in parts:
            stream_cpu(hosts, {name: roots[name] for name in ("moord", "dockerd")},
                       opts.stream_seconds, opts.containers)
        if "commit" in parts:
            for host in hosts.values():
                docker(host, "run", "-d", "--name", "cm", IMAGE, "sh", "-c",
                       f"dd if=/dev/urandom of=/changes bs=1M count={opts.commit_mb} "
                       "2>/dev/null && touch /written && sleep 3600")
            for host in hosts.values():
                while subprocess.run([DOCKER_CLI, "-H", host, "exec", "cm", "test", "-e",
                                      "/written"], capture_output=True).returncode:
                    time.sleep(0.2)
            side_by_side(f"docker commit ({opts.commit_mb} MB of changes)", hosts,
                         max(3, opts.runs // 3), "commit", "cm", "bench-commit",
                         prepare=("image", "prune", "-af"))
        if "cp" not in parts:
            return
        tree = os.path.join(base, "tree")
        make_tree(tree, opts.tree_mb)
        # One copy each, untimed: the first run is slow for whichever daemon goes first
        # (moord always does), with cold caches.
        for host in hosts.values():
            docker(host, "cp", tree, "cc:/tmp/tree")
        runs = max(5, opts.runs // 2)
        times: dict[str, list[float]] = {name: [] for name in hosts}
        cpu: dict[str, list[float]] = {name: [] for name in hosts}
        for _ in range(runs):
            for name, host in hosts.items():
                docker(host, "exec", "cc", "rm", "-rf", "/tmp/tree")
                pids = _engine_processes(*roots[name])
                before = _cpu_seconds(pids)
                times[name].append(docker(host, "cp", tree, "cc:/tmp/tree"))
                cpu[name].append(_cpu_seconds(pids) - before)
        into = {name: statistics.median(v) for name, v in times.items()}
        report(f"docker cp {opts.tree_mb} MB tree into cc", into)
        # The docker CLI making the tar shares the 2 cores: the engine's own CPU per copy
        # says what its time does not under load.
        spent = {name: statistics.median(v) for name, v in cpu.items()}
        print(f"{'':44} CPU of the engine per copy: " + ", ".join(
            f"{name} {value * 1000:.0f} ms" for name, value in spent.items()), flush=True)
        out = os.path.join(base, "out")
        times = {name: [] for name in hosts}
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
