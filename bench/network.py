"""moord vs dockerd (bridge networking on, in a namespace of its own), side by side.

    .venv/bin/python bench/network.py [--runs 15] [--megabytes 1024]

1. What a bridge adds to `docker run --rm busybox true`: the median with the default
   bridge minus the median with `--network none`, runs alternating between daemons
   and modes so drift hits all four; the ratio of moord's cost to dockerd's.
2. A large download from busybox httpd through a port published on 127.0.0.1: moord's
   kernel DNAT vs docker-proxy (curl from the host for moord, from dockerd's
   namespace for dockerd), `--streams` at once; the median latency of a small request.

3. DNS: `--lookups` lookups of a container's name at its embedded DNS (127.0.0.11 on a
   user network), each timed by a client in the container's network namespace: median
   and p99. `--dns 127.0.0.1`: nothing is ever forwarded out.

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
import time

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


def parallel_speed(netns: str, url: str, streams: int) -> float:
    """Bytes/s of `streams` downloads of `url` at once, summed."""
    running = [subprocess.Popen(in_netns(netns, "curl", "-s", "-o", "/dev/null", "-w",
                                         "%{speed_download}", url),
                                stdout=subprocess.PIPE, text=True) for _ in range(streams)]
    return sum(float(p.communicate(timeout=600)[0]) for p in running)


def download(daemon: object, netns: str, megabytes: int, streams: int) -> tuple[float, float]:
    """(MB/s of the large file over `streams` downloads, median ms of a small request)."""
    port = random.randint(20000, 29999)
    daemon.docker("run", "-d", "--pull", "never", "--name", "bench-web", "-p",  # type: ignore
                  f"127.0.0.1:{port}:80", IMAGE, "sh", "-c",
                  f"dd if=/dev/zero of=/tmp/big bs=1M count={megabytes} 2>/dev/null && "
                  "echo ok > /tmp/small && exec httpd -f -p 80 -h /tmp", check=True)
    try:
        base = f"http://127.0.0.1:{port}"
        deadline = time.monotonic() + 120
        while subprocess.run(in_netns(netns, "curl", "-sf", "-o", "/dev/null", base + "/small"),
                             capture_output=True).returncode:
            if time.monotonic() > deadline:
                raise RuntimeError("the server did not come up")
            time.sleep(0.2)
        speed = max(parallel_speed(netns, base + "/big", streams) for _ in range(2))
        small = [float(curl(netns, base + "/small", "-w", "%{time_total}")) for _ in range(50)]
        return speed / 1e6, statistics.median(small) * 1000
    finally:
        daemon.docker("rm", "-f", "bench-web")  # type: ignore[attr-defined]


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


def lookups(daemon: object, count: int) -> tuple[float, float]:
    """(median, p99) ms of a lookup of a container's name at its embedded DNS, asked
    from inside its network namespace by a DNS client in the host's Python."""
    run = daemon.docker  # type: ignore[attr-defined]
    run("network", "create", "bench-dns", check=True)
    try:
        run("run", "-d", "--pull", "never", "--name", "bench-target", "--dns", "127.0.0.1",
            "--network", "bench-dns", IMAGE, "sleep", "600", check=True)
        pid = run("inspect", "-f", "{{.State.Pid}}", "bench-target").stdout.decode().strip()
        out = subprocess.run(["nsenter", f"--net=/proc/{pid}/ns/net", sys.executable, "-c",
                              _LOOKUP_SCRIPT, str(count)], capture_output=True, text=True,
                             check=True, timeout=600).stdout.split()
        return float(out[0]), float(out[1])
    finally:
        run("rm", "-f", "bench-target")
        run("network", "rm", "bench-dns")


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--runs", type=int, default=15)
    parser.add_argument("--megabytes", type=int, default=1024)
    parser.add_argument("--lookups", type=int, default=1000)
    parser.add_argument("--streams", type=int, default=1,
                        help="downloads at once (the proxy's CPU shows with several)")
    args = parser.parse_args()
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
                cost = bridge_cost(daemons, args.runs)
                moved = {"moord": download(moord, "", args.megabytes, args.streams),
                         "dockerd": download(dockerd, dockerd.netns, args.megabytes,
                                             args.streams)}
                resolved = {name: lookups(daemon, args.lookups)
                            for name, daemon in daemons.items()}
            finally:
                stop_dockerd(dockerd)
        finally:
            stop_daemon(moord)
    added = {name: bridge - none for name, (bridge, none) in cost.items()}
    for name, (bridge, none) in cost.items():
        print(f"{name:8} run --rm: bridge {bridge * 1000:6.1f} ms, none {none * 1000:6.1f} ms, "
              f"bridge adds {added[name] * 1000:6.1f} ms")
    print(f"bridge cost, moord / dockerd: {added['moord'] / added['dockerd']:.2f}x")
    for name, (speed, small) in moved.items():
        print(f"{name:8} {args.megabytes} MB x{args.streams} via 127.0.0.1: {speed:8.1f} MB/s, "
              f"small request "
              f"{small:5.2f} ms")
    print(f"throughput, moord / dockerd: {moved['moord'][0] / moved['dockerd'][0]:.2f}x; "
          f"small request latency: {moved['moord'][1] / moved['dockerd'][1]:.2f}x")
    for name, (median, p99) in resolved.items():
        print(f"{name:8} {args.lookups} lookups: median {median:6.2f} ms, p99 {p99:6.2f} ms")
    print(f"DNS p99, moord / dockerd: {resolved['moord'][1] / resolved['dockerd'][1]:.2f}x")
    return 0


if __name__ == "__main__":
    sys.exit(main())
