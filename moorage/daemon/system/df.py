"""system df: what images, containers and volumes take on disk."""

from __future__ import annotations

import asyncio
import os

from moorage.daemon.containers import ContainerService
from moorage.daemon.containers.setup import tree_size
from moorage.daemon.images.service import ImageService
from moorage.daemon.volumes.store import VolumeStore
from moorage.model.records import ContainerRecord
from moorage.model.system import DiskUsage, VolumeUsage


class DiskUsageService:
    def __init__(self, images: ImageService, containers: ContainerService,
                 volumes: VolumeStore) -> None:
        self.images, self.containers, self.volumes = images, containers, volumes

    async def disk_usage(self) -> DiskUsage:
        records = sorted(self.containers.ctx.registry.all(), key=lambda r: r.created,
                         reverse=True)
        summaries = await asyncio.to_thread(self.images.images, {}, False)
        images = [(s, sum(1 for r in records if r.image == s.id)) for s in summaries]
        containers = [(r, await self.containers.container_size(r)) for r in records]
        volumes = await asyncio.to_thread(self._volumes, records)
        return DiskUsage(sum(s.size for s in summaries), images, containers, volumes)

    def _volumes(self, records: list[ContainerRecord]) -> list[VolumeUsage]:
        found = []
        for name in sorted(os.listdir(self.volumes.root)):
            if not self.volumes.exists(name):
                continue  # a volume being made or removed
            path = self.volumes.path(name)
            users = sum(1 for r in records
                        if any(m.type == "volume" and m.name == name for m in r.mounts))
            found.append(VolumeUsage(name, path, os.stat(os.path.dirname(path)).st_ctime_ns,
                                     tree_size(path), users))
        return found
