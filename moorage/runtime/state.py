"""The runtime's state directory: one folder per container under --root, as runc keeps.

`<root>/<id>/state.json` records what later commands need (the init's pid and
start time, the bundle, the full config, the cgroup paths); `exec.fifo` exists
while the container is created but not started. Status is derived, never stored:
the init's liveness (pid and start time, so a reused pid is not mistaken for it),
the fifo, and the freezer give it, exactly as runc does (runtime-spec runtime.md).
"""

from __future__ import annotations

import os

from moorage import json_codec
from moorage.errors import Conflict, InvalidParameter, NotFound
from moorage.fsutil import atomic_write

DEFAULT_ROOT = "/run/moor-runtime"
# runc's id rule, ^[\w+-\.]+$ with Go's ASCII-only \w.
_ID_CHARS = frozenset("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789_+-.")
FIFO_NAME = "exec.fifo"


def check_id(container_id: str) -> None:
    if not container_id or not _ID_CHARS.issuperset(container_id) or container_id in (".", ".."):
        raise InvalidParameter(f"invalid container id format: {container_id}")


def process_start_time(pid: int) -> str | None:
    """Field 22 of /proc/<pid>/stat, or None when the process is gone or a zombie."""
    try:
        with open(f"/proc/{pid}/stat", "rb") as f:
            stat = f.read()
    except OSError:
        return None
    fields = stat[stat.rindex(b")") + 2:].split()
    if fields[0] in (b"Z", b"X"):
        return None
    return fields[19].decode()


class ContainerState:
    """A container's persisted record; `dir` is its state folder."""

    __slots__ = ("bundle", "cgroup_paths", "config", "created", "dir", "id", "pid",
                 "rootfs", "start_time")

    def __init__(self, directory: str, record: dict) -> None:
        self.dir = directory
        self.id: str = record["id"]
        self.pid: int = record["pid"]
        self.start_time: str | None = record.get("start_time")
        self.bundle: str = record["bundle"]
        self.rootfs: str = record["rootfs"]
        self.created: str = record["created"]
        self.config: dict = record["config"]
        self.cgroup_paths: dict[str, str] = record.get("cgroup_paths", {})

    def record(self) -> dict:
        return {
            "id": self.id, "pid": self.pid, "start_time": self.start_time,
            "bundle": self.bundle, "rootfs": self.rootfs, "created": self.created,
            "config": self.config, "cgroup_paths": self.cgroup_paths,
        }

    @property
    def fifo(self) -> str:
        return os.path.join(self.dir, FIFO_NAME)

    def alive(self) -> bool:
        return self.pid > 0 and process_start_time(self.pid) == self.start_time

    def status(self, frozen: bool = False) -> str:
        if not self.alive():
            return "stopped"
        if os.path.exists(self.fifo):
            return "created"
        return "paused" if frozen else "running"

    def annotations(self) -> dict:
        return self.config.get("annotations") or {}

    def save(self) -> None:
        """Atomic replace: a reader sees the old record or the new, never half.

        No fsync: the state describes processes, which a reboot ends anyway
        (runc keeps it on /run for the same reason).
        """
        atomic_write(os.path.join(self.dir, "state.json"), json_codec.dumps(self.record()),
                     sync=False)


def reserve(root: str, container_id: str) -> str:
    """Create the container's folder; the mkdir is the atomic claim on the id."""
    check_id(container_id)
    os.makedirs(root, mode=0o711, exist_ok=True)
    directory = os.path.join(root, container_id)
    try:
        os.mkdir(directory, 0o711)
    except FileExistsError:
        raise Conflict(f"container with id exists: {container_id}") from None
    return directory


def load(root: str, container_id: str) -> ContainerState:
    check_id(container_id)
    directory = os.path.join(root, container_id)
    try:
        with open(os.path.join(directory, "state.json"), "rb") as f:
            record = json_codec.loads(f.read())
    except FileNotFoundError:
        raise NotFound(f"container does not exist: {container_id}") from None
    return ContainerState(directory, record)


def list_ids(root: str) -> list[str]:
    try:
        names = os.listdir(root)
    except FileNotFoundError:
        return []
    return sorted(n for n in names if os.path.exists(os.path.join(root, n, "state.json")))


def remove(directory: str) -> None:
    """Delete a state folder (flat: state.json, exec.fifo and temporaries)."""
    try:
        names = os.listdir(directory)
    except FileNotFoundError:
        return
    for name in names:
        try:
            os.unlink(os.path.join(directory, name))
        except FileNotFoundError:
            pass
    try:
        os.rmdir(directory)
    except FileNotFoundError:
        pass
