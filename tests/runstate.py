"""What one test run (all its xdist workers) made on the host, told apart from what other
runs on the same machine make at the same time.

A run has a short id and a folder of its own, /tmp/mr-<id>, that is TMPDIR for every
process of the run: daemons' data-roots, bundles, VM stores and pytest's tmp_path all
live under it, so a mount, a process or a container's root that mentions it is the
run's. Links that are named from a hashed path (a daemon's default bridge, a CRI
bridge) are written down by the kit that names them (`claim`). The controller takes a
snapshot before the workers start and compares after they have all gone (`Snapshot`).
"""

from __future__ import annotations

import os
import secrets
import subprocess
import tempfile
from dataclasses import dataclass

from runtimekit import cgroup_dirs, mount_table, proc_starttime, processes

_RUN_VAR = "MOORAGE_TEST_RUN"
_SHARED_PARENTS = {"moor", "docker"}  # the engines' cgroup parents, shared by every run


def run_root() -> str:
    """This run's folder, made by the first process of the run; its workers inherit it."""
    root = os.environ.get(_RUN_VAR)
    if not root:
        # Short: unix socket paths under it must stay within 108 bytes.
        root = os.path.join(tempfile.gettempdir(), f"mr-{secrets.token_hex(3)}")
        os.makedirs(root, mode=0o755)
        os.environ[_RUN_VAR] = root
        os.environ["TMPDIR"] = root
        tempfile.tempdir = None  # gettempdir() caches its first answer
    return root


def claim(name: str) -> str:
    """Records a host-global name (a link, the root of an nftables table name) as this
    test run's; returns it. Outside a test run (a bench) there is nothing to record."""
    root = os.environ.get(_RUN_VAR)
    if root:
        with open(os.path.join(root, "claims"), "a") as f:
            f.write(name + "\n")
    return name


def _claims(root: str) -> set[str]:
    try:
        with open(os.path.join(root, "claims")) as f:
            return set(f.read().split())
    except OSError:
        return set()


def _links() -> dict[str, str]:
    """name → master ("" without one) of the host's network links."""
    out = subprocess.run(["ip", "-o", "link"], capture_output=True, text=True).stdout
    found: dict[str, str] = {}
    for line in out.splitlines():
        if line.count(":") < 2:
            continue
        name = line.split(":")[1].strip().split("@")[0]
        fields = line.split()
        found[name] = fields[fields.index("master") + 1] if "master" in fields else ""
    return found


def _tables() -> set[str]:
    out = subprocess.run(["nft", "list", "tables"], capture_output=True, text=True).stdout
    return {line.strip() for line in out.splitlines() if line.strip()}


def _cgroups() -> set[str]:
    """cgroup_dirs(), and the containers' own cgroups under the engines' parents."""
    found = cgroup_dirs()
    for parent in [c for c in found if os.path.basename(c) in _SHARED_PARENTS]:
        try:
            found |= {entry.path for entry in os.scandir(parent) if entry.is_dir()}
        except OSError:
            pass
    return found


def _named_netns() -> set[str]:
    return set(os.listdir("/run/netns")) if os.path.isdir("/run/netns") else set()


def _read(path: str) -> str:
    try:
        with open(path, errors="replace") as f:
            return f.read()
    except OSError:
        return ""


def _parent(pid: int) -> int:
    try:
        return int(_read(f"/proc/{pid}/stat").rsplit(")", 1)[1].split()[1])
    except (IndexError, ValueError):
        return 0


@dataclass
class Snapshot:
    """The host before the run, and the run's own marks."""

    root: str
    controller: int
    mounts: set[tuple[str, str, str]]
    cgroups: set[str]
    processes: dict[int, str]
    links: set[str]
    tables: set[str]
    netns: set[str]

    @classmethod
    def take(cls) -> Snapshot:
        return cls(run_root(), os.getpid(), mount_table(), _cgroups(), processes(),
                   set(_links()), _tables(), _named_netns())

    def is_ours(self, pid: int) -> bool:
        """A process of the run: a descendant of its controller, one that inherited the
        run's environment or names its folder (left by a worker that has exited, or a
        daemonized qemu), or one in another mount namespace whose mounts come from the
        run's folder (a container reparented to pid 1)."""
        if (f"{_RUN_VAR}={self.root}\0" in _read(f"/proc/{pid}/environ")
                or self.root in _read(f"/proc/{pid}/cmdline")):
            return True
        try:
            foreign = os.readlink(f"/proc/{pid}/ns/mnt") != os.readlink(
                f"/proc/{self.controller}/ns/mnt")
        except OSError:
            return False
        if foreign:
            return self.root in _read(f"/proc/{pid}/mountinfo")
        p = pid
        for _ in range(64):
            p = _parent(p)
            if p == self.controller:
                return True
            if p <= 1:
                return False
        return False

    def _cgroup_is_ours(self, path: str, ours: set[int]) -> bool:
        """Ours when a process of the run is in it, or when it is a container's own cgroup
        (not a shared parent such as /moor) that nothing lives in any more."""
        pids: set[int] = set()
        for dirpath, _, files in os.walk(path):
            if "cgroup.procs" in files:
                pids |= {int(p) for p in _read(os.path.join(dirpath, "cgroup.procs")).split()}
        if pids:
            return bool(pids & ours)
        return os.path.basename(path) not in _SHARED_PARENTS

    def _netns_is_ours(self, name: str, ours: set[int], others: set[int]) -> bool:
        """Ours unless only processes of other runs are in it."""
        try:
            inode = os.stat(os.path.join("/run/netns", name)).st_ino
        except OSError:
            return False
        users = set()
        for pid in ours | others:
            try:
                if os.stat(f"/proc/{pid}/ns/net").st_ino == inode:
                    users.add(pid)
            except OSError:
                pass
        return not users or bool(users & ours)

    def leaks(self) -> list[str]:
        """What the run made and left: mounts under its folder, processes, cgroups, links
        and nftables tables it claimed, named network namespaces."""
        now = processes()
        ours = {pid for pid, cmd in now.items()
                if pid != self.controller
                and not (pid in self.processes and self.processes[pid] == cmd
                         and proc_starttime(pid) is not None)
                and self.is_ours(pid)}
        others = set(now) - ours
        claims = _claims(self.root)
        problems = [f"mount: {m}" for m in sorted(mount_table() - self.mounts)
                    if any(self.root in field for field in m)]
        problems += [f"cgroup: {c}" for c in sorted(_cgroups() - self.cgroups)
                     if self._cgroup_is_ours(c, ours)]
        links = _links()
        problems += [f"link: {name}" for name in sorted(set(links) - self.links)
                     if name in claims or links[name] in claims]
        problems += [f"nft: {table}" for table in sorted(_tables() - self.tables)
                     if any(claim in table for claim in claims)]
        problems += [f"netns: {name}" for name in sorted(_named_netns() - self.netns)
                     if self._netns_is_ours(name, ours, others)]
        problems += [f"process: {pid} {now[pid]}" for pid in sorted(ours)]
        return problems
