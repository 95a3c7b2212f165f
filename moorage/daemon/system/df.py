"""system df: what images, containers, volumes and the build cache take on disk."""

from __future__ import annotations

import asyncio

from moorage.daemon.build.kept import KeptContexts
from moorage.daemon.containers import ContainerService
from moorage.daemon.images.service import ImageService
from moorage.daemon.volumes.service import VolumeService
from moorage.model.system import DiskUsage, VolumeUsage


class DiskUsageService:
    def __init__(self, images: ImageService, containers: ContainerService,
                 volumes: VolumeService, kept: KeptContexts) -> None:
        self.images, self.containers, self.volumes = images, containers, volumes
        self.kept = kept

    async def disk_usage(self) -> DiskUsage:
        records = sorted(self.containers.ctx.registry.all(), key=lambda r: r.created,
                         reverse=True)
        summaries = await asyncio.to_thread(self.images.images, {}, False)
        images = [(s, sum(1 for r in records if r.image == s.id)) for s in summaries]
        containers = [(r, await self.containers.container_size(r)) for r in records]
        volumes = [VolumeUsage(v.record.name, v.mountpoint, v.record.created_ns, v.size,
                               v.ref_count)
                   for v in await asyncio.to_thread(self.volumes.usage)]
        return DiskUsage(sum(s.size for s in summaries), images, containers, volumes,
                         await asyncio.to_thread(self.kept.usage))
