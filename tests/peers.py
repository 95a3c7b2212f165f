"""Reference peers started by the tests: a real dockerd on its own socket and data-root.

Started with --iptables=false --bridge=none (DESIGN.md) so that it never touches
the host's firewall or moord's bridge; its containerd is its own child, under
its exec-root, and goes away with it. With `networking`, it runs with its bridge and
iptables on inside a network namespace of its own (bound to a file in its folder,
entered with nsenter: `ip netns exec` would remount /sys and leave /run/netns behind),
so docker0 and its rules never reach the host; its published ports are reached
from inside that namespace (`Dockerd.netns`).
"""

from __future__ import annotations

import glob
import json
import os
import shutil
import signal
import subprocess
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

DOCKER_CLI = "/usr/local/bin/docker"
DOCKERD = shutil.which("dockerd") or "/usr/sbin/dockerd"


def run_docker(host: str, config_dir: str, args: tuple[str, ...], *,
               input: str | bytes | None = None, timeout: float = 120,
               check: bool = False) -> subprocess.CompletedProcess:
    """The real docker CLI against `host`, with a private config folder (no contexts)."""
    env = {**os.environ, "DOCKER_HOST": host, "DOCKER_CONFIG": config_dir}
    data = input.encode() if isinstance(input, str) else input
    return subprocess.run([DOCKER_CLI, *args], env=env, input=data, capture_output=True,
                          timeout=timeout, check=check)


def stop_process(process: subprocess.Popen, timeout: float = 30) -> None:
    """SIGTERM, then SIGKILL if it has not exited within `timeout`."""
    if process.poll() is None:
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


def docker_cgroup_parents() -> set[str]:
    return set(glob.glob("/sys/fs/cgroup/*/docker"))


@dataclass
class Dockerd:
    socket: str
    data_root: str
    process: subprocess.Popen
    log_path: str
    # dockerd leaves its /docker cgroup parents behind; the tests remove the ones it made.
    cgroup_parents_before: set[str]
    netns: str = ""    # the file its network namespace is bound to, with `networking`

    @property
    def host(self) -> str:
        return f"unix://{self.socket}"

    def docker(self, *args: str, input: str | bytes | None = None, timeout: float = 120,
               check: bool = False) -> subprocess.CompletedProcess:
        return run_docker(self.host, os.path.join(self.data_root, "..", "docker-config"), args,
                          input=input, timeout=timeout, check=check)


def dockerd_available() -> bool:
    return os.access(DOCKERD, os.X_OK)


def in_netns(netns: str, *command: str) -> list[str]:
    """`command` run inside the network namespace bound at `netns` ("" for the host's)."""
    return ["nsenter", f"--net={netns}", *command] if netns else list(command)


def start_dockerd(base: str, networking: bool = False, config: dict | None = None) -> Dockerd:
    """`config`: the daemon.json settings (none by default)."""
    socket_path = os.path.join(base, "docker.sock")
    netns = ""
    flags = ["--iptables=false", "--ip6tables=false", "--bridge=none"]
    if networking:
        netns = os.path.join(base, "netns")
        Path(netns).touch()
        subprocess.run(["unshare", f"--net={netns}", "true"], check=True)
        subprocess.run(in_netns(netns, "ip", "link", "set", "lo", "up"), check=True)
        flags = ["--ip6tables=false"]
    data_root = os.path.join(base, "data")
    config_path = os.path.join(base, "daemon.json")
    Path(config_path).write_text(json.dumps(config or {}))
    log_path = os.path.join(base, "dockerd.log")
    cgroup_parents = docker_cgroup_parents()
    with open(log_path, "wb") as log:
        process = subprocess.Popen(in_netns(
            netns, DOCKERD, "--data-root", data_root, "--exec-root", os.path.join(base, "exec"),
            "-H", f"unix://{socket_path}", "--pidfile", os.path.join(base, "docker.pid"),
            "--config-file", config_path, *flags),
            stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL)
    daemon = Dockerd(socket_path, data_root, process, log_path, cgroup_parents, netns)
    deadline = time.monotonic() + 90
    while not _answers(daemon):
        if process.poll() is not None or time.monotonic() > deadline:
            stop_dockerd(daemon)
            raise RuntimeError("dockerd did not start:\n" + Path(log_path).read_text())
        time.sleep(0.2)
    return daemon


def _answers(daemon: Dockerd) -> bool:
    # On a loaded machine a starting dockerd can take longer than one `version` waits.
    try:
        return daemon.docker("version", timeout=10).returncode == 0
    except subprocess.TimeoutExpired:
        return False


@contextmanager
def dockerd_running(prefix: str, networking: bool = False) -> Iterator[Dockerd]:
    """A dockerd in a temporary folder of its own, stopped at the end."""
    with tempfile.TemporaryDirectory(prefix=prefix) as base:
        daemon = start_dockerd(base, networking)
        try:
            yield daemon
        finally:
            stop_dockerd(daemon)


def stop_dockerd(daemon: Dockerd) -> None:
    stop_process(daemon.process)
    # dockerd leaves its namespaces bound under its exec-root (netns/default too, once a
    # container ran on the host's network); its bridge, veths and rules go with the
    # namespace's last reference.
    exec_root = os.path.join(os.path.dirname(daemon.data_root), "exec")
    for bound in glob.glob(os.path.join(exec_root, "netns", "*")):
        subprocess.run(["umount", "-l", bound], capture_output=True, check=False)
    if daemon.netns:
        subprocess.run(["umount", daemon.netns], check=False)
        os.unlink(daemon.netns)
    remove_docker_cgroup_parents(daemon.cgroup_parents_before)


def remove_docker_cgroup_parents(before: set[str]) -> None:
    """The /docker cgroup parents dockerd made since `before` was taken, where empty. A
    dockerd of another worker may still hold one: the run's end tries again."""
    for parent in docker_cgroup_parents() - before:
        # Children first (BuildKit makes docker/buildkit); a folder with a process of
        # another dockerd's container in it stays.
        for folder, _, _ in os.walk(parent, topdown=False):
            try:
                os.rmdir(folder)
            except OSError:
                pass
