"""Compose projects, found by their containers' labels: services, states, up/down/restart.

A project here is what the engine holds (containers labelled by Compose); the Compose file
itself is not needed, so "up" starts the project's existing containers and "down" removes
them and the project's networks, as `docker compose down` does without the file.
"""

from __future__ import annotations

from typing import Any

from aiohttp import web

from moorage.dashboard import rows
from moorage.dashboard.keys import ENGINE
from moorage.dashboard.pages.containers import container_rows
from moorage.dashboard.render import template


async def _projects(request: web.Request) -> dict[str, Any]:
    groups = [(name, members) for name, members in rows.grouped(await container_rows(request))
              if name]
    return {"projects": groups}


@template("compose.html")
async def index(request: web.Request) -> dict[str, Any]:
    return await _projects(request)


@template("compose_projects.html")
async def fragment(request: web.Request) -> dict[str, Any]:
    return await _projects(request)


async def _members(request: web.Request) -> list[dict[str, Any]]:
    project = request.match_info["project"]
    return await request.app[ENGINE].get(
        "/containers/json", {"all": True,
                             "filters": {"label": [f"{rows.PROJECT_LABEL}={project}"]}})


async def operate(request: web.Request) -> web.Response:
    verb = request.match_info["verb"]
    engine = request.app[ENGINE]
    members = await _members(request)
    if verb in ("up", "restart"):
        for c in members:
            await engine.post(f"/containers/{c['Id']}/{'start' if verb == 'up' else 'restart'}")
    elif verb == "down":
        for c in members:
            await engine.delete(f"/containers/{c['Id']}", {"force": True})
        project = request.match_info["project"]
        for network in await engine.get(
                "/networks", {"filters": {"label": [f"{rows.PROJECT_LABEL}={project}"]}}):
            await engine.delete(f"/networks/{network['Id']}")
    else:
        raise web.HTTPNotFound(text=f"unknown operation {verb!r}")
    return web.Response(status=204, headers={"HX-Trigger": "refresh-compose"})


def add_routes(router: web.UrlDispatcher) -> None:
    router.add_get("/compose", index)
    router.add_get("/compose/fragment", fragment)
    router.add_post("/compose/{project}/{verb}", operate)
