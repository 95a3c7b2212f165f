"""Starting and driving a real moord on a temporary socket and data-root."""

from __future__ import annotations

import glob
import hashlib
import http.client
import io
import json
import os
import signal
import socket
import subprocess
import sys
import tarfile
import tempfile
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import docker
from peers import Dockerd, run_docker, stop_process
from runstate import claim
from runtimekit import proc_starttime

MOORD = os.path.join(os.path.dirname(sys.executable), "moord")


@dataclass
class Daemon:
    """A running moord: its socket, data-root, and the process to stop."""

    socket: str
    data_root: str
    exec_root: str
    process: subprocess.Popen
    log_path: str

    @property
    def host(self) -> str:
        return f"unix://{self.socket}"

    def log(self) -> str:
        return Path(self.log_path).read_text(errors="replace")

    def docker(self, *args: str, input: str | bytes | None = None, timeout: float = 60,
               check: bool = False) -> subprocess.CompletedProcess:
        """Run the real docker CLI against this daemon (no config, no contexts)."""
        return run_docker(self.host, os.path.join(self.data_root, "..", "docker-config"), args,
                          input=input, timeout=timeout, check=check)


def unique_name(names: list[str], prefix: str) -> str:
    """A container name no other test uses, noted in `names` for removal at teardown."""
    name = f"{prefix}-{uuid.uuid4().hex[:10]}"
    names.append(name)
    return name


def poll(condition: Callable[[], bool], timeout: float = 10) -> bool:
    """Whether `condition` comes true within `timeout` seconds (asked every 50 ms)."""
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            return False
        time.sleep(0.05)
    return True


def saved_image(tag: str, layer: bytes, config: dict) -> bytes:
    """A `docker save` archive of a one-layer image: `layer` (a tar) under `config`
    (its "config" part), tagged `tag`."""
    document = json.dumps({
        "architecture": "amd64", "os": "linux", "created": "2024-01-01T00:00:00Z",
        "config": config,
        "rootfs": {"type": "layers",
                   "diff_ids": ["sha256:" + hashlib.sha256(layer).hexdigest()]},
        "history": [{"created": "2024-01-01T00:00:00Z"}]}).encode()
    config_name = hashlib.sha256(document).hexdigest() + ".json"
    manifest = json.dumps([{"Config": config_name, "RepoTags": [tag],
                            "Layers": ["layer/layer.tar"]}]).encode()
    out = io.BytesIO()
    with tarfile.open(fileobj=out, mode="w") as tar:
        for name, data in ((config_name, document), ("layer/layer.tar", layer),
                           ("manifest.json", manifest)):
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
    return out.getvalue()


def daemon_bridge_name(base: str) -> str:
    """A bridge name unique to the daemon in `base` (15 characters at most)."""
    return claim("mt" + hashlib.sha256(os.path.realpath(base).encode()).hexdigest()[:10])


def start_daemon(base: str, *extra: str) -> Daemon:
    socket_path = os.path.join(base, "moord.sock")
    data_root = os.path.join(base, "data")
    exec_root = os.path.join(base, "exec")
    log_path = os.path.join(base, "moord.log")
    with open(log_path, "wb") as log:
        # A bridge of its own (its nft table is named after it): daemons side by side
        # never share one, and each removes its own when it stops.
        process = subprocess.Popen(
            [MOORD, "--data-root", data_root, "--exec-root", exec_root,
             "-H", f"unix://{socket_path}", "--config-file", os.devnull,
             "--bridge", daemon_bridge_name(base), *extra],
            stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL)
    deadline = time.monotonic() + 20
    while not os.path.exists(socket_path):
        if process.poll() is not None or time.monotonic() > deadline:
            process.kill()
            raise RuntimeError("moord did not start:\n" + Path(log_path).read_text())
        time.sleep(0.02)
    return Daemon(socket_path, data_root, exec_root, process, log_path)


def stop_daemon(daemon: Daemon) -> None:
    stop_process(daemon.process, timeout=20)


@contextmanager
def moord_running(prefix: str, *extra: str) -> Iterator[Daemon]:
    """A moord in a temporary folder of its own, stopped at the end."""
    with tempfile.TemporaryDirectory(prefix=prefix) as base:
        daemon = start_daemon(base, *extra)
        try:
            yield daemon
        finally:
            stop_daemon(daemon)


# --------------------------------------------------------------------------- engine core checks
# What a daemon leaves on the host, found from outside (/proc, /sys/fs/cgroup) so that
# the checks hold however the engine is built inside: mounts under its directories,
# cgroups named by its containers' ids, and processes tied to it (an open file, a
# bound socket, a working directory or a command line under its directories, or a
# cgroup or command line naming one of its containers).

CGROUP_ROOT = "/sys/fs/cgroup"


def mounts_under(root: str) -> set[str]:
    """Mount points at or below `root` (the test's own mount namespace)."""
    root = os.path.realpath(root)
    found: set[str] = set()
    with open("/proc/self/mountinfo") as f:
        for line in f:
            point = line.split()[4].replace("\\040", " ")
            if point == root or point.startswith(root + "/"):
                found.add(point)
    return found


def container_cgroups(ids: set[str]) -> set[str]:
    """Cgroup directories named by one of `ids`, under any parent (moor/, docker/), v1 or v2."""
    found: set[str] = set()
    for container_id in ids:
        for pattern in (f"{CGROUP_ROOT}/*/{container_id}", f"{CGROUP_ROOT}/*/*/{container_id}"):
            found.update(glob.glob(pattern))
    return found


def _sockets_under(root: str) -> set[str]:
    """Inodes of the unix sockets bound at a path under `root` (the host's network ns)."""
    inodes: set[str] = set()
    with open("/proc/self/net/unix") as f:
        next(f)
        for line in f:
            fields = line.split()
            if len(fields) >= 8 and fields[7].startswith(root + "/"):
                inodes.add(fields[6])
    return inodes


def _ties(pid: int, root: str, ids: set[str], sockets: set[str]) -> str | None:
    """Why process `pid` belongs to the daemon under `root`, or None."""
    proc = f"/proc/{pid}"
    try:
        with open(f"{proc}/cmdline", "rb") as f:
            cmd = f.read().replace(b"\0", b" ").decode(errors="replace").strip()
        with open(f"{proc}/cgroup") as f:
            cgroups = f.read()
        if not cmd:
            return None  # a kernel thread or a zombie
        if root in cmd or any(i in cmd for i in ids):
            return cmd
        if any(i in cgroups for i in ids):
            return f"{cmd} (in a container's cgroup)"
        if os.readlink(f"{proc}/cwd").startswith(root + "/"):
            return f"{cmd} (working directory)"
        for fd in os.listdir(f"{proc}/fd"):
            target = os.readlink(f"{proc}/fd/{fd}")
            if target.startswith(root + "/") or \
                    (target.startswith("socket:[") and target[8:-1] in sockets):
                return f"{cmd} (fd {fd} -> {target})"
    except OSError:
        return None  # gone meanwhile, or not ours to read
    return None


def tied_processes(root: str, ids: set[str]) -> dict[tuple[int, int | None], str]:
    """(pid, start time) → command line of every process tied to the daemon under `root`."""
    root = os.path.realpath(root)
    sockets = _sockets_under(root)
    found: dict[tuple[int, int | None], str] = {}
    me = os.getpid()
    for entry in os.listdir("/proc"):
        if entry.isdigit() and int(entry) != me:
            why = _ties(int(entry), root, ids, sockets)
            if why is not None:
                found[(int(entry), proc_starttime(int(entry)))] = why
    return found


@dataclass
class Footprint:
    """A daemon's mounts, its containers' cgroups and its processes, at one moment."""

    mounts: set[str]
    cgroups: set[str]
    processes: dict[tuple[int, int | None], str]

    @classmethod
    def nothing(cls) -> Footprint:
        return cls(set(), set(), {})

    @classmethod
    def take(cls, root: str, ids: set[str]) -> Footprint:
        return cls(mounts_under(root), container_cgroups(ids), tied_processes(root, ids))

    def beyond(self, baseline: Footprint) -> list[str]:
        """What this footprint has that `baseline` had not, one line each."""
        return ([f"mount: {m}" for m in sorted(self.mounts - baseline.mounts)]
                + [f"cgroup: {c}" for c in sorted(self.cgroups - baseline.cgroups)]
                + [f"process {pid}: {cmd}" for (pid, start), cmd in sorted(self.processes.items())
                   if (pid, start) not in baseline.processes])


def residue(root: str, ids: set[str], baseline: Footprint, timeout: float = 5) -> list[str]:
    """What is left of containers `ids` beyond `baseline`, once it stops shrinking or after
    `timeout` (a killed process takes a moment to be reaped, a cgroup to be removed)."""
    deadline = time.monotonic() + timeout
    while True:
        left = Footprint.take(root, ids).beyond(baseline)
        if not left or time.monotonic() > deadline:
            return left
        time.sleep(0.05)


def reap(root: str, ids: set[str], baseline: Footprint) -> None:
    """Remove what a failed engine left (its processes by pid, mounts, cgroups), so that one
    failing test does not leak into the rest of the run."""
    left = Footprint.take(root, ids)
    for (pid, start), _ in left.processes.items():
        if (pid, start) not in baseline.processes and proc_starttime(pid) == start:
            try:
                os.kill(pid, signal.SIGKILL)
            except OSError:
                pass
    for point in sorted(left.mounts - baseline.mounts, key=len, reverse=True):
        subprocess.run(["umount", "-l", point], capture_output=True)
    deadline = time.monotonic() + 5
    for cgroup in sorted(left.cgroups - baseline.cgroups, key=len, reverse=True):
        while os.path.isdir(cgroup) and time.monotonic() < deadline:
            try:
                os.rmdir(cgroup)
            except OSError:
                time.sleep(0.05)  # its killed processes are still leaving it


@dataclass
class Engine:
    """moord or the reference dockerd under the same scenario, with its footprint on the host
    before the scenario, and the ids of the containers the scenario made."""

    name: str
    daemon: Daemon | Dockerd
    base: str
    baseline: Footprint
    ids: set[str]

    @property
    def host(self) -> str:
        return self.daemon.host

    def docker(self, *args: str, input: str | bytes | None = None, timeout: float = 60,
               check: bool = False) -> subprocess.CompletedProcess:
        return self.daemon.docker(*args, input=input, timeout=timeout, check=check)

    def new(self, verb: str, *args: str) -> str:
        """`docker run -d …` or `docker create …`: the new container's id, tracked."""
        result = self.docker(verb, *args, check=True)
        container_id = result.stdout.decode().split()[-1]
        self.ids.add(container_id)
        return container_id

    def api(self, timeout: float = 30) -> docker.APIClient:
        # 1.41: what both moord and the reference dockerd 20.10 speak.
        return docker.APIClient(base_url=self.host, version="1.41", timeout=timeout)

    def residue(self) -> list[str]:
        """What is left of the containers made so far, beyond the baseline."""
        return residue(self.base, self.ids, self.baseline)

    def clean(self, ids: set[str] | None = None) -> list[str]:
        """Force-remove containers `ids` (every container when None); what is left of them."""
        if ids is None:
            try:
                listed = self.docker("ps", "-aq", "--no-trunc", timeout=30).stdout.decode()
            except subprocess.TimeoutExpired:
                listed = ""
            self.ids.update(listed.split())
        chosen = self.ids if ids is None else ids
        problems = []
        if chosen:
            try:
                self.docker("rm", "-f", *chosen, timeout=10)
            except subprocess.TimeoutExpired:
                problems.append("docker rm -f hung for 10 s")
        return problems + residue(self.base, chosen, self.baseline)


def store_clean(daemon: Daemon) -> None:
    """moord's store check (POST /moor/system/check) finds nothing wrong or orphaned."""
    conn = http.client.HTTPConnection("localhost", timeout=120)
    conn.sock = socket.socket(socket.AF_UNIX)
    conn.sock.connect(daemon.socket)
    conn.request("POST", "/moor/system/check")
    response = conn.getresponse()
    report = json.loads(response.read())
    assert response.status == 200 and report["Clean"], report
