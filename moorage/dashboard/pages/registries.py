"""Registries: log in through the engine (/auth), and browse a registry's repositories.

The login is checked by the engine and kept in this process's memory only, for the pulls
made from this dashboard. Browsing reads the registry's own catalog (distribution API
`/v2/_catalog` and `tags/list`), as `moor registry serve` and CNCF distribution serve it.
"""

from __future__ import annotations

import base64
import ipaddress
import json
from typing import Any

import aiohttp
from aiohttp import web

from moorage.dashboard.keys import ENGINE, REGISTRY_AUTH
from moorage.dashboard.render import template

MAX_REPOSITORIES = 100


@template("registries.html")
async def index(request: web.Request) -> dict[str, Any]:
    return {"logged_in": sorted(request.app[REGISTRY_AUTH])}


async def login(request: web.Request) -> web.Response:
    form = await request.post()
    credentials = {"username": str(form.get("username", "")),
                   "password": str(form.get("password", "")),
                   "serveraddress": str(form.get("server", "")).strip()}
    answer = await request.app[ENGINE].post("/auth", body=credentials) or {}
    request.app[REGISTRY_AUTH][credentials["serveraddress"]] = base64.urlsafe_b64encode(
        json.dumps(credentials).encode()).decode()
    return web.Response(text=answer.get("Status") or "Login Succeeded")


def _scheme(address: str) -> str:
    """Docker's rule: plain HTTP only for a registry on a loopback address."""
    host = address.rsplit(":", 1)[0].strip("[]")
    try:
        loopback = host == "localhost" or ipaddress.ip_address(host).is_loopback
    except ValueError:
        loopback = False
    return "http" if loopback else "https"


@template("registry_catalog.html")
async def browse(request: web.Request) -> dict[str, Any]:
    address = request.query.get("address", "").strip()
    if not address or "/" in address:
        raise web.HTTPBadRequest(text="a registry address (host:port) is needed")
    base = f"{_scheme(address)}://{address}/v2"
    timeout = aiohttp.ClientTimeout(total=10)
    try:
        async with aiohttp.ClientSession(timeout=timeout) as session:
            async with session.get(f"{base}/_catalog",
                                   params={"n": str(MAX_REPOSITORIES)}) as answer:
                answer.raise_for_status()
                repositories = (await answer.json()).get("repositories") or []
            tags = {}
            for repository in repositories:
                async with session.get(f"{base}/{repository}/tags/list") as answer:
                    tags[repository] = ((await answer.json()).get("tags") or []) \
                        if answer.ok else []
    except (aiohttp.ClientError, TimeoutError, ValueError) as err:
        raise web.HTTPBadGateway(text=f"{address}: {err}") from None
    return {"address": address, "tags": tags}


def add_routes(router: web.UrlDispatcher) -> None:
    router.add_get("/registries", index)
    router.add_post("/registries/login", login)
    router.add_get("/registries/browse", browse)
