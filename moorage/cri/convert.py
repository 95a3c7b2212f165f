"""CRI messages ↔ the engine's models: names, labels, states, times, resources."""

from __future__ import annotations

import logging
from collections.abc import Mapping

from google.protobuf import json_format
from google.protobuf.message import Message

from moorage.cri.proto import api_pb2 as pb
from moorage.errors import InvalidParameter
from moorage.image.reference import parse_normalized
from moorage.model.records import NAMESPACE_LABEL, ContainerRecord

log = logging.getLogger("moord.cri")
NAMESPACE = "k8s.io"
KIND_LABEL = "io.moorage.cri.kind"  # "sandbox" or "container"
# Its pod's id: `docker inspect` shows where a container of the CRI belongs.
POD_LABEL = "io.moorage.cri.pod"


def to_json(message: Message) -> str:
    return json_format.MessageToJson(message, indent=None)


def from_json(text: str, cls: type) -> Message:
    return json_format.Parse(text, cls())


def engine_labels(kind: str, pod_id: str = "") -> dict[str, str]:
    labels = {NAMESPACE_LABEL: NAMESPACE, KIND_LABEL: kind}
    if pod_id:
        labels[POD_LABEL] = pod_id
    return labels


def image_ref(name: str) -> str:
    """A reference as the CRI names images: domain, path and tag in full."""
    try:
        return str(parse_normalized(name).with_default_tag())
    except InvalidParameter:
        return name


def own_oom_score_adj() -> int:
    try:
        with open("/proc/self/oom_score_adj") as f:
            return int(f.read())
    except (OSError, ValueError):
        return 0


def clamp_oom_score_adj(value: int, what: str) -> int:
    """Without CAP_SYS_RESOURCE the kernel refuses an oom_score_adj below the daemon's
    own: clamped to it, as containerd's restrict_oom_score_adj does."""
    floor = own_oom_score_adj()
    if value < floor:
        log.info("%s: oom_score_adj %d clamped to the daemon's own %d", what, value, floor)
        return floor
    return value


def container_state(record: ContainerRecord) -> int:
    state = record.state
    if state.running:
        return pb.CONTAINER_RUNNING
    if state.started_at or state.finished_at:
        return pb.CONTAINER_EXITED
    if state.status == "created":
        return pb.CONTAINER_CREATED
    return pb.CONTAINER_UNKNOWN


def exit_reason(record: ContainerRecord) -> tuple[str, str]:
    state = record.state
    if state.running or not state.finished_at:
        return "", ""
    if state.oom_killed:
        return "OOMKilled", state.error
    if state.exit_code == 0:
        return "Completed", state.error
    return "Error", state.error


def selected(selector: pb.PodSandboxFilter | pb.ContainerFilter, object_id: str,
             status: pb.PodSandboxStatus | pb.ContainerStatus) -> bool:
    """What the pod and container filters share: an ID prefix, a state, labels."""
    return ((not selector.id or object_id.startswith(selector.id))
            and (not selector.HasField("state") or selector.state.state == status.state)
            and labels_match(status.labels, selector.label_selector))


def labels_match(labels: Mapping[str, str], selector: Mapping[str, str]) -> bool:
    return all(labels.get(k) == v for k, v in selector.items())


def resources_body(resources: pb.LinuxContainerResources, what: str) -> dict:
    """The Docker update body of CRI LinuxContainerResources (zero: unchanged)."""
    refused = [name for name, value in (("hugepage_limits", resources.hugepage_limits),
                                        ("unified", resources.unified)) if value]
    if refused:
        raise InvalidParameter(f"{what}: {', '.join(refused)} not supported yet")
    body = {"CpuPeriod": resources.cpu_period, "CpuQuota": resources.cpu_quota,
            "CpuShares": resources.cpu_shares, "Memory": resources.memory_limit_in_bytes,
            "CpusetCpus": resources.cpuset_cpus, "CpusetMems": resources.cpuset_mems}
    if resources.memory_limit_in_bytes:
        body["MemorySwap"] = resources.memory_swap_limit_in_bytes \
            or resources.memory_limit_in_bytes
    return {k: v for k, v in body.items() if v}
