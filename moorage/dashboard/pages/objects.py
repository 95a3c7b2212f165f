"""Volumes and networks: list, create, remove."""

from __future__ import annotations

from typing import Any

from aiohttp import web

from moorage.dashboard.keys import ENGINE
from moorage.dashboard.render import template

BUILTIN_NETWORKS = ("bridge", "host", "none")


async def _volumes(request: web.Request) -> dict[str, Any]:
    found = (await request.app[ENGINE].get("/volumes")).get("Volumes") or []
    return {"volumes": sorted(found, key=lambda v: v["Name"])}


async def _networks(request: web.Request) -> dict[str, Any]:
    found = await request.app[ENGINE].get("/networks")
    return {"networks": sorted(found, key=lambda n: n["Name"]), "builtin": BUILTIN_NETWORKS}


@template("volumes.html")
async def volumes(request: web.Request) -> dict[str, Any]:
    return await _volumes(request)


@template("volume_rows.html")
async def volume_rows(request: web.Request) -> dict[str, Any]:
    return await _volumes(request)


@template("networks.html")
async def networks(request: web.Request) -> dict[str, Any]:
    return await _networks(request)


@template("network_rows.html")
async def network_rows(request: web.Request) -> dict[str, Any]:
    return await _networks(request)


async def create_volume(request: web.Request) -> web.Response:
    form = await request.post()
    await request.app[ENGINE].post("/volumes/create",
                                   body={"Name": str(form.get("name", "")).strip()})
    return web.Response(status=204)


async def remove_volume(request: web.Request) -> web.Response:
    await request.app[ENGINE].delete(f"/volumes/{request.match_info['name']}")
    return web.Response(status=204)


async def create_network(request: web.Request) -> web.Response:
    form = await request.post()
    await request.app[ENGINE].post("/networks/create",
                                   body={"Name": str(form.get("name", "")).strip(),
                                         "Driver": "bridge"})
    return web.Response(status=204)


async def remove_network(request: web.Request) -> web.Response:
    await request.app[ENGINE].delete(f"/networks/{request.match_info['id']}")
    return web.Response(status=204)


def add_routes(router: web.UrlDispatcher) -> None:
    router.add_get("/volumes", volumes)
    router.add_get("/volumes/fragment", volume_rows)
    router.add_post("/volumes", create_volume)
    router.add_delete("/volumes/{name}", remove_volume)
    router.add_get("/networks", networks)
    router.add_get("/networks/fragment", network_rows)
    router.add_post("/networks", create_network)
    router.add_delete("/networks/{id}", remove_network)
