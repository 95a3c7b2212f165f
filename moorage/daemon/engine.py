"""The engine: the daemon's services, built once from the configuration."""

from __future__ import annotations

import asyncio
import os

from moorage.daemon.config import DaemonConfig
from moorage.daemon.containers import ContainerService
from moorage.daemon.images.service import ImageService
from moorage.daemon.system.info import SystemService
from moorage.daemon.volumes.store import VolumeStore
from moorage.distribution.mirrors import RegistryConfig
from moorage.store.metadata import Metadata


class Engine:
    """Owns every service; the API routes receive them as their backends."""

    def __init__(self, config: DaemonConfig) -> None:
        self.config = config
        for directory in (config.data_root, config.exec_root):
            os.makedirs(directory, mode=0o711, exist_ok=True)
        # The one metadata layer: every service's rows live in moor.db through it.
        self.metadata = Metadata(os.path.join(config.data_root, "moor.db"))
        self.images = ImageService(config.data_root, RegistryConfig.from_daemon(
            config.registry_mirrors, config.insecure_registries), self.metadata)
        self.volumes = VolumeStore(config.data_root, self.metadata)
        self.containers = ContainerService(config, self.images, self.volumes)
        self.system = SystemService(config, self.containers.counts, self.images.count)

    async def start(self) -> None:
        await self.containers.start()
        await asyncio.to_thread(self._release_stale, set(self.containers.containers))

    def _release_stale(self, containers: set[str]) -> None:
        """Leases and writable layers of containers that no longer exist: a crash
        between preparing a container and recording it, or while removing it."""
        holders = self.metadata.lease_holder_ids() | set(self.metadata.active_snapshot_keys())
        for holder in holders - containers:
            self.images.remove_rootfs(holder)
            self.volumes.leases.release(holder)

    async def stop(self) -> None:
        await self.containers.stop()
