"""Registries: log in through the engine (/auth), and browse a registry's repositories.

The login is checked by the engine and kept in this process's memory only, for the pulls
made from this dashboard. Browsing reads the registry's own catalog (distribution API
`/v2/_catalog` and `tags/list`), as `moor registry serve` and CNCF distribution serve it,
with the project's HTTP client (aiohttp's is loaded without TLS, see __main__); a
registry that asks for credentials gets the login's, as HTTP basic or for a token.
"""

from __future__ import annotations

import base64
import ipaddress
import json
from typing import Any
from urllib.parse import urlencode, urlsplit

from aiohttp import web

from moorage.client.endpoint import Endpoint
from moorage.client.errors import EndpointError
from moorage.client.http import ProtocolError, Response, send_request
from moorage.client.tls_options import TLSOptions
from moorage.dashboard.keys import ENGINE, REGISTRY_AUTH
from moorage.dashboard.render import template
from moorage.protocol.challenge import Challenge, preferred_challenge

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


def _endpoint(host: str, https: bool) -> Endpoint:
    named_port = ":" in host and not host.endswith("]") and host.rpartition(":")[2].isdigit()
    port = "" if named_port else (":443" if https else ":80")
    return Endpoint(f"tcp://{host}{port}", TLSOptions() if https else None)


def _get(endpoint: Endpoint, target: str,
         authorization: str = "") -> tuple[int, dict[str, str], bytes]:
    headers = {"Accept": "application/json", "Connection": "close"}
    if authorization:
        headers["Authorization"] = authorization
    sock = endpoint.connect(timeout=TIMEOUT)
    try:
        send_request(sock, "GET", target, endpoint.http_host, headers, None)
        answer = Response(sock, b"", "GET")
        return answer.status, answer.headers, answer.read()
    finally:
        sock.close()


def _basic(registry_auth: str) -> str:
    """HTTP basic credentials from a login's X-Registry-Auth ("" for none)."""
    try:
        login = json.loads(base64.urlsafe_b64decode(registry_auth))
    except (ValueError, TypeError):
        return ""
    pair = f"{login.get('username', '')}:{login.get('password', '')}"
    return "Basic " + base64.b64encode(pair.encode()).decode()


def _token(challenge: Challenge, basic: str) -> str:
    """A bearer token from the challenge's realm (the distribution token specification),
    asked with the login's credentials, or anonymously without one."""
    realm = urlsplit(challenge.param("realm"))
    if realm.scheme not in ("http", "https") or not realm.netloc:
        raise BrowseError(f"the registry names no usable token realm: {realm.geturl()!r}")
    query = urlencode([(name, challenge.param(name)) for name in ("service", "scope")
                       if challenge.param(name)])
    status, _, body = _get(_endpoint(realm.netloc, realm.scheme == "https"),
                           f"{realm.path or '/'}?{query}", basic)
    if status != 200:
        raise BrowseError(f"the token service {realm.geturl()} answered {status}"
                          + ("" if basic else ": log in first"))
    answer = json.loads(body)
    return str(answer.get("token") or answer.get("access_token") or "")


def _catalog(address: str, registry_auth: str = "") -> dict[str, list[str]]:
    """The registry's repositories and their tags. Blocking: runs on the engine's pool.
    A registry that asks for credentials gets those of a login made here, `registry_auth`:
    HTTP basic, or a bearer token for each scope it asks for."""
    endpoint = _endpoint(address, _scheme(address) == "https")
    basic = _basic(registry_auth)

    def get(target: str) -> tuple[int, Any]:
        status, headers, body = _get(endpoint, target)
        if status == 401:
            challenge = preferred_challenge([headers.get("www-authenticate", "")])
            if challenge is not None and challenge.scheme == "bearer":
                status, headers, body = _get(endpoint, target,
                                             "Bearer " + _token(challenge, basic))
            elif challenge is not None and basic:
                status, headers, body = _get(endpoint, target, basic)
        return status, json.loads(body) if status == 200 else None

    status, catalog = get(f"/v2/_catalog?n={MAX_REPOSITORIES}")
    if status != 200 or not isinstance(catalog, dict):
        hint = ": log in first" if status == 401 and not basic else ""
        raise BrowseError(f"the registry answered {status} to /v2/_catalog, not a "
                          f"catalog{hint}")
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
        tags = await request.app[ENGINE].offload(_catalog, address,
                                                 request.app[REGISTRY_AUTH].get(address, ""))
    except (BrowseError, EndpointError, ProtocolError, OSError, ValueError) as err:
        raise web.HTTPBadGateway(text=f"{address}: {err}") from None
    return {"address": address, "tags": tags}


def add_routes(router: web.UrlDispatcher) -> None:
    router.add_get("/registries", index)
    router.add_post("/registries/login", login)
    router.add_get("/registries/browse", browse)
