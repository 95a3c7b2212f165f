"""The aiohttp application: routing of /v2 on the raw path, auth, errors, admin endpoints.

Repository names contain slashes and must be validated before any URL
normalisation could fold ``..`` away, so /v2 requests are matched here against
the raw request path (distribution-spec "Endpoints" table) rather than by the
aiohttp router. Every answer carries ``Docker-Distribution-API-Version``
(Docker Registry HTTP API v2 "API Version Check").
"""

from __future__ import annotations

import asyncio
import logging
import re
from collections.abc import Awaitable, Callable
from urllib.parse import unquote

from aiohttp import web

from moorage.registry import api_blobs, api_manifests
from moorage.registry.auth import Auth, Scope, parse_scope
from moorage.registry.errors import RegistryError
from moorage.registry.gc import DEFAULT_GRACE, collect
from moorage.registry.names import validate_name
from moorage.registry.observe import METRICS, Metrics
from moorage.registry.proxy import Upstream
from moorage.registry.state import REGISTRY, Registry, Route
from moorage.registry.storage import Storage
from moorage.registry.uploads import Uploads

log = logging.getLogger("moor.registry")

RouteHandler = Callable[[web.Request, Route], Awaitable[web.StreamResponse]]
Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]

# Most specific first: "uploads" must win over "blobs/<digest>".
_PATTERNS: tuple[tuple[str, re.Pattern[str]], ...] = tuple(
    (kind, re.compile(pattern)) for kind, pattern in (
        ("catalog", r"_catalog()()"),
        ("uploads", r"(.+)/blobs/uploads/?()"),
        ("upload", r"(.+)/blobs/uploads/([^/]+)"),
        ("blob", r"(.+)/blobs/([^/]+)"),
        ("manifest", r"(.+)/manifests/([^/]+)"),
        ("tags", r"(.+)/tags/list()"),
        ("referrers", r"(.+)/referrers/([^/]+)"),
    ))

_HANDLERS: dict[tuple[str, str], RouteHandler] = {
    ("catalog", "GET"): api_manifests.catalog,
    ("uploads", "POST"): api_blobs.start_upload,
    ("upload", "GET"): api_blobs.get_upload,
    ("upload", "PATCH"): api_blobs.patch_upload,
    ("upload", "PUT"): api_blobs.put_upload,
    ("upload", "DELETE"): api_blobs.delete_upload,
    ("blob", "GET"): api_blobs.get_blob,
    ("blob", "HEAD"): api_blobs.get_blob,
    ("blob", "DELETE"): api_blobs.delete_blob,
    ("manifest", "GET"): api_manifests.get_manifest,
    ("manifest", "HEAD"): api_manifests.get_manifest,
    ("manifest", "PUT"): api_manifests.put_manifest,
    ("manifest", "DELETE"): api_manifests.delete_manifest,
    ("tags", "GET"): api_manifests.tags_list,
    ("referrers", "GET"): api_manifests.referrers,
}


def _match(path: str) -> Route:
    for kind, pattern in _PATTERNS:
        match = pattern.fullmatch(path)
        if match:
            return Route(kind, match.group(1), match.group(2))
    raise RegistryError("NOT_FOUND", detail={"path": path})


def _required_scope(route: Route, method: str) -> Scope:
    if route.kind == "catalog":
        return Scope("registry", "catalog", frozenset({"*"}))
    if method in ("GET", "HEAD"):
        actions = {"pull"}
    elif method == "DELETE":
        actions = {"delete"}
    else:
        actions = {"pull", "push"}
    return Scope("repository", route.name, frozenset(actions))


async def _dispatch(request: web.Request) -> web.StreamResponse:
    reg = request.app[REGISTRY]
    path = unquote(request.raw_path.partition("?")[0])
    if path == "/v2/" or path == "/v2":
        if reg.auth is not None:
            request["user"] = await reg.auth.authorize(request, None)
        return web.json_response({})
    route = _match(path.removeprefix("/v2/"))
    if route.kind != "catalog":
        validate_name(route.name)
    handler = _HANDLERS.get((route.kind, request.method))
    if handler is None:
        raise RegistryError("UNSUPPORTED", detail={"method": request.method})
    if reg.auth is not None:
        request["user"] = await reg.auth.authorize(request, _required_scope(route, request.method))
    if reg.upstream is not None and request.method not in ("GET", "HEAD"):
        # A pull-through cache mirrors its upstream; pushes go to the upstream itself.
        raise RegistryError("UNSUPPORTED", "pushes are not supported by a pull-through cache")
    return await handler(request, route)


@web.middleware
async def registry_middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
    try:
        if request.raw_path == "/v2" or request.raw_path.startswith("/v2/"):
            response = await _dispatch(request)
        else:
            response = await handler(request)
    except RegistryError as err:
        response = err.response()
    except web.HTTPNotFound:
        response = RegistryError("NOT_FOUND").response()
    except web.HTTPMethodNotAllowed:
        response = RegistryError("UNSUPPORTED").response()
    response.headers["Docker-Distribution-API-Version"] = "registry/2.0"
    return response


async def token(request: web.Request) -> web.StreamResponse:
    """Docker token authentication: basic credentials in, a scoped bearer token out."""
    reg = request.app[REGISTRY]
    if reg.auth is None:
        raise RegistryError("UNSUPPORTED", "the registry runs without authentication")
    user = await reg.auth.basic_user(request)
    scopes = [s for raw in request.query.getall("scope", [])
              for part in raw.split(" ") if (s := parse_scope(part)) is not None]
    request["user"] = user
    value = reg.auth.issue(user, scopes)
    return web.json_response({"token": value, "access_token": value, "expires_in": 300})


async def run_gc(request: web.Request) -> web.StreamResponse:
    """POST /moor/registry/gc[?grace=SECONDS][&dry_run=1]: one collection, while serving."""
    reg = request.app[REGISTRY]
    if reg.auth is not None:
        request["user"] = await reg.auth.authorize(request, None)
    try:
        grace = float(request.query.get("grace", DEFAULT_GRACE))
    except ValueError:
        raise RegistryError("UNSUPPORTED", "grace must be a number of seconds") from None
    dry_run = request.query.get("dry_run", "") in ("1", "true")
    async with reg.gc_lock:
        result = await asyncio.to_thread(collect, reg.storage, reg.uploads, grace, dry_run)
    reg.metrics.gc_runs += 1
    reg.metrics.gc_blobs_deleted += result.blobs_deleted
    return web.json_response(result.as_json())


async def metrics(request: web.Request) -> web.StreamResponse:
    return web.Response(text=request.app[METRICS].render(),
                        content_type="text/plain", charset="utf-8",
                        headers={"X-Content-Type-Options": "nosniff"})


def create_app(storage_dir: str, *, auth: Auth | None = None,
               upstream: Upstream | None = None) -> web.Application:
    storage = Storage(storage_dir)
    storage.clean_tmp()
    registry = Registry(storage=storage, uploads=Uploads(storage), metrics=Metrics(),
                        auth=auth, upstream=upstream)
    app = web.Application(middlewares=[registry_middleware])
    app[REGISTRY] = registry
    app[METRICS] = registry.metrics
    app.router.add_get("/moor/token", token)
    app.router.add_post("/moor/registry/gc", run_gc)
    app.router.add_get("/metrics", metrics)

    async def close_upstream(_: web.Application) -> None:
        if upstream is not None:
            await upstream.close()

    app.on_cleanup.append(close_upstream)
    return app
