"""Registries: log in through the engine (/auth), and browse a registry's repositories.

The login is checked by the engine and kept in this process's memory only, for the pulls
made from this dashboard. Browsing reads the registry's own catalog (distribution API
`/v2/_catalog` and `tags/list`), as `moor registry serve` and CNCF distribution serve it,
with the project's HTTP client (aiohttp's is loaded without TLS, see __main__).
"""

from __future__ import annotations

import base64
import ipaddress
import json
from typing import Any

from aiohttp import web

from moorage.client.endpoint import Endpoint
from moorage.client.errors import EndpointError
from moorage.client.http import ProtocolError, Response, send_request
from moorage.client.tls_options import TLSOptions
from moorage.dashboard.keys import ENGINE, REGISTRY_AUTH
from moorage.dashboard.render import template

MAX_REPOSITORIES = 100
TIMEOUT = 10.0


class BrowseError(Exception):
    """The registry's answer, when it is not a catalog."""


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


def _catalog(address: str) -> dict[str, list[str]]:
    """The registry's repositories and their tags. Blocking: runs on the engine's pool."""
    https = _scheme(address) == "https"
    named_port = ":" in address and not address.endswith("]") and \
        address.rpartition(":")[2].isdigit()
    port = "" if named_port else (":443" if https else ":80")
    endpoint = Endpoint(f"tcp://{address}{port}", TLSOptions() if https else None)

    def get(target: str) -> tuple[int, Any]:
        sock = endpoint.connect(timeout=TIMEOUT)
        try:
            send_request(sock, "GET", target, endpoint.http_host,
                         {"Accept": "application/json", "Connection": "close"}, None)
            answer = Response(sock, b"", "GET")
            body = answer.read()
            return answer.status, json.loads(body) if answer.status == 200 else None
        finally:
            sock.close()

    status, catalog = get(f"/v2/_catalog?n={MAX_REPOSITORIES}")
    if status != 200 or not isinstance(catalog, dict):
        raise BrowseError(f"the registry answered {status} to /v2/_catalog, not a catalog")
    tags = {}
    for repository in catalog.get("repositories") or []:
        status, listed = get(f"/v2/{repository}/tags/list")
        tags[repository] = (listed.get("tags") or []) if status == 200 else []
    return tags


@template("registry_catalog.html")
async def browse(request: web.Request) -> dict[str, Any]:
    address = request.query.get("address", "").strip()
    if not address or "/" in address:
        raise web.HTTPBadRequest(text="a registry address (host:port) is needed")
    try:
        tags = await request.app[ENGINE].offload(_catalog, address)
    except (BrowseError, EndpointError, ProtocolError, OSError, ValueError) as err:
        raise web.HTTPBadGateway(text=f"{address}: {err}") from None
    return {"address": address, "tags": tags}


def add_routes(router: web.UrlDispatcher) -> None:
    router.add_get("/registries", index)
    router.add_post("/registries/login", login)
    router.add_get("/registries/browse", browse)
