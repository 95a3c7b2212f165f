"""The CRI's gRPC server: runtime.v1's RuntimeService and ImageService on a unix
socket, each RPC one call into the CRI's parts, errors mapped to gRPC codes in one
place."""

from __future__ import annotations

import functools
import logging
import os
import time
from collections.abc import Callable
from typing import Any

import grpc
from google.protobuf.message import DecodeError
from google.protobuf.message_factory import GetMessageClass

from moorage import __version__ as moorage_version
from moorage.cri import convert
from moorage.cri.backends import Containers, Images
from moorage.cri.cni import Cni
from moorage.cri.containers import CriContainers
from moorage.cri.execsync import ExecTimeout, exec_sync
from moorage.cri.images import CriImages
from moorage.cri.pods import Pods
from moorage.cri.proto import api_pb2 as pb
from moorage.cri.proto import api_pb2_grpc as rpc
from moorage.cri.records import CriRecords, NameReserved
from moorage.cri.streaming import ExecRequest, ForwardRequest, SocketIn, StreamingServer
from moorage.errors import (
    Conflict,
    Forbidden,
    InvalidParameter,
    MoorError,
    NotFound,
    Unauthorized,
    Unavailable,
)

log = logging.getLogger("moord.cri")
_CODES: tuple[tuple[type, grpc.StatusCode], ...] = (
    (ExecTimeout, grpc.StatusCode.DEADLINE_EXCEEDED),
    (NameReserved, grpc.StatusCode.ALREADY_EXISTS),
    (NotFound, grpc.StatusCode.NOT_FOUND),
    (InvalidParameter, grpc.StatusCode.INVALID_ARGUMENT),
    (Conflict, grpc.StatusCode.FAILED_PRECONDITION),
    (Unauthorized, grpc.StatusCode.UNAUTHENTICATED),
    (Forbidden, grpc.StatusCode.PERMISSION_DENIED),
    (Unavailable, grpc.StatusCode.UNAVAILABLE),
)


class _Malformed:
    """A request whose bytes are not its message: refused in the handler as gRPC-Go
    refuses it (Internal, "error unmarshalling request")."""

    def __init__(self, error: Exception) -> None:
        self.error = error


def _tolerant(cls: type) -> Callable[[bytes], Any]:
    def parse(data: bytes) -> Any:
        try:
            return cls.FromString(data)
        except DecodeError as err:
            return _Malformed(err)
    return parse


def _rpc(method: Callable) -> Callable:
    """The engine's errors as gRPC status codes; anything else is a logged UNKNOWN."""

    @functools.wraps(method)
    async def handler(self: Any, request: Any, context: grpc.aio.ServicerContext) -> Any:
        if isinstance(request, _Malformed):
            await context.abort(grpc.StatusCode.INTERNAL,
                                f"grpc: error unmarshalling request: {request.error}")
        try:
            return await method(self, request)
        except MoorError as err:
            code = next((c for cls, c in _CODES if isinstance(err, cls)),
                        grpc.StatusCode.UNKNOWN)
            await context.abort(code, str(err))
        except Exception as err:
            log.exception("CRI %s failed", method.__name__)
            await context.abort(grpc.StatusCode.UNKNOWN, f"{type(err).__name__}: {err}")

    return handler


class CriService:
    """The CRI's parts, built once from the engine's services."""

    def __init__(self, data_root: str, containers: Containers, images: Images, cni: Cni,
                 sandbox_image: str, socket_in: SocketIn) -> None:
        self.records = CriRecords(data_root)
        self.engine = containers
        self.cni = cni
        self.images = CriImages(images, os.path.join(data_root, "snapshots"))
        self.pods = Pods(self.records, containers, cni, sandbox_image, self.images.ensure)
        self.containers = CriContainers(self.records, containers, images, self.pods)
        self.streaming = StreamingServer(containers, socket_in)


class RuntimeServicer(rpc.RuntimeServiceServicer):
    def __init__(self, service: CriService) -> None:
        self.s = service

    @_rpc
    async def Version(self, request: pb.VersionRequest) -> pb.VersionResponse:
        return pb.VersionResponse(version="0.1.0", runtime_name="moorage",
                                  runtime_version=moorage_version, runtime_api_version="v1")

    @_rpc
    async def Status(self, request: pb.StatusRequest) -> pb.StatusResponse:
        reason = self.s.cni.not_ready_reason()
        return pb.StatusResponse(status=pb.RuntimeStatus(conditions=[
            pb.RuntimeCondition(type="RuntimeReady", status=True),
            pb.RuntimeCondition(type="NetworkReady", status=not reason,
                                reason="NetworkPluginNotReady" if reason else "",
                                message=f"Network plugin returns error: {reason}"
                                if reason else "")]))

    @_rpc
    async def UpdateRuntimeConfig(self, request: pb.UpdateRuntimeConfigRequest
                                  ) -> pb.UpdateRuntimeConfigResponse:
        # The pod CIDR only fills templated CNI configurations, which this runtime
        # does not write: the network configuration in the folder is used as it is.
        if request.runtime_config.network_config.pod_cidr:
            log.info("CRI: pod CIDR %s noted; the CNI configuration is used as written",
                     request.runtime_config.network_config.pod_cidr)
        return pb.UpdateRuntimeConfigResponse()

    @_rpc
    async def RunPodSandbox(self, request: pb.RunPodSandboxRequest
                            ) -> pb.RunPodSandboxResponse:
        return pb.RunPodSandboxResponse(pod_sandbox_id=await self.s.pods.run(
            request.config, request.runtime_handler))

    @_rpc
    async def StopPodSandbox(self, request: pb.StopPodSandboxRequest
                             ) -> pb.StopPodSandboxResponse:
        await self.s.pods.stop(request.pod_sandbox_id)
        return pb.StopPodSandboxResponse()

    @_rpc
    async def RemovePodSandbox(self, request: pb.RemovePodSandboxRequest
                               ) -> pb.RemovePodSandboxResponse:
        await self.s.pods.remove(request.pod_sandbox_id)
        return pb.RemovePodSandboxResponse()

    @_rpc
    async def PodSandboxStatus(self, request: pb.PodSandboxStatusRequest
                               ) -> pb.PodSandboxStatusResponse:
        return pb.PodSandboxStatusResponse(status=self.s.pods.status(request.pod_sandbox_id))

    @_rpc
    async def ListPodSandbox(self, request: pb.ListPodSandboxRequest
                             ) -> pb.ListPodSandboxResponse:
        return pb.ListPodSandboxResponse(items=self.s.pods.list(
            request.filter if request.HasField("filter") else None))

    @_rpc
    async def CreateContainer(self, request: pb.CreateContainerRequest
                              ) -> pb.CreateContainerResponse:
        return pb.CreateContainerResponse(container_id=await self.s.containers.create(
            request.pod_sandbox_id, request.config, request.sandbox_config))

    @_rpc
    async def StartContainer(self, request: pb.StartContainerRequest
                             ) -> pb.StartContainerResponse:
        await self.s.containers.start(request.container_id)
        return pb.StartContainerResponse()

    @_rpc
    async def StopContainer(self, request: pb.StopContainerRequest
                            ) -> pb.StopContainerResponse:
        await self.s.containers.stop(request.container_id, int(request.timeout))
        return pb.StopContainerResponse()

    @_rpc
    async def RemoveContainer(self, request: pb.RemoveContainerRequest
                              ) -> pb.RemoveContainerResponse:
        await self.s.containers.remove(request.container_id)
        return pb.RemoveContainerResponse()

    @_rpc
    async def ListContainers(self, request: pb.ListContainersRequest
                             ) -> pb.ListContainersResponse:
        return pb.ListContainersResponse(containers=self.s.containers.list(
            request.filter if request.HasField("filter") else None))

    @_rpc
    async def ContainerStatus(self, request: pb.ContainerStatusRequest
                              ) -> pb.ContainerStatusResponse:
        return pb.ContainerStatusResponse(status=self.s.containers.status(
            request.container_id))

    @_rpc
    async def UpdateContainerResources(self, request: pb.UpdateContainerResourcesRequest
                                       ) -> pb.UpdateContainerResourcesResponse:
        await self.s.containers.update_resources(request.container_id, request.linux)
        return pb.UpdateContainerResourcesResponse()

    @_rpc
    async def ExecSync(self, request: pb.ExecSyncRequest) -> pb.ExecSyncResponse:
        if not request.cmd:
            raise InvalidParameter("cmd must not be empty")
        entry = self.s.records.container(request.container_id)
        stdout, stderr, code = await exec_sync(self.s.engine, entry.id, list(request.cmd),
                                               int(request.timeout))
        return pb.ExecSyncResponse(stdout=stdout, stderr=stderr, exit_code=code)

    @_rpc
    async def Exec(self, request: pb.ExecRequest) -> pb.ExecResponse:
        if not request.cmd:
            raise InvalidParameter("cmd must not be empty")
        if not (request.stdin or request.stdout or request.stderr):
            raise InvalidParameter("one of stdin, stdout, or stderr must be set")
        if request.tty and request.stderr:
            raise InvalidParameter("tty and stderr cannot both be true")
        entry = self.s.records.container(request.container_id)
        if not self.s.engine.get(entry.id).state.running:
            raise Conflict(f'container "{entry.id}" is not running')
        return pb.ExecResponse(url=self.s.streaming.exec_url(ExecRequest(
            entry.id, tuple(request.cmd), request.tty, request.stdin, request.stdout,
            request.stderr, time.monotonic())))

    @_rpc
    async def Attach(self, request: pb.AttachRequest) -> pb.AttachResponse:
        if not (request.stdin or request.stdout or request.stderr):
            raise InvalidParameter("one of stdin, stdout, or stderr must be set")
        entry = self.s.records.container(request.container_id)
        if not self.s.engine.get(entry.id).state.running:
            raise Conflict(f'container "{entry.id}" is not running')
        return pb.AttachResponse(url=self.s.streaming.exec_url(ExecRequest(
            entry.id, (), request.tty, request.stdin, request.stdout,
            request.stderr and not request.tty, time.monotonic(), attach=True)))

    @_rpc
    async def PortForward(self, request: pb.PortForwardRequest) -> pb.PortForwardResponse:
        pod = self.s.records.pod(request.pod_sandbox_id)
        if bad := [p for p in request.port if not 0 < p < 65536]:
            raise InvalidParameter(f"invalid port {bad[0]}")
        if self.s.pods.status(pod.id).state != pb.SANDBOX_READY:
            raise MoorError("sandbox container is not running")  # containerd's words
        # The pause process's namespace now (a restart of moord may follow a pod's
        # start); a pod on the host's network connects in the daemon's own.
        netns = f"/proc/{self.s.engine.get(pod.id).state.pid}/ns/net" if pod.network else ""
        return pb.PortForwardResponse(url=self.s.streaming.exec_url(ForwardRequest(
            pod.id, netns, time.monotonic(), tuple(request.port))))

    @_rpc
    async def ReopenContainerLog(self, request: pb.ReopenContainerLogRequest
                                 ) -> pb.ReopenContainerLogResponse:
        entry = self.s.records.container(request.container_id)
        await self.s.engine.container_reopen_log(entry.id)
        return pb.ReopenContainerLogResponse()

    @_rpc
    async def ContainerStats(self, request: pb.ContainerStatsRequest
                             ) -> pb.ContainerStatsResponse:
        return pb.ContainerStatsResponse(stats=await self.s.containers.stats(
            request.container_id))

    @_rpc
    async def ListContainerStats(self, request: pb.ListContainerStatsRequest
                                 ) -> pb.ListContainerStatsResponse:
        selector = request.filter
        stats = []
        for container in self.s.containers.list(None):
            if selector.id and not container.id.startswith(selector.id):
                continue
            if selector.pod_sandbox_id and not container.pod_sandbox_id.startswith(
                    selector.pod_sandbox_id):
                continue
            if not convert.labels_match(container.labels, selector.label_selector):
                continue
            stats.append(await self.s.containers.stats(container.id))
        return pb.ListContainerStatsResponse(stats=stats)

    async def _pod_stats(self, pod: pb.PodSandbox) -> pb.PodSandboxStats:
        containers = [await self.s.containers.stats(c.id)
                      for c in self.s.containers.list(pb.ContainerFilter(
                          pod_sandbox_id=pod.id))]
        timestamp = max((c.cpu.timestamp for c in containers), default=0)
        return pb.PodSandboxStats(
            attributes=pb.PodSandboxAttributes(id=pod.id, metadata=pod.metadata,
                                               labels=pod.labels,
                                               annotations=pod.annotations),
            linux=pb.LinuxPodSandboxStats(
                cpu=pb.CpuUsage(timestamp=timestamp, usage_core_nano_seconds=pb.UInt64Value(
                    value=sum(c.cpu.usage_core_nano_seconds.value for c in containers))),
                memory=pb.MemoryUsage(timestamp=timestamp, working_set_bytes=pb.UInt64Value(
                    value=sum(c.memory.working_set_bytes.value for c in containers))),
                containers=containers))

    @_rpc
    async def PodSandboxStats(self, request: pb.PodSandboxStatsRequest
                              ) -> pb.PodSandboxStatsResponse:
        pod = self.s.records.pod(request.pod_sandbox_id)
        found = self.s.pods.list(pb.PodSandboxFilter(id=pod.id))
        return pb.PodSandboxStatsResponse(stats=await self._pod_stats(found[0]))

    @_rpc
    async def ListPodSandboxStats(self, request: pb.ListPodSandboxStatsRequest
                                  ) -> pb.ListPodSandboxStatsResponse:
        selector = request.filter
        pods = [p for p in self.s.pods.list(pb.PodSandboxFilter(
            id=selector.id, label_selector=selector.label_selector))]
        return pb.ListPodSandboxStatsResponse(stats=[await self._pod_stats(p) for p in pods])


class ImageServicer(rpc.ImageServiceServicer):
    def __init__(self, service: CriService) -> None:
        self.s = service

    @_rpc
    async def ListImages(self, request: pb.ListImagesRequest) -> pb.ListImagesResponse:
        return pb.ListImagesResponse(images=await self.s.images.list(
            request.filter if request.HasField("filter") else None))

    @_rpc
    async def ImageStatus(self, request: pb.ImageStatusRequest) -> pb.ImageStatusResponse:
        image = await self.s.images.status(request.image)
        return pb.ImageStatusResponse(image=image) if image else pb.ImageStatusResponse()

    @_rpc
    async def PullImage(self, request: pb.PullImageRequest) -> pb.PullImageResponse:
        return pb.PullImageResponse(image_ref=await self.s.images.pull(request.image,
                                                                        request.auth))

    @_rpc
    async def RemoveImage(self, request: pb.RemoveImageRequest) -> pb.RemoveImageResponse:
        await self.s.images.remove(request.image)
        return pb.RemoveImageResponse()

    @_rpc
    async def ImageFsInfo(self, request: pb.ImageFsInfoRequest) -> pb.ImageFsInfoResponse:
        return pb.ImageFsInfoResponse(image_filesystems=[self.s.images.fs_info()])


def _handlers(servicer: Any, service_name: str) -> grpc.GenericRpcHandler:
    """The generated registration, with requests parsed by `_tolerant`. The one streaming
    method (GetContainerEvents, which kubelet 1.26 calls only with its evented PLEG gate
    on) stays unregistered: gRPC answers it UNIMPLEMENTED."""
    descriptor = pb.DESCRIPTOR.services_by_name[service_name]
    handlers = {
        method.name: grpc.unary_unary_rpc_method_handler(
            getattr(servicer, method.name),
            request_deserializer=_tolerant(GetMessageClass(method.input_type)),
            response_serializer=GetMessageClass(method.output_type).SerializeToString)
        for method in descriptor.methods
        if not (method.server_streaming or method.client_streaming)}
    return grpc.method_handlers_generic_handler(descriptor.full_name, handlers)


async def serve(path: str, service: CriService) -> grpc.aio.Server:
    """Listening on `path` (unix socket, 0660) once it returns."""
    server = grpc.aio.server()
    server.add_generic_rpc_handlers((_handlers(RuntimeServicer(service), "RuntimeService"),
                                     _handlers(ImageServicer(service), "ImageService")))
    try:
        os.unlink(path)
    except FileNotFoundError:
        pass
    os.makedirs(os.path.dirname(path) or ".", exist_ok=True)
    server.add_insecure_port(f"unix://{path}")
    await service.streaming.start()
    await server.start()
    os.chmod(path, 0o660)
    return server
