"""System: the engine's info, its disk usage, and a prune that first shows what goes."""

from __future__ import annotations

import asyncio
from typing import Any

from aiohttp import web

from moorage.dashboard.keys import ENGINE
from moorage.dashboard.pages.objects import BUILTIN_NETWORKS
from moorage.dashboard.render import template

STOPPED = ("created", "exited", "dead")


async def _preview(request: web.Request) -> dict[str, list[str]]:
    """What `docker system prune` would remove (with --volumes when asked)."""
    engine = request.app[ENGINE]
    # one list of every container gives both the stopped ones and the networks in use
    containers, images, networks, volumes = await asyncio.gather(
        engine.get("/containers/json", {"all": True}),
        engine.get("/images/json", {"filters": {"dangling": ["true"]}}),
        engine.get("/networks"),
        engine.get("/volumes", {"filters": {"dangling": ["true"]}}))
    used = {name for c in containers
            for name in ((c.get("NetworkSettings") or {}).get("Networks") or {})}
    return {"containers": [c["Names"][0].lstrip("/") for c in containers
                           if c.get("State") in STOPPED],
            "images": [i["Id"].removeprefix("sha256:")[:12] for i in images],
            "networks": [n["Name"] for n in networks
                         if n["Name"] not in BUILTIN_NETWORKS and n["Name"] not in used],
            "volumes": [v["Name"] for v in (volumes.get("Volumes") or [])]}


@template("system.html")
async def index(request: web.Request) -> dict[str, Any]:
    engine = request.app[ENGINE]
    info, version, df = await asyncio.gather(engine.get("/info"), engine.get("/version"),
                                             engine.get("/system/df"))
    containers, volumes = df.get("Containers") or [], df.get("Volumes") or []
    # dockerd leaves out a SizeRw of 0, and a volume's size is -1 until it is measured
    usage = {"images": (len(df.get("Images") or []), df.get("LayersSize")),
             "containers": (len(containers), sum(c.get("SizeRw") or 0 for c in containers)),
             "volumes": (len(volumes), sum(max(0, (v.get("UsageData") or {}).get("Size") or 0)
                                           for v in volumes))}
    return {"info": info, "version": version, "usage": usage,
            "preview": await _preview(request)}


@template("prune_preview.html")
async def preview(request: web.Request) -> dict[str, Any]:
    return {"preview": await _preview(request)}


async def prune(request: web.Request) -> web.Response:
    form = await request.post()
    engine = request.app[ENGINE]
    reclaimed = 0
    for path in ("/containers/prune", "/networks/prune", "/images/prune") + \
            (("/volumes/prune",) if form.get("volumes") else ()):
        result = await engine.post(path) or {}
        reclaimed += result.get("SpaceReclaimed", 0) or 0
    return web.Response(text=f"Total reclaimed space: {reclaimed} B",
                        headers={"HX-Trigger": "refresh-all"})


def add_routes(router: web.UrlDispatcher) -> None:
    router.add_get("/system", index)
    router.add_get("/system/preview", preview)
    router.add_post("/system/prune", prune)
