"""GET /system/df (Engine API: System, "Get data usage information")."""

from __future__ import annotations

from typing import Protocol

from aiohttp import web

from moorage.api import versions
from moorage.api.containers.documents import summary as container_summary
from moorage.api.images.routes import summary as image_summary
from moorage.api.server import add_route, json_response
from moorage.model.system import DiskUsage
from moorage.model.times import format_rfc3339_nano


class DiskUsageBackend(Protocol):
    async def disk_usage(self) -> DiskUsage: ...


def add_routes(app: web.Application, backend: DiskUsageBackend) -> None:
    async def get_system_df(request: web.Request) -> web.Response:
        usage = await backend.disk_usage()
        old_api = versions.parse(request["api_version"]) < versions.parse("1.44")
        images = []
        for image, users in usage.images:
            doc = image_summary(image, old_api)
            doc.update({"Containers": users, "SharedSize": 0})
            images.append(doc)
        return json_response({
            "LayersSize": usage.layers_size, "Images": images,
            "Containers": [container_summary(record, size)
                           for record, size in usage.containers],
            "Volumes": [{"CreatedAt": format_rfc3339_nano(v.created_ns), "Driver": "local",
                         "Labels": None, "Mountpoint": v.mountpoint, "Name": v.name,
                         "Options": None, "Scope": "local",
                         "UsageData": {"RefCount": v.ref_count, "Size": v.size}}
                        for v in usage.volumes],
            "BuildCache": [{"ID": c.id, "Parents": None, "Type": c.kind,
                            "Description": c.description, "InUse": c.in_use,
                            "Shared": False, "Size": c.size,
                            "CreatedAt": format_rfc3339_nano(c.created_ns),
                            "LastUsedAt": format_rfc3339_nano(c.last_used_ns),
                            "UsageCount": 1} for c in usage.build_cache],
            "BuilderSize": sum(c.size for c in usage.build_cache)})

    add_route(app, "GET", "/system/df", get_system_df)
