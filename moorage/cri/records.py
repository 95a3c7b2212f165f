"""What the CRI keeps beside the engine's records: each pod's and container's CRI
config (as kubelet sent it), its state as the CRI sees it and its network, one JSON
file each under <data-root>/cri, so a restarted daemon still knows its pods and can
tear their networks down."""

from __future__ import annotations

import json
import os
import threading
from dataclasses import asdict, dataclass, field, replace

from moorage.errors import Conflict, NotFound
from moorage.fsutil import atomic_write

SANDBOX_READY, SANDBOX_NOTREADY = "ready", "notready"


class NameReserved(Conflict):
    """A pod or container name already taken (gRPC AlreadyExists)."""


@dataclass(frozen=True, slots=True)
class PodRecord:
    id: str                 # the pause container's engine id
    name: str               # name_namespace_uid_attempt: unique among pods
    config: str             # the PodSandboxConfig, protobuf JSON
    created: int            # ns
    state: str = SANDBOX_READY
    runtime_handler: str = ""
    ip: str = ""
    network: dict = field(default_factory=dict)  # the CNI configuration list it was added with
    netns: str = ""         # the namespace CNI was given


@dataclass(frozen=True, slots=True)
class ContainerEntry:
    id: str                 # the engine container's id
    name: str               # name_podname_attempt-style key, unique in its pod
    pod_id: str
    config: str             # the ContainerConfig, protobuf JSON
    image_ref: str          # the image's id
    log_path: str
    created: int


class CriRecords:
    """Pods and containers by id; names reserved as containerd reserves them."""

    def __init__(self, data_root: str) -> None:
        self.root = os.path.join(data_root, "cri")
        self._lock = threading.Lock()
        self.pods: dict[str, PodRecord] = {}
        self.containers: dict[str, ContainerEntry] = {}
        for kind, cls, table in (("pods", PodRecord, self.pods),
                                 ("containers", ContainerEntry, self.containers)):
            directory = os.path.join(self.root, kind)
            os.makedirs(directory, mode=0o700, exist_ok=True)
            for entry in os.listdir(directory):
                if entry.endswith(".json"):
                    with open(os.path.join(directory, entry)) as f:
                        record = cls(**json.load(f))
                    table[record.id] = record

    def _path(self, kind: str, record_id: str) -> str:
        return os.path.join(self.root, kind, record_id + ".json")

    def reserve_check(self, kind: str, name: str) -> None:
        table = self.pods if kind == "pods" else self.containers
        for record in table.values():
            if record.name == name:
                what = "sandbox" if kind == "pods" else "container"
                raise NameReserved(f'failed to reserve {what} name "{name}": name "{name}" is '
                               f'reserved for "{record.id}"')

    def put_pod(self, record: PodRecord, *, sync: bool = True) -> PodRecord:
        with self._lock:
            atomic_write(self._path("pods", record.id), json.dumps(asdict(record)),
                         sync=sync)
            self.pods[record.id] = record
        return record

    def update_pod(self, pod_id: str, *, sync: bool = True, **changes: object) -> PodRecord:
        """`sync=False` for what a power loss may undo harmlessly (the pod was
        stopping: its pause process is gone after a reboot, and a second CNI DEL is
        allowed)."""
        return self.put_pod(replace(self.pod(pod_id), **changes), sync=sync)

    def put_container(self, record: ContainerEntry) -> ContainerEntry:
        with self._lock:
            atomic_write(self._path("containers", record.id), json.dumps(asdict(record)))
            self.containers[record.id] = record
        return record

    def drop(self, kind: str, record_id: str) -> None:
        with self._lock:
            (self.pods if kind == "pods" else self.containers).pop(record_id, None)
            try:
                os.unlink(self._path(kind, record_id))
            except FileNotFoundError:
                pass

    def pod(self, ref: str) -> PodRecord:
        return _find(self.pods, ref, "sandbox")

    def container(self, ref: str) -> ContainerEntry:
        return _find(self.containers, ref, "container")

    def containers_of(self, pod_id: str) -> list[ContainerEntry]:
        return [c for c in self.containers.values() if c.pod_id == pod_id]


def _find(table: dict, ref: str, what: str) -> PodRecord | ContainerEntry:
    """By id or unique id prefix, as crictl and containerd accept them."""
    if ref in table:
        return table[ref]
    found = [r for key, r in table.items() if ref and key.startswith(ref)]
    if len(found) == 1:
        return found[0]
    raise NotFound(f'an error occurred when try to find {what} "{ref}": not found')
