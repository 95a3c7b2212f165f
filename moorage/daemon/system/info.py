"""What the engine reports about itself (GET /info, /version): counts, settings, the host.

The host's facts (kernel, operating system, cgroup version, CPUs, memory) do not
change while the daemon runs: they are read once, at start, off any request.
"""

from __future__ import annotations

import os
import platform
import socket
import threading
from collections.abc import Callable
from dataclasses import dataclass

from moorage import __version__, timefmt
from moorage.daemon.config import DaemonConfig
from moorage.image.config import host_architecture
from moorage.model.system import SystemInfo, VersionInfo
from moorage.runtime import cgroups


@dataclass(frozen=True, slots=True)
class HostFacts:
    kernel_version: str
    operating_system: str
    architecture: str
    cgroup_version: str
    name: str
    ncpu: int
    mem_total: int

    @classmethod
    def probe(cls) -> HostFacts:
        uname = platform.uname()
        return cls(kernel_version=uname.release, operating_system=_operating_system(),
                   architecture=uname.machine,
                   cgroup_version="2" if cgroups.unified() else "1",
                   name=socket.gethostname(), ncpu=os.cpu_count() or 1,
                   mem_total=os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES"))


class SystemService:
    """``containers()`` answers (running, paused, stopped); ``images()`` the image count."""

    def __init__(self, config: DaemonConfig, containers: Callable[[], tuple[int, int, int]],
                 images: Callable[[], int], events_listeners: Callable[[], int]) -> None:
        self.config = config
        self._containers = containers
        self._images = images
        self._events_listeners = events_listeners
        self.host = HostFacts.probe()

    def info(self) -> SystemInfo:
        running, paused, stopped = self._containers()
        host = self.host
        return SystemInfo(
            containers=running + paused + stopped, running=running, paused=paused,
            stopped=stopped, images=self._images(), data_root=self.config.data_root,
            default_runtime=self.config.default_runtime,
            runtimes=tuple(r.name for r in self.config.runtimes),
            cgroup_version=host.cgroup_version, name=host.name, ncpu=host.ncpu,
            mem_total=host.mem_total, kernel_version=host.kernel_version,
            operating_system=host.operating_system, architecture=host.architecture,
            live_restore=self.config.live_restore, events_listeners=self._events_listeners(),
            logging_driver=self.config.log_driver,
            system_time=timefmt.now(), open_files=len(os.listdir("/proc/self/fd")),
            threads=threading.active_count(), http_proxy=_proxy("HTTP_PROXY"),
            https_proxy=_proxy("HTTPS_PROXY"), no_proxy=_proxy("NO_PROXY"))

    def version(self) -> VersionInfo:
        return VersionInfo(version=__version__, kernel_version=self.host.kernel_version,
                           arch=host_architecture(),
                           language=f"python{platform.python_version()}")


def _proxy(name: str) -> str:
    """A proxy variable as dockerd shows it (upper or lower case, the upper first), with
    the password of a URL's credentials masked as moby's getConfigOrEnv does."""
    value = os.environ.get(name) or os.environ.get(name.lower()) or ""
    scheme, found, rest = value.partition("://")
    userinfo, at, host = rest.rpartition("@")
    if not (found and at and ":" in userinfo):
        return value
    return f"{scheme}://{userinfo.split(':', 1)[0]}:xxxxx@{host}"


def _operating_system() -> str:
    try:
        with open("/etc/os-release") as f:
            for line in f:
                if line.startswith("PRETTY_NAME="):
                    return line.split("=", 1)[1].strip().strip('"')
    except OSError:
        pass
    return "Linux"
