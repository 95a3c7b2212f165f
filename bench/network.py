"""moord vs dockerd (bridge networking on, in a namespace of its own), side by side.

    .venv/bin/python bench/network.py [--runs 15] [--megabytes 1024]

1. What a bridge adds to `docker run --rm busybox true`: the median with the default
   bridge minus the median with `--network none`, runs alternating between daemons
   and modes so drift hits all four; the ratio of moord's cost to dockerd's.
2. A large download from busybox httpd through a port published on 127.0.0.1: moord's
   kernel DNAT vs docker-proxy (the client on the host for moord, in dockerd's
   namespace for dockerd), `--streams` at once (a comma-separated list: one stream
   leaves a core free, which docker-proxy's copy uses for nothing; two fill both),
   `--rounds` times alternating between the daemons (medians); the median latency of
   a small request. Twice: with curl, and with a client that splices what it
   receives to /dev/null (curl's copy into its memory is the largest cost on either
   path; docker-proxy is Go's io.Copy, which splices too, so what dockerd adds is one
   more pass through the TCP stack). Beside each download: the machine's busy
   CPU-seconds per GB moved (/proc/stat, every core, whoever ran: the cost of the
   path when the cores are the bound), and the same download from the container's
   own address, no port published: the ceiling of any forwarding through the veth
   (dockerd's ceiling over its published speed is the most any path can gain on
   docker-proxy on this machine).

3. DNS: `--lookups` lookups of a container's name at its embedded DNS (127.0.0.11 on a
   user network), each timed by a client in the container's network namespace: median
   and p99, `--dns-rounds` times, with the daemon idle and while it starts and removes
   containers (`run --rm`) one after another. `--dns 127.0.0.1`: nothing is ever
   forwarded out.

Traffic stays on the machine: loopback and the daemons' own bridges.
"""

from __future__ import annotations

import argparse
import os
import random
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path[:0] = [os.path.join(ROOT, "tests"), os.path.join(ROOT, "tests", "engine")]

from enginekit import start_daemon, stop_daemon  # noqa: E402
from peers import in_netns, start_dockerd, stop_dockerd  # noqa: E402

from moorage.devkit import busybox  # noqa: E402

IMAGE = "busybox:latest"


def timed(daemon: object, *args: str) -> float:
    start = time.perf_counter()
    daemon.docker(*args, check=True)  # type: ignore[attr-defined]
    return time.perf_counter() - start


def bridge_cost(daemons: dict, runs: int) -> dict[str, tuple[float, float]]:
    times: dict[tuple[str, str], list[float]] = {}
    for _ in range(runs):
        for name, daemon in daemons.items():
            for mode in ("bridge", "none"):
                times.setdefault((name, mode), []).append(timed(
                    daemon, "run", "--rm", "--pull", "never", "--network", mode, IMAGE, "true"))
    return {name: (statistics.median(times[(name, "bridge")]),
                   statistics.median(times[(name, "none")])) for name in daemons}


def curl(netns: str, url: str, *extra: str) -> str:
    return subprocess.run(in_netns(netns, "curl", "-s", "-o", "/dev/null", *extra, url),
                          capture_output=True, text=True, check=True, timeout=600).stdout


# A client that never copies what it receives: splice(2) from the socket through a pipe
# into /dev/null. curl's copy into its own memory costs as much as the forwarding on
# this path and is the same for both daemons; without it the forwarding shows.
_SPLICE_CLIENT = """
import fcntl, os, socket, sys, time
host, port = sys.argv[1].removeprefix("http://").split("/")[0].split(":")
sock = socket.create_connection((host, int(port)))
sock.sendall(b"GET /big HTTP/1.0\\r\\n\\r\\n")
read_end, write_end = os.pipe()
fcntl.fcntl(write_end, 1031, 1 << 20)
null = os.open("/dev/null", os.O_WRONLY)
total, start = 0, time.perf_counter()
while moved := os.splice(sock.fileno(), write_end, 1 << 20):
    total += moved
    while moved:
        moved -= os.splice(read_end, null, moved)
print(total / (time.perf_counter() - start))
"""


def parallel_speed(netns: str, url: str, streams: int, client: str = "curl") -> float:
    """Bytes/s of `streams` downloads of `url` at once, summed."""
    command = (in_netns(netns, "curl", "-s", "-o", "/dev/null", "-w", "%{speed_download}", url)
               if client == "curl" else
               in_netns(netns, sys.executable, "-c", _SPLICE_CLIENT, url))
    running = [subprocess.Popen(command, stdout=subprocess.PIPE, text=True)
               for _ in range(streams)]
    return sum(float(p.communicate(timeout=600)[0]) for p in running)


@dataclass(frozen=True)
class Site:
    """Where a daemon's web container is reached: from `netns`, by the port published on
    127.0.0.1 (`published`) and by the container's own address (`direct`)."""

    netns: str
    published: str
    direct: str


@contextmanager
def served(daemon: object, netns: str, megabytes: int) -> Iterator[Site]:
    """busybox httpd (sendfile(2), one call for the whole file) in a container with a
    `megabytes` file, published on 127.0.0.1; its URLs, reachable from `netns`."""
    port = random.randint(20000, 29999)
    daemon.docker("run", "-d", "--pull", "never", "--name", "bench-web", "-p",  # type: ignore
                  f"127.0.0.1:{port}:80", IMAGE, "sh", "-c",
                  f"dd if=/dev/zero of=/tmp/big bs=1M count={megabytes} 2>/dev/null && "
                  "echo ok > /tmp/small && exec httpd -f -p 80 -h /tmp", check=True)
    try:
        address = daemon.docker(  # type: ignore[attr-defined]
            "inspect", "-f", "{{.NetworkSettings.IPAddress}}", "bench-web",
            check=True).stdout.decode().strip()
        site = Site(netns, f"http://127.0.0.1:{port}", f"http://{address}:80")
        deadline = time.monotonic() + 120
        while subprocess.run(in_netns(netns, "curl", "-sf", "-o", "/dev/null",
                                      site.published + "/small"),
                             capture_output=True).returncode:
            if time.monotonic() > deadline:
                raise RuntimeError("the server did not come up")
            time.sleep(0.2)
        yield site
    finally:
        daemon.docker("rm", "-f", "bench-web")  # type: ignore[attr-defined]


def _busy_seconds() -> float:
    """CPU-seconds every core of the machine spent not idle since boot."""
    with open("/proc/stat") as f:
        ticks = [int(x) for x in f.readline().split()[1:9]]
    idle, iowait = ticks[3], ticks[4]
    return (sum(ticks) - idle - iowait) / os.sysconf("SC_CLK_TCK")


@dataclass
class Path:
    """One way to the large file: MB/s and busy CPU-seconds per GB, round by round."""

    speeds: list[float] = field(default_factory=list)
    costs: list[float] = field(default_factory=list)

    def take(self, netns: str, url: str, streams: int, client: str, gigabytes: float) -> None:
        before = _busy_seconds()
        self.speeds.append(parallel_speed(netns, url, streams, client) / 1e6)
        self.costs.append((_busy_seconds() - before) / (gigabytes * streams))


@dataclass
class Found:
    published: Path = field(default_factory=Path)
    direct: Path = field(default_factory=Path)
    small_ms: float = 0.0


def downloads(sites: dict[str, Site], streams: int, rounds: int, client: str,
              megabytes: int) -> dict[str, Found]:
    """Per daemon: the large file through the published port and from the container's
    address, `streams` at once, and the median ms of a small request. Rounds alternate
    between the daemons so that the load of the machine, which changes by the second,
    weighs on both alike."""
    found = {name: Found() for name in sites}
    for _ in range(rounds):
        for name, site in sites.items():
            for path, base in ((found[name].published, site.published),
                               (found[name].direct, site.direct)):
                path.take(site.netns, base + "/big", streams, client, megabytes / 1024)
    for name, site in sites.items():
        small = [float(curl(site.netns, site.published + "/small", "-w", "%{time_total}"))
                 for _ in range(50)]
        found[name].small_ms = statistics.median(small) * 1000
    return found


def report_downloads(moved: dict[tuple[str, int], dict[str, Found]], megabytes: int) -> None:
    for (client, streams), found in moved.items():
        for name, f in found.items():
            print(f"{name:8} {megabytes} MB x{streams} ({client}): 127.0.0.1 median "
                  f"{statistics.median(f.published.speeds):6.0f} MB/s "
                  f"{statistics.median(f.published.costs):4.2f} CPU-s/GB (rounds "
                  f"{' '.join(f'{r:.0f}' for r in f.published.speeds)}); container address "
                  f"{statistics.median(f.direct.speeds):6.0f} MB/s "
                  f"{statistics.median(f.direct.costs):4.2f} CPU-s/GB; small request "
                  f"{f.small_ms:5.2f} ms")
        ours, theirs = found["moord"], found["dockerd"]
        pairs = sorted(o / t for o, t in zip(ours.published.speeds, theirs.published.speeds,
                                             strict=True))
        speed = statistics.median(ours.published.speeds) / statistics.median(
            theirs.published.speeds)
        cost = statistics.median(theirs.published.costs) / statistics.median(
            ours.published.costs)
        ceiling = statistics.median(theirs.direct.speeds) / statistics.median(
            theirs.published.speeds)
        print(f"throughput ({client} x{streams}), moord / dockerd: {speed:.2f}x (round by "
              f"round {pairs[0]:.2f}-{pairs[-1]:.2f}x); CPU per GB, dockerd / moord: "
              f"{cost:.2f}x; ceiling (dockerd's container address / its 127.0.0.1): "
              f"{ceiling:.2f}x; small request latency: {ours.small_ms / theirs.small_ms:.2f}x")


_LOOKUP_SCRIPT = """
import socket, statistics, sys, time
import dns.message
count = int(sys.argv[1])
query = dns.message.make_query("bench-target", "A").to_wire()
sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
sock.settimeout(5)
times = []
for _ in range(count):
    start = time.perf_counter()
    sock.sendto(query, ("127.0.0.11", 53))
    sock.recv(4096)
    times.append((time.perf_counter() - start) * 1000)
times.sort()
print(statistics.median(times), times[int(len(times) * 0.99) - 1])
"""


def lookups(daemon: object, count: int, rounds: int) -> dict[str, list[tuple[float, float]]]:
    """(median, p99) ms of `count` lookups of a container's name at its embedded DNS,
    asked from inside its network namespace by a DNS client in the host's Python, per
    round: "idle" with nothing else asked of the daemon, "busy" while containers are
    started and removed one after another on it (its own work then competes with the
    answers)."""
    run = daemon.docker  # type: ignore[attr-defined]
    run("network", "create", "bench-dns", check=True)
    found: dict[str, list[tuple[float, float]]] = {"idle": [], "busy": []}
    try:
        run("run", "-d", "--pull", "never", "--name", "bench-target", "--dns", "127.0.0.1",
            "--network", "bench-dns", IMAGE, "sleep", "600", check=True)
        pid = run("inspect", "-f", "{{.State.Pid}}", "bench-target").stdout.decode().strip()
        for _ in range(rounds):
            for mode in found:
                with _churning(daemon, mode == "busy"):
                    out = subprocess.run(
                        ["nsenter", f"--net=/proc/{pid}/ns/net", sys.executable, "-c",
                         _LOOKUP_SCRIPT, str(count)], capture_output=True, text=True,
                        check=True, timeout=600).stdout.split()
                found[mode].append((float(out[0]), float(out[1])))
        return found
    finally:
        run("rm", "-f", "bench-target")
        run("network", "rm", "bench-dns")


@contextmanager
def _churning(daemon: object, on: bool) -> Iterator[None]:
    """With `on`, `run --rm busybox true` on the daemon over and over for the block."""
    stop = threading.Event()

    def churn() -> None:
        while not stop.is_set():
            daemon.docker("run", "--rm", "--pull", "never", IMAGE, "true")  # type: ignore

    worker = threading.Thread(target=churn)
    if on:
        worker.start()
        time.sleep(0.3)   # the first start under way
    try:
        yield
    finally:
        stop.set()
        if on:
            worker.join()


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--runs", type=int, default=15)
    parser.add_argument("--megabytes", type=int, default=1024)
    parser.add_argument("--rounds", type=int, default=5,
                        help="downloads of the large file per daemon, alternating")
    parser.add_argument("--lookups", type=int, default=1000)
    parser.add_argument("--dns-rounds", type=int, default=3,
                        help="rounds of lookups per daemon, idle and busy")
    parser.add_argument("--streams", default="1,2",
                        help="downloads at once, comma-separated counts (the proxy's CPU "
                             "shows once the cores are full)")
    parser.add_argument("--parts", default="bridge,download,dns",
                        help="which of the three measures to take, comma-separated")
    args = parser.parse_args()
    parts = set(args.parts.split(","))
    with tempfile.TemporaryDirectory(prefix="bench-network-") as base:
        busybox.build_rootfs(os.path.join(base, "rootfs"))
        tar = subprocess.run(["tar", "-C", os.path.join(base, "rootfs"), "-c", "."],
                             capture_output=True, check=True).stdout
        for name in ("moord", "dockerd"):
            os.mkdir(os.path.join(base, name))
        moord = start_daemon(os.path.join(base, "moord"))
        try:
            dockerd = start_dockerd(os.path.join(base, "dockerd"), networking=True)
            try:
                daemons = {"moord": moord, "dockerd": dockerd}
                for daemon in daemons.values():
                    daemon.docker("import", "-", IMAGE, input=tar, check=True)
                    daemon.docker("run", "--rm", "--pull", "never", IMAGE, "true", check=True)
                cost = bridge_cost(daemons, args.runs) if "bridge" in parts else {}
                moved = {}
                if "download" in parts:
                    with served(moord, "", args.megabytes) as ours, \
                            served(dockerd, dockerd.netns, args.megabytes) as theirs:
                        sites = {"moord": ours, "dockerd": theirs}
                        moved = {(client, streams): downloads(sites, streams, args.rounds,
                                                              client, args.megabytes)
                                 for streams in map(int, args.streams.split(","))
                                 for client in ("curl", "splice")}
                resolved = {name: lookups(daemon, args.lookups, args.dns_rounds)
                            for name, daemon in daemons.items()} if "dns" in parts else {}
            finally:
                stop_dockerd(dockerd)
        finally:
            stop_daemon(moord)
    added = {name: bridge - none for name, (bridge, none) in cost.items()}
    for name, (bridge, none) in cost.items():
        print(f"{name:8} run --rm: bridge {bridge * 1000:6.1f} ms, none {none * 1000:6.1f} ms, "
              f"bridge adds {added[name] * 1000:6.1f} ms")
    if added:
        print(f"bridge cost, moord / dockerd: {added['moord'] / added['dockerd']:.2f}x")
    report_downloads(moved, args.megabytes)
    print(f"load average after: {' '.join(f'{x:.1f}' for x in os.getloadavg())}")
    for mode in ("idle", "busy") if resolved else ():
        p99s = {}
        for name, found in resolved.items():
            p99s[name] = statistics.median(p99 for _, p99 in found[mode])
            rounds = " ".join(f"{median:.2f}/{p99:.2f}" for median, p99 in found[mode])
            print(f"{name:8} {args.lookups} lookups, {mode}: median of the rounds' p99 "
                  f"{p99s[name]:6.2f} ms (median/p99 per round: {rounds})")
        print(f"DNS p99 ({mode}), moord / dockerd: {p99s['moord'] / p99s['dockerd']:.2f}x")
    return 0


if __name__ == "__main__":
    sys.exit(main())
