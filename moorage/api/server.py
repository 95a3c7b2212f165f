"""The HTTP side of moord: the aiohttp application, version prefixes and Docker's errors.

Every route is registered bare and under a `/v1.xx` prefix (add_route); a
middleware checks the version against the supported range and stores it on
the request (`request["api_version"]`, the newest when there is no prefix, lower for
a client known to need it: `versions.for_client`).
Errors from the taxonomy in moorage.errors become Docker's `{"message": ...}`
bodies with the matching status, so a handler never builds an error response.
"""

from __future__ import annotations

import asyncio
import errno
import json
import logging
import os
from collections.abc import Awaitable, Callable
from typing import Any

from aiohttp import web
from aiohttp.abc import AbstractStreamWriter

from moorage import __version__, errors
from moorage.api import versions

log = logging.getLogger("moord.api")

_STATUS = {
    errors.NotFound: 404, errors.InvalidParameter: 400, errors.Conflict: 409,
    errors.NotModified: 304, errors.Unauthorized: 401, errors.Forbidden: 403,
    errors.Unavailable: 503, errors.NotImplementedYet: 501, errors.SystemFailure: 500,
}
SERVER_HEADER = f"moorage/{__version__} (linux)"

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]
_STREAM_STARTED = "moorage.stream_started"


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
    request["api_version"] = versions.for_client(version, request.headers.get("User-Agent", ""))
    return await handler(request)


def add_route(app: web.Application, method: str, path: str, handler: Handler) -> None:
    """Register `path` bare and under every `/v1.xx` prefix."""
    app.router.add_route(method, path, handler)
    app.router.add_route(method, r"/v{api_version:\d+\.\d+}" + path, handler)


async def start_stream(request: web.Request,
                       response: web.StreamResponse) -> AbstractStreamWriter | None:
    """Send `response`'s head (a stream, a 101 upgrade): after it a failure cannot be
    answered in HTTP any more, so the error middleware ends the connection instead."""
    request[_STREAM_STARTED] = response
    return await response.prepare(request)


def failure(request: web.Request, err: Exception) -> tuple[int, str]:
    """The status and Docker's message a failed request answers with; a failure that is
    not the client's is logged."""
    if isinstance(err, errors.MoorError):
        return status_of(err), str(err)
    if isinstance(err, OSError) and err.errno in (errno.ENOSPC, errno.EDQUOT):
        # A full disk that no layer below named: the cause, in Go's words.
        log.warning("%s %s: %s", request.method, request.path, err)
        return 500, (str(errors.write_failed(err, err.filename)) if err.filename
                     else os.strerror(err.errno).lower())
    log.exception("%s %s failed", request.method, request.path, exc_info=err)
    return 500, "internal error: see the daemon's log"


@web.middleware
async def error_middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
    try:
        response = await handler(request)
    except web.HTTPNotFound:
        response = error_response(404, "page not found")
    except web.HTTPMethodNotAllowed:
        response = error_response(405, "method not allowed")
    except web.HTTPException:
        raise
    except Exception as err:
        status, message = failure(request, err)
        started: web.StreamResponse | None = request.get(_STREAM_STARTED)
        if started is None:
            response = error_response(status, message)
        else:
            # A second HTTP answer would be garbage inside the stream or past the 101.
            log.info("%s %s: stream ended: %s", request.method, request.path, message)
            started.force_close()
            response = started
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
    """The request body as a JSON object, or InvalidParameter in dockerd's words
    (moby's loadJSON: "invalid JSON: " and Go's encoding/json message)."""
    raw = await request.read()
    if not raw.strip():
        if required:
            raise errors.InvalidParameter("invalid JSON: got EOF while reading request body")
        return {}
    return parse_json_object(raw, request.match_info.route.resource.canonical
                             if request.match_info.route.resource else "")


# The Go struct each route decodes its body into, as encoding/json names it in errors.
_BODY_TYPES = {"/containers/create": "runconfig.ContainerConfigWrapper",
               "/containers/{name}/exec": "types.ExecConfig"}


def parse_json_object(raw: bytes, route: str = "") -> dict:
    text = raw.decode("utf-8", "surrogateescape")
    try:
        body, end = _DECODER.raw_decode(text, len(text) - len(text.lstrip()))
    except ValueError as err:
        raise errors.InvalidParameter("invalid JSON: " + go_json_error(text, err)) from None
    if text[end:].strip():
        raise errors.InvalidParameter("unexpected content after JSON")
    if not isinstance(body, dict):
        kind = {list: "array", str: "string", bool: "bool"}.get(type(body), "number")
        target = next((t for r, t in _BODY_TYPES.items() if route.endswith(r)),
                      "map[string]interface {}")
        raise errors.InvalidParameter(f"invalid JSON: json: cannot unmarshal {kind} into Go "
                                      f"value of type {target}")
    return body


def _refuse_constant(name: str) -> float:
    raise ValueError(name)  # NaN and Infinity are not JSON; Go refuses them


_DECODER = json.JSONDecoder(parse_constant=_refuse_constant)


def _quote_char(char: str) -> str:
    """Go's encoding/json quoteChar: the offending byte, as strconv.Quote shows it."""
    byte = char.encode("utf-8", "surrogateescape")[:1]
    shown = chr(byte[0]) if byte else ""
    if shown in ("'", '"'):
        return "'\\''" if shown == "'" else "'\"'"
    escapes = {"\a": "\\a", "\b": "\\b", "\f": "\\f", "\n": "\\n", "\r": "\\r",
               "\t": "\\t", "\v": "\\v", "\\": "\\\\"}
    if shown in escapes:
        return f"'{escapes[shown]}'"
    return f"'{shown}'" if shown.isprintable() else f"'\\x{byte[0]:02x}'"


def _container_at(text: str, pos: int) -> str:
    """The innermost open '{' or '[' before `pos` (strings skipped)."""
    stack: list[str] = []
    in_string = escaped = False
    for char in text[:pos]:
        if in_string:
            escaped = not escaped and char == "\\"
            in_string = escaped or char != '"'
        elif char == '"':
            in_string = True
        elif char in "{[":
            stack.append(char)
        elif char in "}]" and stack:
            stack.pop()
    return stack[-1] if stack else ""


def go_json_error(text: str, err: ValueError) -> str:
    """Python's JSONDecodeError in the words of Go's encoding/json SyntaxError."""
    if not isinstance(err, json.JSONDecodeError):
        literal = str(err)  # NaN, Infinity, -Infinity
        return f"invalid character {_quote_char(literal.lstrip('-')[0])} looking for " \
            "beginning of value"
    pos, message = err.pos, err.msg
    if message.startswith("Unterminated string") or not text[pos:].strip():
        return "unexpected EOF"
    char = text[pos]
    quoted = _quote_char(char)
    if message.startswith("Invalid control character"):
        return f"invalid character {quoted} in string literal"
    if message.startswith("Invalid \\escape"):
        return f"invalid character {_quote_char(text[pos + 1])} in string escape code"
    if message.startswith("Expecting property name"):
        return f"invalid character {quoted} looking for beginning of object key string"
    if message.startswith("Expecting ':'"):
        return f"invalid character {quoted} after object key"
    if message.startswith("Expecting ','"):
        where = "object key:value pair" if _container_at(text, pos) == "{" \
            else "array element"
        return f"invalid character {quoted} after {where}"
    for literal in ("true", "false", "null"):
        if char == literal[0]:
            got = text[pos:pos + len(literal)]
            bad = next((i for i, c in enumerate(got) if c != literal[i]), len(got))
            if bad < len(got):
                return (f"invalid character {_quote_char(got[bad])} in literal {literal} "
                        f"(expecting {_quote_char(literal[bad])})")
            return "unexpected EOF"
    return f"invalid character {quoted} looking for beginning of value"


async def unless_disconnected(request: web.Request, future: asyncio.Future) -> Any:
    """The future's result, unless the client goes away first: then the future is cancelled
    and ConnectionResetError raised. aiohttp does not cancel a handler whose client left,
    and a wait the docker CLI gave up on (`run -d` registers one) must not live on."""
    while True:
        done, _ = await asyncio.wait({future}, timeout=0.5)
        if done:
            return future.result()
        transport = request.transport
        if transport is None or transport.is_closing():
            future.cancel()
            raise ConnectionResetError("the client went away")


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
