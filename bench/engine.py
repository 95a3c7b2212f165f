"""moord vs dockerd side by side: `run --rm`, container throughput, memory.

    .venv/bin/python bench/engine.py [--runs 20] [--containers 50] [--parallel 8]
                                     [--baseline TREE] [--run-only]

1. `docker run --rm busybox true` with the real docker CLI, alternating between
   the daemons so drift (other load, page cache) hits both; median and p90. With
   --baseline TREE a third daemon, moord-base, runs the moorage of another source
   tree (`git archive main | tar -x -C TREE`) in the same alternation: A/B.
2. N containers created, started, waited and removed, `--parallel` at a time,
   by a thread pool speaking the Engine API over each daemon's unix socket (one
   keep-alive connection per thread, so the client's cost stays out of it).
3. Memory: the engine's processes idle (moord + zygote; dockerd + containerd),
   then with N containers running `sleep 1000`, what each container adds
   (moord + zygote + shims; dockerd + containerd + containerd-shims). RSS from
   /proc/<pid>/status (VmRSS) and PSS from /proc/<pid>/smaps_rollup: shims are
   forked from the zygote and share its pages copy-on-write, which RSS counts
   once per process and PSS divides among the sharers. The containers' own
   processes (`sleep`) are the same under both and left out.

Both daemons get the same busybox image by `docker import`. Every step removes
what it created. The moorage sources are byte-compiled first: this environment
sets PYTHONDONTWRITEBYTECODE, and an installed moorage has its .pyc files.
"""

from __future__ import annotations

import argparse
import compileall
import contextlib
import http.client
import json
import os
import secrets
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

from benchkit import ROOT, baseline_moord, busybox_image
from enginekit import start_daemon, stop_daemon
from peers import DOCKER_CLI, start_dockerd, stop_dockerd

# Set in moord's environment (and so its zygote's and shims') to find them in /proc.
TAG_VARIABLE = "MOOR_BENCH_ENGINE"


# ---------------------------------------------------------------- the API over a unix socket

class UnixConnection(http.client.HTTPConnection):
    def __init__(self, path: str) -> None:
        super().__init__("localhost", timeout=120)
        self.path = path

    def connect(self) -> None:
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.sock.connect(self.path)


def api(conn: UnixConnection, method: str, path: str, body: dict | None = None) -> dict:
    data = json.dumps(body).encode() if body is not None else None
    headers = {"Content-Type": "application/json"} if data is not None else {}
    conn.request(method, path, body=data, headers=headers)
    response = conn.getresponse()
    text = response.read()
    if response.status >= 300:
        raise RuntimeError(f"{method} {path}: {response.status} {text[:300]!r}")
    return json.loads(text) if text else {}


class Connections:
    """One keep-alive connection per worker thread, all closed at the end."""

    def __init__(self, socket_path: str) -> None:
        self.socket_path = socket_path
        self.local = threading.local()
        self.all: list[UnixConnection] = []

    def get(self) -> UnixConnection:
        conn = getattr(self.local, "conn", None)
        if conn is None:
            conn = self.local.conn = UnixConnection(self.socket_path)
            self.all.append(conn)
        return conn

    def close(self) -> None:
        for conn in self.all:
            conn.close()


@dataclass
class Engine:
    """One daemon under test: how to reach it and which processes are its own."""

    name: str
    socket: str
    docker: Callable[..., subprocess.CompletedProcess]
    processes: Callable[[], dict[str, list[int]]]   # role → pids


# ---------------------------------------------------------------- figures

def percentile(xs: list[float], q: float) -> float:
    s = sorted(xs)
    return s[max(0, min(len(s) - 1, round(q * (len(s) - 1))))]


def ratio_line(label: str, ours: float, theirs: float, goal: str) -> None:
    print(f"  ratio moord/dockerd {label}: {ours / theirs:.2f}   (goal {goal})")


# ---------------------------------------------------------------- 1. run --rm

def run_rm(engine: Engine) -> float:
    start = time.perf_counter()
    done = engine.docker("run", "--rm", "busybox", "true")
    elapsed = time.perf_counter() - start
    if done.returncode != 0:
        raise RuntimeError(f"{engine.name}: run --rm failed: {done.stderr.decode()}")
    return elapsed


def bench_run_rm(engines: list[Engine], runs: int) -> None:
    for _ in range(2):  # the first runs fill caches on both sides
        for engine in engines:
            run_rm(engine)
    times: dict[str, list[float]] = {e.name: [] for e in engines}
    for _ in range(runs):
        for engine in engines:
            times[engine.name].append(run_rm(engine))
    print(f"\n1. docker run --rm busybox true, {runs} alternating runs (ms)")
    print(f"  {'daemon':<10}{'median':>9}{'p90':>9}{'min':>9}")
    for name, xs in times.items():
        print(f"  {name:<10}{statistics.median(xs) * 1e3:>9.1f}"
              f"{percentile(xs, 0.9) * 1e3:>9.1f}{min(xs) * 1e3:>9.1f}")
    ratio_line("median", statistics.median(times["moord"]),
               statistics.median(times["dockerd"]), "<= 0.35")
    if "moord-base" in times:
        base = statistics.median(times["moord-base"])
        print(f"  moord-base/dockerd median: {base / statistics.median(times['dockerd']):.2f}"
              f", moord/moord-base: {statistics.median(times['moord']) / base:.2f}")
    print(f"  (load {os.getloadavg()[0]:.1f})")


# ---------------------------------------------------------------- 2. throughput

def create_and_start(conn: UnixConnection, cmd: list[str]) -> str:
    # No network on either side: moord has none yet, the test dockerd has no bridge.
    cid = api(conn, "POST", "/containers/create",
              {"Image": "busybox", "Cmd": cmd, "HostConfig": {"NetworkMode": "none"}})["Id"]
    api(conn, "POST", f"/containers/{cid}/start")
    return cid


def lifecycle(engine: Engine, connections: Connections) -> None:
    conn = connections.get()
    cid = create_and_start(conn, ["true"])
    status = api(conn, "POST", f"/containers/{cid}/wait")
    if status.get("StatusCode") != 0:
        raise RuntimeError(f"{engine.name}: exit status {status}")
    api(conn, "DELETE", f"/containers/{cid}")


def throughput(engine: Engine, count: int, parallel: int) -> float:
    connections = Connections(engine.socket)
    try:
        with ThreadPoolExecutor(parallel) as pool:
            start = time.perf_counter()
            for future in [pool.submit(lifecycle, engine, connections)
                           for _ in range(count)]:
                future.result()
            elapsed = time.perf_counter() - start
    finally:
        connections.close()
    return count / elapsed


def bench_throughput(engines: list[Engine], count: int, parallel: int) -> None:
    rates: dict[str, float] = {}
    for engine in engines:
        throughput(engine, parallel, parallel)  # warm-up: one container per worker
        rates[engine.name] = throughput(engine, count, parallel)
    print(f"\n2. {count} containers created, started, waited, removed, {parallel} at a time")
    for name, rate in rates.items():
        print(f"  {name:<10}{rate:>8.1f} containers/s")
    print(f"  ratio moord/dockerd throughput: {rates['moord'] / rates['dockerd']:.2f}   "
          "(goal >= 4.00)")


# ---------------------------------------------------------------- 3. memory

def memory_of(pid: int) -> tuple[int, int]:
    """(RSS, PSS) in KiB; (0, 0) for a process that is gone."""
    rss = pss = 0
    try:
        with open(f"/proc/{pid}/status") as f:
            for line in f:
                if line.startswith("VmRSS:"):
                    rss = int(line.split()[1])
        with open(f"/proc/{pid}/smaps_rollup") as f:
            for line in f:
                if line.startswith("Pss:"):
                    pss = int(line.split()[1])
    except (FileNotFoundError, ProcessLookupError):
        return 0, 0
    return rss, pss


def totals(engine: Engine) -> dict[str, tuple[int, int, int]]:
    """role → (process count, RSS KiB, PSS KiB)."""
    result = {}
    for role, pids in engine.processes().items():
        sizes = [memory_of(pid) for pid in pids]
        result[role] = (len(pids), sum(s[0] for s in sizes), sum(s[1] for s in sizes))
    return result


def all_pids() -> list[int]:
    return [int(p) for p in os.listdir("/proc") if p.isdigit()]


def read_proc(pid: int, name: str) -> bytes:
    try:
        with open(f"/proc/{pid}/{name}", "rb") as f:
            return f.read()
    except OSError:
        return b""


def moord_processes(daemon_pid: int, tag: str) -> Callable[[], dict[str, list[int]]]:
    marker = f"{TAG_VARIABLE}={tag}".encode()

    def find() -> dict[str, list[int]]:
        zygote: list[int] = []
        shims: list[int] = []
        for pid in all_pids():
            if pid == daemon_pid or marker not in read_proc(pid, "environ").split(b"\0"):
                continue
            ppid = int(read_proc(pid, "stat").rsplit(b")", 1)[1].split()[1] or 0)
            (zygote if ppid == daemon_pid else shims).append(pid)
        return {"moord": [daemon_pid], "zygote": zygote, "shim": shims}
    return find


def dockerd_processes(daemon_pid: int, base: str) -> Callable[[], dict[str, list[int]]]:
    def find() -> dict[str, list[int]]:
        containerd: list[int] = []
        shims: list[int] = []
        for pid in all_pids():
            argv = read_proc(pid, "cmdline").split(b"\0")
            if not argv[0] or base.encode() not in b" ".join(argv):
                continue
            program = os.path.basename(argv[0].decode(errors="replace"))
            if program == "containerd":
                containerd.append(pid)
            elif program.startswith("containerd-shim"):
                shims.append(pid)
        return {"dockerd": [daemon_pid], "containerd": containerd, "containerd-shim": shims}
    return find


def print_memory(title: str, figures: dict[str, dict[str, tuple[int, int, int]]]) -> None:
    print(f"  {title}")
    for name, roles in figures.items():
        parts = "  ".join(f"{role} x{n} {rss / 1024:.1f}/{pss / 1024:.1f}"
                          for role, (n, rss, pss) in roles.items() if n)
        rss = sum(r[1] for r in roles.values())
        pss = sum(r[2] for r in roles.values())
        print(f"    {name:<8} RSS {rss / 1024:7.1f} MiB  PSS {pss / 1024:7.1f} MiB   "
              f"({parts}, RSS/PSS MiB)")


def totals_while_running(engine: Engine, count: int,
                         parallel: int) -> dict[str, tuple[int, int, int]]:
    """totals() with `count` containers running `sleep 1000`, removed afterwards."""
    connections = Connections(engine.socket)
    ids: list[str] = []
    try:
        with ThreadPoolExecutor(parallel) as pool:
            ids = list(pool.map(lambda _: create_and_start(
                connections.get(), ["sleep", "1000"]), range(count)))
        time.sleep(1.0)  # let the shims and the daemons settle
        return totals(engine)
    finally:
        with ThreadPoolExecutor(parallel) as pool:
            list(pool.map(lambda cid: api(connections.get(), "DELETE",
                                          f"/containers/{cid}?force=1"), ids))
        connections.close()


def bench_memory(engines: list[Engine], count: int, parallel: int) -> None:
    print(f"\n3. Memory (VmRSS from /proc/<pid>/status, Pss from smaps_rollup; "
          f"{count} containers running `sleep 1000`)")
    idle = {e.name: totals(e) for e in engines}
    print_memory("idle (after steps 1-2):", idle)
    idle_rss = {name: sum(r[1] for r in roles.values()) for name, roles in idle.items()}
    idle_pss = {name: sum(r[2] for r in roles.values()) for name, roles in idle.items()}
    ratio_line("idle RSS", idle_rss["moord"], idle_rss["dockerd"], "<= 1.00")
    ratio_line("idle PSS", idle_pss["moord"], idle_pss["dockerd"], "<= 1.00")

    busy = {e.name: totals_while_running(e, count, parallel) for e in engines}
    print_memory(f"with {count} containers running:", busy)
    per: dict[str, tuple[float, float]] = {}
    for name, roles in busy.items():
        rss = sum(r[1] for r in roles.values())
        pss = sum(r[2] for r in roles.values())
        per[name] = ((rss - idle_rss[name]) / count, (pss - idle_pss[name]) / count)
    shim_role = {"moord": "shim", "dockerd": "containerd-shim"}
    print("  added per container (KiB):")
    for name, (rss, pss) in per.items():
        n, shim_rss, shim_pss = busy[name][shim_role[name]]
        print(f"    {name:<8} all processes RSS {rss:7.0f}  PSS {pss:7.0f}   "
              f"the {shim_role[name]} alone RSS {shim_rss / max(n, 1):7.0f}  "
              f"PSS {shim_pss / max(n, 1):7.0f}")
    ratio_line("per-container RSS", per["moord"][0], per["dockerd"][0], "<= 1.00")
    ratio_line("per-container PSS", per["moord"][1], per["dockerd"][1], "<= 1.00")


# ---------------------------------------------------------------- main

def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=20)
    parser.add_argument("--containers", type=int, default=50)
    parser.add_argument("--parallel", type=int, default=8)
    parser.add_argument("--baseline", metavar="TREE",
                        help="also run the moorage of this source tree in step 1, as moord-base")
    parser.add_argument("--run-only", action="store_true", help="step 1 only")
    args = parser.parse_args()
    compileall.compile_dir(os.path.join(ROOT, "moorage"), quiet=1)

    with tempfile.TemporaryDirectory(prefix="bench-engine-") as base:
        image = busybox_image(base)

        tag = secrets.token_hex(8)
        os.environ[TAG_VARIABLE] = tag
        os.makedirs(os.path.join(base, "moord"))
        moord = start_daemon(os.path.join(base, "moord"))
        del os.environ[TAG_VARIABLE]
        dockerd = None
        try:
            dockerd_base = os.path.join(base, "dockerd")
            os.makedirs(dockerd_base)
            dockerd = start_dockerd(dockerd_base)
            engines = [
                Engine("moord", moord.socket, moord.docker,
                       moord_processes(moord.process.pid, tag)),
                Engine("dockerd", dockerd.socket, dockerd.docker,
                       dockerd_processes(dockerd.process.pid, dockerd_base)),
            ]
            for engine in engines:
                engine.docker("import", "-", "busybox:latest", input=image, check=True)
            print(f"moord ({moord.process.pid}) vs dockerd ({dockerd.process.pid}), "
                  f"docker CLI {DOCKER_CLI}, {os.cpu_count()} CPUs")
            with contextlib.ExitStack() as stack:
                compared = list(engines)
                if args.baseline:
                    base_moord = stack.enter_context(baseline_moord(base, args.baseline))
                    compared.insert(1, Engine("moord-base", base_moord.socket,
                                              base_moord.docker, lambda: {}))
                bench_run_rm(compared, args.runs)
            if not args.run_only:
                bench_throughput(engines, args.containers, args.parallel)
                bench_memory(engines, args.containers, args.parallel)
        finally:
            if dockerd is not None:
                stop_dockerd(dockerd)
            stop_daemon(moord)
    return 0


if __name__ == "__main__":
    sys.exit(main())
