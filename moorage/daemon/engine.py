"""The engine: the daemon's services, built once from the configuration."""

from __future__ import annotations

import asyncio
import os
import shutil

from moorage.daemon.build.service import BuildService
from moorage.daemon.commit.service import CommitService
from moorage.daemon.config import DaemonConfig
from moorage.daemon.containers import ContainerService
from moorage.daemon.events.bus import EventBus
from moorage.daemon.events.service import EventService
from moorage.daemon.images.service import ImageService
from moorage.daemon.networks.service import NetworkService
from moorage.daemon.system.df import DiskUsageService
from moorage.daemon.system.info import SystemService
from moorage.daemon.volumes.service import VolumeService
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
        self.events = EventBus()
        self.event_log = EventService(self.events, config.data_root)
        self.images = ImageService(config.data_root, RegistryConfig.from_daemon(
            config.registry_mirrors, config.insecure_registries,
            config.registry_mirrors_by_registry), self.metadata, self.events)
        self.volumes = VolumeService(config.data_root, self.metadata, self.events)
        self.networks = NetworkService(config, self.metadata, self.events)
        self.containers = ContainerService(config, self.images, self.volumes, self.events,
                                           self.networks)
        self.networks.lookup = self.containers.network_info
        self.networks.embedded_dns_joined = self.containers.use_embedded_dns
        self.images.holder_namespace = self.containers.namespace_of
        self.commits = CommitService(self.containers.ctx)
        self.builds = BuildService(config.data_root, self.images, self.containers,
                                   self.events)
        self.system = SystemService(config, self.containers.counts, self.images.count,
                                    lambda: self.event_log.listeners)
        self.disk_usage = DiskUsageService(self.images, self.containers, self.volumes,
                                           self.builds.kept)

    async def start(self) -> None:
        await self.networks.start()
        await self.containers.start()
        records = self.containers.ctx.registry.all()
        await asyncio.to_thread(self._release_stale, {r.id for r in records})
        # A daemon that died with containers running leaves their addresses claimed.
        await asyncio.to_thread(self.networks.release_stopped,
                                {r.id for r in records if not r.state.running})
        running: dict[str, set[str]] = {}
        for record in records:
            if record.state.running:
                for point in record.mounts:
                    if point.type == "volume":
                        running.setdefault(point.name, set()).add(record.id)
        await asyncio.to_thread(self.volumes.restore, running)
        await asyncio.to_thread(self._adopt_writable_layers, [
            (r.id, r.image) for r in records if not r.state.running])

    def _release_stale(self, containers: set[str]) -> None:
        """Leases and writable layers of containers that no longer exist: a crash
        between preparing a container and recording it, or while removing it."""
        holders = self.metadata.lease_holder_ids() | set(self.metadata.active_snapshot_keys())
        for holder in holders - containers:
            self.images.remove_rootfs(holder)
            self.volumes.leases.release(holder)

    async def stop(self) -> None:
        try:
            await self.containers.stop()
        finally:
            # Even after a failed container stop: the bridge and its firewall table
            # must not outlive the daemon.
            self.event_log.close()
            await self.networks.stop(keep=any(
                r.state.running for r in self.containers.ctx.registry.all()))

    def _adopt_writable_layers(self, containers: list[tuple[str, str]]) -> None:
        """Containers made before writable layers were snapshots kept theirs in
        containers/<id>/diff: it becomes the container's snapshot, so a start keeps
        what the container wrote. A running one keeps its mounted layer until a
        later start of the daemon finds it stopped."""
        for container_id, image_id in containers:
            legacy = os.path.join(self.config.data_root, "containers", container_id)
            if not os.path.isdir(os.path.join(legacy, "diff")) \
                    or self.metadata.active_snapshot(container_id) is not None:
                continue
            mounts = self.images.prepare_rootfs(container_id, image_id)
            upper = mounts[0].option("upperdir") or ""
            os.rmdir(upper)  # just made, empty
            os.rename(os.path.join(legacy, "diff"), upper)
            for leftover in ("work", "empty"):
                shutil.rmtree(os.path.join(legacy, leftover), ignore_errors=True)
