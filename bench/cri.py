"""moord's CRI vs containerd 1.6's CRI plugin, side by side in one run.

    .venv/bin/python bench/cri.py [--runs 10] [--pods 20]

Both run at once on the same CNI network (bridge + host-local + portmap, a bridge and
subnet of the bench's own) with the same busybox image bytes. One pod's RunPodSandbox
+ CreateContainer + StartContainer + StopPodSandbox + RemovePodSandbox: runs alternate
between the two, so a loaded machine weighs on both alike (median wall time, and the
CPU time the daemon and every process it starts spent on them: `perf stat` task-clock
on the daemon's process tree, whose counters follow each child it forks, shims,
runtimes and CNI plugins included). Then 20 such pods at once (pods per second).
Memory: the daemon's resident set (with its children) at rest once the CRI has
answered what kubelet asks at start (Version, Status, the lists), beside a moord
started without --cri-socket; and again after the pods. Ratios are moord/containerd
(time: below 1 is faster; throughput: above 1 is faster).
"""

from __future__ import annotations

import argparse
import os
import signal
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


def kubelet_start(cri: Cri) -> None:
    """What kubelet asks a runtime as it starts."""
    cri.runtime.Version(pb.VersionRequest())
    cri.runtime.Status(pb.StatusRequest(verbose=True))
    cri.runtime.ListPodSandbox(pb.ListPodSandboxRequest())
    cri.runtime.ListContainers(pb.ListContainersRequest())
    cri.images.ListImages(pb.ListImagesRequest())
    cri.images.ImageFsInfo(pb.ImageFsInfoRequest())


def pid_of(cri: Cri) -> int:
    return cri.daemon.process.pid if cri.daemon else cri.process.pid  # type: ignore[union-attr]


def tree(pid: int) -> list[int]:
    """The process and its descendants."""
    found, queue = [], [pid]
    while queue:
        each = queue.pop()
        found.append(each)
        queue += [int(p) for p in subprocess.run(["pgrep", "-P", str(each)],
                                                 capture_output=True, text=True).stdout.split()]
    return found


def cpu_counter(pid: int) -> subprocess.Popen:
    """task-clock of the process tree, from now until `cpu_ms` stops it."""
    pids = ",".join(str(p) for p in tree(pid))
    counter = subprocess.Popen(["perf", "stat", "-x", ",", "-e", "task-clock", "-p", pids],
                               stderr=subprocess.PIPE, text=True)
    time.sleep(0.5)  # attached before the first cycle
    return counter


def cpu_ms(counter: subprocess.Popen) -> float:
    counter.send_signal(signal.SIGINT)
    report = counter.communicate()[1]
    return float(report.strip().splitlines()[-1].split(",")[0])


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


def at_rest_mib(pid: int) -> float:
    time.sleep(2)
    return rss_kib(pid) / 1024


def measure(cris: dict[str, Cri], logs: dict[str, str], runs: int, pods: int
            ) -> dict[str, dict[str, float]]:
    walls: dict[str, list[float]] = {name: [] for name in cris}
    for name, cri in cris.items():
        pod_cycle(cri, "warm", logs[name])
    counters = {name: cpu_counter(pid_of(cri)) for name, cri in cris.items()}
    for run in range(runs):
        # Alternate who goes first, so neither always follows the other's teardown.
        for name in (list(cris) if run % 2 == 0 else list(reversed(cris))):
            start = time.perf_counter()
            pod_cycle(cris[name], f"one{run}", logs[name])
            walls[name].append(time.perf_counter() - start)
    time.sleep(0.5)  # the last cycle's exits counted
    results = {name: {"pod cycle (s)": statistics.median(walls[name]),
                      "pod cycle CPU, all processes (ms)": cpu_ms(counters[name]) / runs}
               for name in cris}
    for name, cri in cris.items():
        start = time.perf_counter()
        with ThreadPoolExecutor(pods) as pool:
            list(pool.map(lambda i, c=cri, n=name: pod_cycle(c, f"many{i}", logs[n]),
                          range(pods)))
        results[name][f"{pods} pods at once (pods/s)"] = pods / (time.perf_counter() - start)
    return results


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
    cris: dict[str, Cri] = {}
    logs: dict[str, str] = {}
    try:
        plain_dir = os.path.join(base, "plain")
        os.makedirs(plain_dir)
        plain = start_daemon(plain_dir)
        plain_rss = at_rest_mib(plain.process.pid)
        stop_daemon(plain)
        rest: dict[str, float] = {}
        for name in ("moord", "containerd"):
            directory = os.path.join(base, name)
            logs[name] = os.path.join(directory, "logs")
            os.makedirs(logs[name])
            cris[name] = start_cri(directory, network) if name == "moord" \
                else start_containerd(directory, network)
            kubelet_start(cris[name])
            rest[name] = at_rest_mib(pid_of(cris[name]))
            load_images(cris[name], layer, directory)
        results = measure(cris, logs, args.runs, args.pods)
        for name, cri in cris.items():
            results[name]["memory at rest (MiB)"] = rest[name]
            results[name]["memory after the pods (MiB)"] = at_rest_mib(pid_of(cri))
        results["moord"]["CRI's added memory at rest (MiB)"] = rest["moord"] - plain_rss
    finally:
        for cri in cris.values():
            try:
                remove_all_pods(cri)
            finally:
                stop_cri(cri)
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
