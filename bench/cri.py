"""moord's CRI vs containerd 1.6's CRI plugin, side by side in one run.

    .venv/bin/python bench/cri.py [--runs 10] [--pods 20]

On the same CNI network (bridge + host-local + portmap, a bridge and subnet of the
bench's own) and the same busybox image bytes: one pod's RunPodSandbox + CreateContainer
+ StartContainer + StopPodSandbox + RemovePodSandbox (median), 20 such pods at once
(pods per second), and the daemon's resident memory at rest before and after the CRI
serves its first requests (moord started without and with --cri-socket). Ratios are
moord/containerd (time: below 1 is faster; throughput: above 1 is faster).
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path[:0] = [os.path.join(ROOT, p) for p in ("tests", "tests/engine", "tests/cri")]

from crikit import (  # noqa: E402
    Cri,
    clean_network,
    container_config,
    load_images,
    make_network,
    pod_config,
    remove_all_pods,
    remove_pod_cgroups,
    start_containerd,
    start_cri,
    stop_cri,
)
from enginekit import start_daemon, stop_daemon  # noqa: E402

from moorage.cri.proto import api_pb2 as pb  # noqa: E402
from moorage.devkit import busybox  # noqa: E402


def pod_cycle(cri: Cri, name: str, logs: str) -> None:
    config = pod_config(name, logs)
    pod_id = cri.runtime.RunPodSandbox(pb.RunPodSandboxRequest(config=config)).pod_sandbox_id
    container = cri.runtime.CreateContainer(pb.CreateContainerRequest(
        pod_sandbox_id=pod_id, config=container_config("c", ["sleep", "60"]),
        sandbox_config=config)).container_id
    cri.runtime.StartContainer(pb.StartContainerRequest(container_id=container))
    cri.runtime.StopPodSandbox(pb.StopPodSandboxRequest(pod_sandbox_id=pod_id))
    cri.runtime.RemovePodSandbox(pb.RemovePodSandboxRequest(pod_sandbox_id=pod_id))


def measure(cri: Cri, logs: str, runs: int, pods: int) -> dict[str, float]:
    counter = iter(range(10**6))
    pod_cycle(cri, f"warm{next(counter)}", logs)
    times = []
    for _ in range(runs):
        start = time.perf_counter()
        pod_cycle(cri, f"one{next(counter)}", logs)
        times.append(time.perf_counter() - start)
    start = time.perf_counter()
    with ThreadPoolExecutor(pods) as pool:
        list(pool.map(lambda i: pod_cycle(cri, f"many{i}", logs), range(pods)))
    return {"pod cycle (s)": statistics.median(times),
            f"{pods} pods at once (pods/s)": pods / (time.perf_counter() - start)}


def rss_kib(pid: int) -> int:
    """The process and its children's (containerd's, moord's zygote) resident memory."""
    total = 0
    pids = [pid] + [int(p) for p in subprocess.run(
        ["pgrep", "-P", str(pid)], capture_output=True, text=True).stdout.split()]
    for each in pids:
        try:
            with open(f"/proc/{each}/status") as f:
                total += next(int(line.split()[1]) for line in f if line.startswith("VmRSS"))
        except (OSError, StopIteration):
            continue
    return total


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--runs", type=int, default=10)
    parser.add_argument("--pods", type=int, default=20)
    args = parser.parse_args()
    base = tempfile.mkdtemp(prefix="bench-cri-")
    network = make_network(base)
    rootfs = os.path.join(base, "rootfs")
    busybox.build_rootfs(rootfs)
    layer = subprocess.run(["tar", "-C", rootfs, "-c", "."], capture_output=True,
                           check=True).stdout
    results: dict[str, dict[str, float]] = {}
    try:
        plain_dir = os.path.join(base, "plain")
        os.makedirs(plain_dir)
        plain = start_daemon(plain_dir)
        time.sleep(2)
        plain_rss = rss_kib(plain.process.pid)
        stop_daemon(plain)
        for name in ("moord", "containerd"):
            directory = os.path.join(base, name)
            logs = os.path.join(directory, "logs")
            os.makedirs(logs)
            cri = start_cri(directory, network) if name == "moord" \
                else start_containerd(directory, network)
            try:
                load_images(cri, layer, directory)
                results[name] = measure(cri, logs, args.runs, args.pods)
                time.sleep(2)
                pid = cri.daemon.process.pid if cri.daemon else cri.process.pid  # type: ignore[union-attr]
                results[name]["memory at rest (MiB)"] = rss_kib(pid) / 1024
            finally:
                remove_all_pods(cri)
                stop_cri(cri)
        results["moord"]["CRI's added memory (MiB)"] = \
            results["moord"]["memory at rest (MiB)"] - plain_rss / 1024
    finally:
        clean_network(network)
        remove_pod_cgroups()
        subprocess.run(["rm", "-rf", base])
    load = os.getloadavg()
    print(f"load average {load[0]:.1f} {load[1]:.1f} {load[2]:.1f}")
    print(f"{'':34} {'moord':>10} {'containerd':>11} {'ratio':>7}")
    for key, value in results["moord"].items():
        peer = results["containerd"].get(key)
        ratio = f"{value / peer:.2f}x" if peer else ""
        shown = f"{peer:11.3f}" if peer is not None else f"{'':11}"
        print(f"{key:34} {value:10.3f} {shown} {ratio:>7}")


if __name__ == "__main__":
    main()
