"""The engine: the daemon's services, built once from the configuration."""

from __future__ import annotations

import os
import socket

from moorage.api.system.routes import SystemInfo
from moorage.daemon.config import DaemonConfig
from moorage.daemon.containers import ContainerService
from moorage.daemon.images import ImageService
from moorage.daemon.volumes import VolumeStore
from moorage.distribution.mirrors import RegistryConfig
from moorage.runtime import cgroups


class Engine:
    """Owns every service; the API routes receive them as their backends."""

    def __init__(self, config: DaemonConfig) -> None:
        self.config = config
        for directory in (config.data_root, config.exec_root):
            os.makedirs(directory, mode=0o711, exist_ok=True)
        self.images = ImageService(config.data_root, RegistryConfig.from_daemon(
            config.registry_mirrors, config.insecure_registries))
        self.volumes = VolumeStore(config.data_root)
        self.containers = ContainerService(config, self.images, self.volumes)

    async def start(self) -> None:
        await self.containers.start()

    async def stop(self) -> None:
        await self.containers.stop()

    def info(self) -> SystemInfo:
        running, paused, stopped = self.containers.counts()
        return SystemInfo(
            containers=running + paused + stopped, running=running, paused=paused,
            stopped=stopped, images=self.images.count(), data_root=self.config.data_root,
            default_runtime=self.config.default_runtime,
            runtimes=tuple(r.name for r in self.config.runtimes),
            cgroup_version="2" if cgroups.unified() else "1",
            name=socket.gethostname(), ncpu=os.cpu_count() or 1,
            mem_total=os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES"))
