"""Pod sandboxes: a pause container holding the pod's network, IPC and UTS namespaces
(and PID when the pod shares it), its network made through CNI, its CRI record."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable

from moorage.cri import convert
from moorage.cri.backends import Containers
from moorage.cri.cni import Cni, PodNetworkTarget, first_ipv4
from moorage.cri.proto import api_pb2 as pb
from moorage.cri.records import SANDBOX_NOTREADY, CriRecords, PodRecord
from moorage.errors import InvalidParameter, MoorError, NotFound, NotModified
from moorage.model.config import ContainerConfig, HostConfig
from moorage.model.times import now_ns

log = logging.getLogger("moord.cri")
# What kubelet's sandboxes get (containerd's defaultSandboxOOMAdj), clamped when refused.
_SANDBOX_OOM_SCORE_ADJ = -998


def pod_key(metadata: pb.PodSandboxMetadata) -> str:
    return f"{metadata.name}_{metadata.namespace}_{metadata.uid}_{metadata.attempt}"


def namespace_options(config: pb.PodSandboxConfig) -> pb.NamespaceOption:
    return config.linux.security_context.namespace_options


class Pods:
    def __init__(self, records: CriRecords, containers: Containers, cni: Cni,
                 sandbox_image: str, ensure_image: Callable[[str], Awaitable[str]]) -> None:
        self.records = records
        self.containers = containers
        self.cni = cni
        self.sandbox_image = sandbox_image
        self.ensure_image = ensure_image
        self._locks: dict[str, asyncio.Lock] = {}

    def lock(self, pod_id: str) -> asyncio.Lock:
        return self._locks.setdefault(pod_id, asyncio.Lock())

    async def run(self, config: pb.PodSandboxConfig, handler: str) -> str:
        metadata = config.metadata
        if not metadata.name or not metadata.namespace or not metadata.uid:
            raise InvalidParameter("sandbox config must include metadata with a name, "
                                   "a namespace and a uid")
        if handler:
            raise InvalidParameter(f'no runtime for "{handler}" is configured')
        name = pod_key(metadata)
        self.records.reserve_check("pods", name)
        options = namespace_options(config)
        host_network = options.network == pb.NODE
        if host_network and config.hostname:
            # Its containers could not set it (runc's refusal, containerd's at their
            # start): a pod on the node's network has the node's name.
            raise InvalidParameter("a pod on the host's network cannot set a hostname")
        network = None if host_network else self.cni.config()
        if not host_network and network is None:
            raise MoorError(f"failed to setup network for sandbox: "
                            f"{self.cni.not_ready_reason()}")
        dns = config.dns_config
        host = HostConfig(
            network_mode="host" if host_network else "none",
            ipc_mode="host" if options.ipc == pb.NODE else "shareable",
            pid_mode="host" if options.pid == pb.NODE else "",
            uts_mode="host" if host_network else "",
            dns=tuple(dns.servers), dns_search=tuple(dns.searches),
            dns_options=tuple(dns.options),
            sysctls=dict(config.linux.sysctls) or None,
            cgroup_parent=config.linux.cgroup_parent,
            privileged=config.linux.security_context.privileged,
            oom_score_adj=convert.clamp_oom_score_adj(_SANDBOX_OOM_SCORE_ADJ,
                                                      f"sandbox {name}"))
        image = await self.ensure_image(self.sandbox_image)
        record = await self.containers.container_create("", ContainerConfig(
            image=image, hostname="" if host_network else config.hostname,
            labels=convert.engine_labels("sandbox")), host)
        pod = self.records.put_pod(PodRecord(
            id=record.id, name=name, config=convert.to_json(config), created=now_ns()))
        try:
            await self.containers.container_start(record.id)
            if network is not None:
                netns = f"/proc/{self.containers.get(record.id).state.pid}/ns/net"
                result = await asyncio.to_thread(self.cni.add, network,
                                                 self._target(pod, netns))
                pod = self.records.update_pod(pod.id, network=network, netns=netns,
                                              ip=first_ipv4(result))
        except BaseException:
            await self._remove(pod)
            raise
        return pod.id

    def _target(self, pod: PodRecord, netns: str) -> PodNetworkTarget:
        config = self.config(pod)
        return PodNetworkTarget(
            pod_id=pod.id, netns=netns, name=config.metadata.name,
            namespace=config.metadata.namespace, uid=config.metadata.uid,
            port_mappings=tuple(
                {"hostPort": p.host_port, "containerPort": p.container_port,
                 "protocol": pb.Protocol.Name(p.protocol).lower(),
                 **({"hostIP": p.host_ip} if p.host_ip else {})}
                for p in config.port_mappings if p.host_port))

    @staticmethod
    def config(pod: PodRecord) -> pb.PodSandboxConfig:
        return convert.from_json(pod.config, pb.PodSandboxConfig)

    async def stop(self, pod_id: str) -> None:
        pod = self.records.pod(pod_id)
        async with self.lock(pod.id):
            # The containers' ends and the network's teardown need nothing of each
            # other: at once. The pause process goes last, its namespace DEL's.
            await _all(*(_quietly(self.containers.container_stop(entry.id, 0))
                         for entry in self.records.containers_of(pod.id)),
                       self._teardown(self.records.pod(pod.id)))
            await _quietly(self.containers.container_kill(pod.id, "KILL"))
            self.records.update_pod(pod.id, state=SANDBOX_NOTREADY, sync=False)

    async def _teardown(self, pod: PodRecord) -> None:
        """CNI DEL with what ADD was given, once; after a restart too (the record holds
        the network), with the namespace gone if the pause process is."""
        if not pod.network:
            return
        running = _running(self.containers, pod.id)
        netns = pod.netns if running else ""
        await asyncio.to_thread(self.cni.delete, pod.network, self._target(pod, netns),
                                None)
        self.records.update_pod(pod.id, network={}, netns="", sync=False)

    async def remove(self, pod_id: str) -> None:
        try:
            pod = self.records.pod(pod_id)
        except NotFound:
            return  # kubelet retries removals: an unknown pod is already removed
        async with self.lock(pod.id):
            await self._remove(pod)
        self._locks.pop(pod.id, None)

    async def _remove(self, pod: PodRecord) -> None:
        # The network first (DEL wants the pause process's namespace; after a stop
        # there is nothing left to do), then every container at once.
        await self._teardown(self.records.pod(pod.id))
        entries = self.records.containers_of(pod.id)
        await _all(*(_quietly(self.containers.container_rm(entry.id, True))
                     for entry in entries),
                   _quietly(self.containers.container_rm(pod.id, True)))
        for entry in entries:
            self.records.drop("containers", entry.id)
        self.records.drop("pods", pod.id)

    def status(self, pod_id: str) -> pb.PodSandboxStatus:
        pod = self.records.pod(pod_id)
        config = self.config(pod)
        ready = pod.state != SANDBOX_NOTREADY and _running(self.containers, pod.id)
        return pb.PodSandboxStatus(
            id=pod.id, metadata=config.metadata,
            state=pb.SANDBOX_READY if ready else pb.SANDBOX_NOTREADY,
            created_at=pod.created,
            network=pb.PodSandboxNetworkStatus(ip=pod.ip),
            linux=pb.LinuxPodSandboxStatus(namespaces=pb.Namespace(
                options=namespace_options(config))),
            labels=config.labels, annotations=config.annotations,
            runtime_handler=pod.runtime_handler)

    def list(self, selector: pb.PodSandboxFilter | None) -> list[pb.PodSandbox]:
        found = []
        for pod in list(self.records.pods.values()):
            status = self.status(pod.id)
            if selector is not None and not convert.selected(selector, pod.id, status):
                continue
            found.append(pb.PodSandbox(
                id=pod.id, metadata=status.metadata, state=status.state,
                created_at=status.created_at, labels=status.labels,
                annotations=status.annotations, runtime_handler=pod.runtime_handler))
        return found


def _running(containers: Containers, container_id: str) -> bool:
    try:
        return containers.get(container_id).state.running
    except NotFound:
        return False


async def _all(*steps: Awaitable[None]) -> None:
    """Every step to its end, the first failure raised after."""
    for outcome in await asyncio.gather(*steps, return_exceptions=True):
        if isinstance(outcome, BaseException):
            raise outcome


async def _quietly(operation: Awaitable[None]) -> None:
    """Stops and removals on the way to a pod's end: a container already gone or
    stopped is what was asked."""
    try:
        await operation
    except (NotFound, NotModified):
        pass
    except MoorError as err:
        if "is not running" not in str(err):
            raise
