"""CRI containers: a CRI ContainerConfig as an engine container joining its pod's
namespaces, its status as kubelet reads it, its stats."""

from __future__ import annotations

import asyncio
import functools
import os
from dataclasses import replace

from moorage.cri import convert
from moorage.cri.backends import Containers, Images
from moorage.cri.pods import Pods, namespace_options
from moorage.cri.proto import api_pb2 as pb
from moorage.cri.records import ContainerEntry, CriRecords
from moorage.errors import Conflict, InvalidParameter, NotFound
from moorage.model.config import (
    BindOptions,
    ContainerConfig,
    DeviceMapping,
    HostConfig,
    Mount,
)
from moorage.model.records import ContainerRecord
from moorage.model.times import now_ns

_PROPAGATION = {pb.PROPAGATION_PRIVATE: "rprivate",
                pb.PROPAGATION_HOST_TO_CONTAINER: "rslave",
                pb.PROPAGATION_BIDIRECTIONAL: "rshared"}


class CriContainers:
    def __init__(self, records: CriRecords, containers: Containers, images: Images,
                 pods: Pods) -> None:
        self.records = records
        self.containers = containers
        self.images = images
        self.pods = pods

    async def create(self, pod_id: str, config: pb.ContainerConfig,
                     pod_config: pb.PodSandboxConfig) -> str:
        pod = self.records.pod(pod_id)
        if not config.HasField("metadata") or not config.metadata.name:
            raise InvalidParameter("container config must include metadata with a name")
        if not config.image.image:
            raise InvalidParameter("container config must include an image")
        stored = self.pods.config(pod)
        name = f"{config.metadata.name}_{pod.name}_{config.metadata.attempt}"
        self.records.reserve_check("containers", name)
        image = await asyncio.to_thread(self.images.resolve, config.image.image)
        log_path = os.path.join(stored.log_directory, config.log_path) \
            if stored.log_directory and config.log_path else ""
        record = await self.containers.container_create(
            "", _engine_config(config, stored, image.id, pod.id),
            await asyncio.to_thread(_host_config, config, stored, pod.id, name),
            cri_log_path=log_path)
        self.records.put_container(ContainerEntry(
            id=record.id, name=name, pod_id=pod.id, config=convert.to_json(config),
            image_ref=image.id, log_path=log_path, created=now_ns()))
        return record.id

    async def start(self, container_id: str) -> None:
        entry = self.records.container(container_id)
        record = self.containers.get(entry.id)
        if convert.container_state(record) != pb.CONTAINER_CREATED:
            raise Conflict(f'container "{entry.id}" is in {_state_name(record)} state, '
                           "only created containers can be started")
        await self.containers.container_start(entry.id)

    async def stop(self, container_id: str, timeout: int) -> None:
        entry = self.records.container(container_id)
        if self.containers.get(entry.id).state.running:
            await self.containers.container_stop(entry.id, max(timeout, 0))

    async def remove(self, container_id: str) -> None:
        try:
            entry = self.records.container(container_id)
        except NotFound:
            return  # kubelet retries removals: an unknown container is already removed
        try:
            await self.containers.container_rm(entry.id, True)
        except NotFound:
            pass
        self.records.drop("containers", entry.id)

    def status(self, container_id: str) -> pb.ContainerStatus:
        entry = self.records.container(container_id)
        record = self.containers.get(entry.id)
        config = _parsed(entry.config)
        reason, message = convert.exit_reason(record)
        state = record.state
        return pb.ContainerStatus(
            id=entry.id, metadata=config.metadata, state=convert.container_state(record),
            created_at=entry.created, started_at=state.started_at,
            finished_at=state.finished_at,
            exit_code=state.exit_code if state.finished_at else 0,
            image=pb.ImageSpec(image=config.image.image), image_ref=entry.image_ref,
            reason=reason, message=message, labels=config.labels,
            annotations=config.annotations, mounts=config.mounts, log_path=entry.log_path)

    def list(self, selector: pb.ContainerFilter | None) -> list[pb.Container]:
        found = []
        for entry in list(self.records.containers.values()):
            try:
                status = self.status(entry.id)
            except NotFound:
                continue
            if selector is not None and not (
                    convert.selected(selector, entry.id, status)
                    and entry.pod_id.startswith(selector.pod_sandbox_id)):
                continue
            found.append(pb.Container(
                id=entry.id, pod_sandbox_id=entry.pod_id, metadata=status.metadata,
                image=status.image, image_ref=status.image_ref, state=status.state,
                created_at=status.created_at, labels=status.labels,
                annotations=status.annotations))
        return found

    async def update_resources(self, container_id: str,
                               resources: pb.LinuxContainerResources) -> None:
        entry = self.records.container(container_id)
        body = convert.resources_body(resources, f"container {entry.id}")
        if body:
            await self.containers.container_update(entry.id, body)

    async def stats(self, container_id: str) -> pb.ContainerStats:
        entry = self.records.container(container_id)
        config = _parsed(entry.config)
        attributes = pb.ContainerAttributes(id=entry.id, metadata=config.metadata,
                                            labels=config.labels,
                                            annotations=config.annotations)
        record = self.containers.get(entry.id)
        if not record.state.running:
            return pb.ContainerStats(attributes=attributes)
        documents = self.containers.container_stats(entry.id, stream=False, one_shot=True)
        document = await anext(documents, {})
        timestamp = now_ns()
        cpu = (document.get("cpu_stats") or {}).get("cpu_usage") or {}
        memory = document.get("memory_stats") or {}
        inactive = (memory.get("stats") or {}).get("inactive_file", 0)
        usage = int(memory.get("usage") or 0)
        return pb.ContainerStats(
            attributes=attributes,
            cpu=pb.CpuUsage(timestamp=timestamp, usage_core_nano_seconds=pb.UInt64Value(
                value=int(cpu.get("total_usage") or 0))),
            memory=pb.MemoryUsage(timestamp=timestamp, working_set_bytes=pb.UInt64Value(
                value=max(usage - int(inactive or 0), 0))),
            writable_layer=pb.FilesystemUsage(timestamp=timestamp))


@functools.lru_cache(maxsize=256)
def _parsed(config: str) -> pb.ContainerConfig:
    """A container's CRI config as kept (JSON), parsed once: kubelet asks for every
    container's status each second, and a parse costs ~0.1 ms. Shared: never changed."""
    return convert.from_json(config, pb.ContainerConfig)


def _state_name(record: ContainerRecord) -> str:
    return pb.ContainerState.Name(convert.container_state(record))


def _engine_config(config: pb.ContainerConfig, pod: pb.PodSandboxConfig, image_id: str,
                   pod_id: str) -> ContainerConfig:
    base = ContainerConfig(
        image=image_id,
        hostname="" if namespace_options(pod).network == pb.NODE else pod.hostname,
        env=tuple(f"{e.key}={e.value}" for e in config.envs) or None,
        working_dir=config.working_dir, tty=config.tty, open_stdin=config.stdin,
        stdin_once=config.stdin_once, labels=convert.engine_labels("container", pod_id))
    user = _user(config.linux.security_context)
    if user:
        base = replace(base, user=user)
    if config.command:
        base = replace(base, entrypoint=tuple(config.command), cmd=tuple(config.args))
    elif config.args:
        base = replace(base, cmd=tuple(config.args))
    return base


def _user(context: pb.LinuxContainerSecurityContext) -> str:
    user = context.run_as_username or (str(context.run_as_user.value)
                                       if context.HasField("run_as_user") else "")
    if context.HasField("run_as_group"):
        if not user:
            raise InvalidParameter("user group is specified without user")
        user += f":{context.run_as_group.value}"
    return user


def _seccomp(context: pb.LinuxContainerSecurityContext) -> list[str]:
    """containerd's choice: the `seccomp` profile when set, else the deprecated
    `seccomp_profile_path` ("" and "unconfined": none; "runtime/default",
    "docker/default": the default; "localhost/<file>")."""
    if context.HasField("seccomp"):
        kind, path = context.seccomp.profile_type, context.seccomp.localhost_ref
        if kind == pb.SecurityProfile.RuntimeDefault:
            return []
        if kind == pb.SecurityProfile.Unconfined:
            return ["seccomp=unconfined"]
    else:
        named = context.seccomp_profile_path
        if named in ("", "unconfined"):
            return ["seccomp=unconfined"]
        if named in ("runtime/default", "docker/default"):
            return []
        if not named.startswith("localhost/"):
            raise InvalidParameter(f'seccomp profile "{named}" must be runtime/default, '
                                   "unconfined or localhost/<path>")
        path = named.removeprefix("localhost/")
    try:
        with open(path) as f:
            return ["seccomp=" + f.read()]
    except OSError as err:
        raise InvalidParameter(f"failed to load seccomp profile {path!r}: {err}") from None


def _host_config(config: pb.ContainerConfig, pod: pb.PodSandboxConfig, pod_id: str,
                 name: str) -> HostConfig:
    """Blocking (it makes missing bind sources, as containerd does)."""
    if config.windows.ByteSize():
        raise InvalidParameter("windows container config on a linux runtime")
    linux = config.linux
    context = linux.security_context
    pod_options = namespace_options(pod)
    options = context.namespace_options
    if context.privileged and not pod.linux.security_context.privileged:
        raise InvalidParameter("no privileged container allowed in sandbox")
    if options.pid == pb.TARGET:
        raise InvalidParameter("target pid namespace is not supported yet")
    pid_mode = {pb.POD: f"container:{pod_id}" if pod_options.pid == pb.POD else "",
                pb.CONTAINER: "", pb.NODE: "host"}[options.pid]
    if pod_options.pid == pb.NODE:
        pid_mode = "host"
    security = []
    if context.no_new_privs:
        security.append("no-new-privileges:true")
    security += _seccomp(context)
    mounts = []
    for mount in config.mounts:
        if not mount.host_path or not mount.container_path:
            raise InvalidParameter("mount needs a host path and a container path")
        if not os.path.exists(mount.host_path):
            os.makedirs(mount.host_path, exist_ok=True)
        mounts.append(Mount(type="bind", source=mount.host_path, target=mount.container_path,
                            read_only=mount.readonly, bind_options=BindOptions(
                                propagation=_PROPAGATION[mount.propagation])))
    resources = linux.resources
    dns = pod.dns_config
    network = "host" if pod_options.network == pb.NODE else f"container:{pod_id}"
    return HostConfig(
        cgroup_parent=pod.linux.cgroup_parent,
        network_mode=network, ipc_mode="host" if pod_options.ipc == pb.NODE
        else f"container:{pod_id}", pid_mode=pid_mode,
        # The pause container holds the pod's UTS namespace (and its hostname).
        uts_mode="host" if pod_options.network == pb.NODE else f"container:{pod_id}",
        dns=tuple(dns.servers), dns_search=tuple(dns.searches),
        dns_options=tuple(dns.options), privileged=context.privileged,
        readonly_rootfs=context.readonly_rootfs,
        cap_add=tuple(context.capabilities.add_capabilities) or None,
        cap_drop=tuple(context.capabilities.drop_capabilities) or None,
        group_add=tuple(str(g) for g in context.supplemental_groups) or None,
        security_opt=tuple(security) or None,
        masked_paths=tuple(context.masked_paths) if context.masked_paths else None,
        readonly_paths=tuple(context.readonly_paths) if context.readonly_paths else None,
        mounts=tuple(mounts) or None,
        devices=tuple(DeviceMapping(d.host_path, d.container_path, d.permissions)
                      for d in config.devices),
        cpu_period=resources.cpu_period, cpu_quota=resources.cpu_quota,
        cpu_shares=resources.cpu_shares, memory=resources.memory_limit_in_bytes,
        cpuset_cpus=resources.cpuset_cpus, cpuset_mems=resources.cpuset_mems,
        oom_score_adj=convert.clamp_oom_score_adj(resources.oom_score_adj,
                                                  f"container {name}"))


