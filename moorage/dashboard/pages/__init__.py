"""The dashboard's views, one module per resource, each adding its own routes."""

from __future__ import annotations

from aiohttp import web

from moorage.dashboard.pages import (
    compose,
    containers,
    files,
    images,
    objects,
    registries,
    system,
)


async def home(_request: web.Request) -> web.Response:
    raise web.HTTPFound("/containers")


def add_routes(router: web.UrlDispatcher) -> None:
    router.add_get("/", home)
    for module in (images, objects, system, compose, registries, files, containers):
        module.add_routes(router)
