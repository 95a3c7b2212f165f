"""The HTTP side of moord: the aiohttp application, version prefixes and Docker's errors.

Every route is registered bare and under a `/v1.xx` prefix (add_route); a
middleware checks the version against the supported range and stores it on
the request (`request["api_version"]`, the newest when there is no prefix).
Errors from the taxonomy in moorage.errors become Docker's `{"message": ...}`
bodies with the matching status, so a handler never builds an error response.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Awaitable, Callable

from aiohttp import web

from moorage import __version__, errors
from moorage.api import versions

log = logging.getLogger("moord.api")

_STATUS = {
    errors.NotFound: 404, errors.InvalidParameter: 400, errors.Conflict: 409,
    errors.NotModified: 304, errors.Unauthorized: 401, errors.Forbidden: 403,
    errors.Unavailable: 503, errors.SystemError: 500,
}
SERVER_HEADER = f"moorage/{__version__} (linux)"

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


def error_response(status: int, message: str) -> web.Response:
    return json_response({"message": message}, status=status)


def status_of(err: errors.MoorError) -> int:
    for kind in type(err).__mro__:
        if kind in _STATUS:
            return _STATUS[kind]
    return 500


@web.middleware
async def version_middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
    version = request.match_info.get("api_version", versions.MAX_VERSION)
    if versions.parse(version) < versions.parse(versions.MIN_VERSION):
        return error_response(400, f"client version {version} is too old. Minimum "
                                   f"supported API version is {versions.MIN_VERSION}, "
                                   "please upgrade your client to a newer version")
    if versions.parse(version) > versions.parse(versions.MAX_VERSION):
        return error_response(400, f"client version {version} is too new. Maximum "
                                   f"supported API version is {versions.MAX_VERSION}")
    request["api_version"] = version
    return await handler(request)


def add_route(app: web.Application, method: str, path: str, handler: Handler) -> None:
    """Register `path` bare and under every `/v1.xx` prefix."""
    app.router.add_route(method, path, handler)
    app.router.add_route(method, r"/v{api_version:\d+\.\d+}" + path, handler)


@web.middleware
async def error_middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
    try:
        response = await handler(request)
    except errors.MoorError as err:
        response = error_response(status_of(err), str(err))
    except web.HTTPNotFound:
        response = error_response(404, "page not found")
    except web.HTTPMethodNotAllowed:
        response = error_response(405, "method not allowed")
    except web.HTTPException:
        raise
    except Exception:
        log.exception("%s %s failed", request.method, request.path)
        response = error_response(500, "internal error: see the daemon's log")
    if not response.prepared:
        response.headers.setdefault("Api-Version", versions.MAX_VERSION)
        response.headers.setdefault("Server", SERVER_HEADER)
        response.headers.setdefault("Ostype", "linux")
        response.headers.setdefault("Docker-Experimental", "false")
    return response


def create_app() -> web.Application:
    # Bodies (image loads, imports) stream; the size limit applies to JSON reads.
    return web.Application(middlewares=[error_middleware, version_middleware],
                           client_max_size=64 * 1024 * 1024)


async def read_json(request: web.Request, *, required: bool = True) -> dict:
    """The request body as a JSON object, or InvalidParameter in Docker's words."""
    raw = await request.read()
    if not raw.strip():
        if required:
            raise errors.InvalidParameter("invalid JSON: request body is empty")
        return {}
    try:
        body = json.loads(raw)
    except ValueError as err:
        raise errors.InvalidParameter(f"invalid JSON: {err}") from None
    if not isinstance(body, dict):
        raise errors.InvalidParameter("invalid JSON: the body must be a JSON object")
    return body


def query_bool(request: web.Request, name: str, default: bool = False) -> bool:
    """Docker's boolean query values: 1/true/True/yes are true, 0/false/"" false."""
    value = request.query.get(name)
    if value is None:
        return default
    return value.strip().lower() not in ("", "0", "false", "no")


def query_int(request: web.Request, name: str, default: int | None = None) -> int | None:
    value = request.query.get(name)
    if value is None or value == "":
        return default
    try:
        return int(value)
    except ValueError:
        raise errors.InvalidParameter(f"invalid value for {name}: {value!r}") from None


def query_filters(request: web.Request) -> dict[str, list[str]]:
    """The `filters` parameter: {"key": ["v", ...]} or the old {"key": {"v": true}} form."""
    raw = request.query.get("filters")
    if not raw:
        return {}
    try:
        parsed = json.loads(raw)
    except ValueError:
        raise errors.InvalidParameter(f"invalid filter: {raw!r} is not JSON") from None
    if not isinstance(parsed, dict):
        raise errors.InvalidParameter("invalid filter: must be a JSON object")
    filters: dict[str, list[str]] = {}
    for key, values in parsed.items():
        if isinstance(values, dict):
            filters[key] = [v for v, on in values.items() if on]
        elif isinstance(values, list):
            filters[key] = [str(v) for v in values]
        else:
            raise errors.InvalidParameter(f"invalid filter: {key!r} must map to a list")
    return filters


def json_response(data: object, status: int = 200) -> web.Response:
    # Exactly "application/json", no charset: the docker CLI decodes an error body
    # as {"message": ...} only when the Content-Type is that string.
    return web.Response(body=json.dumps(data).encode(), status=status,
                        headers={"Content-Type": "application/json"})
