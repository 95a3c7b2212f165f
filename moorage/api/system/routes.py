"""/_ping, /version and /info: what clients read first to negotiate and describe the engine."""

from __future__ import annotations

from typing import Protocol

from aiohttp import web

from moorage import __version__
from moorage.api import versions
from moorage.api.server import add_route, json_response
from moorage.model.system import SystemInfo, VersionInfo


class SystemBackend(Protocol):
    def info(self) -> SystemInfo:
        """Counts and settings of the running engine. Never raises."""
        ...

    def version(self) -> VersionInfo:
        """The engine's version and the host's kernel and architecture. Never raises."""
        ...


def add_routes(app: web.Application, backend: SystemBackend) -> None:
    add_route(app, "GET", "/_ping", ping)
    add_route(app, "HEAD", "/_ping", ping)

    async def version(_request: web.Request) -> web.Response:
        return json_response(_version_document(backend.version()))

    add_route(app, "GET", "/version", version)

    async def info(_request: web.Request) -> web.Response:
        return json_response(_info_document(backend.info()))

    add_route(app, "GET", "/info", info)


async def ping(request: web.Request) -> web.Response:
    headers = {"Cache-Control": "no-cache, no-store, must-revalidate", "Pragma": "no-cache",
               "Builder-Version": "1"}
    body = "" if request.method == "HEAD" else "OK"
    return web.Response(text=body, headers=headers, content_type="text/plain")


def _version_document(found: VersionInfo) -> dict:
    return {
        "Platform": {"Name": "moorage"},
        "Components": [{"Name": "Engine", "Version": found.version,
                        "Details": {"ApiVersion": versions.MAX_VERSION,
                                    "MinAPIVersion": versions.MIN_VERSION,
                                    "Os": "linux", "Arch": found.arch,
                                    "KernelVersion": found.kernel_version}}],
        "Version": found.version,
        "ApiVersion": versions.MAX_VERSION,
        "MinAPIVersion": versions.MIN_VERSION,
        "GitCommit": "",
        "GoVersion": found.language,
        "Os": "linux",
        "Arch": found.arch,
        "KernelVersion": found.kernel_version,
        "BuildTime": "",
    }


def _info_document(info: SystemInfo) -> dict:
    return {
        "ID": "", "Containers": info.containers, "ContainersRunning": info.running,
        "ContainersPaused": info.paused, "ContainersStopped": info.stopped,
        "Images": info.images, "Driver": "overlay2",
        "DriverStatus": [["Backing Filesystem", "extfs"], ["Supports d_type", "true"]],
        "Plugins": {"Volume": ["local"], "Network": ["bridge", "host", "null"],
                    "Authorization": None, "Log": ["json-file", "local", "none"]},
        "MemoryLimit": True, "SwapLimit": True, "CpuCfsPeriod": True, "CpuCfsQuota": True,
        "CPUShares": True, "CPUSet": True, "PidsLimit": True, "IPv4Forwarding": True,
        "Debug": False, "NFd": info.open_files, "OomKillDisable": False,
        "NGoroutines": info.threads, "SystemTime": info.system_time,
        "LoggingDriver": info.logging_driver,
        "CgroupDriver": "cgroupfs", "CgroupVersion": info.cgroup_version,
        "NEventsListener": info.events_listeners, "KernelVersion": info.kernel_version,
        "OperatingSystem": info.operating_system, "OSVersion": "", "OSType": "linux",
        "Architecture": info.architecture, "IndexServerAddress": "https://index.docker.io/v1/",
        "RegistryConfig": {"IndexConfigs": {}, "InsecureRegistryCIDRs": ["127.0.0.0/8"],
                           "Mirrors": []},
        "NCPU": info.ncpu, "MemTotal": info.mem_total, "DockerRootDir": info.data_root,
        "HttpProxy": info.http_proxy, "HttpsProxy": info.https_proxy, "NoProxy": info.no_proxy,
        "Name": info.name, "Labels": [],
        "ExperimentalBuild": False, "ServerVersion": __version__,
        "Runtimes": {name: {"path": name} for name in info.runtimes},
        "DefaultRuntime": info.default_runtime, "Swarm": {"LocalNodeState": "inactive"},
        "LiveRestoreEnabled": info.live_restore, "Isolation": "", "InitBinary": "moor-init",
        "SecurityOptions": ["name=seccomp,profile=builtin"], "Warnings": [],
    }
