"""Blob and upload handlers.

distribution-spec "Pulling blobs", "Pushing blobs", "Deleting blobs".
"""

from __future__ import annotations

import re

import aiohttp
from aiohttp import web

from moorage.registry.auth import Scope
from moorage.registry.errors import RegistryError
from moorage.registry.names import Digest, parse_digest_str, validate_name
from moorage.registry.state import REGISTRY, Route
from moorage.registry.uploads import upload_headers

_CONTENT_RANGE_RE = re.compile(r"(?:bytes )?(\d+)-(\d+)(?:/(?:\d+|\*))?")


def _created(name: str, digest: Digest) -> web.Response:
    return web.Response(status=201, headers={"Location": f"/v2/{name}/blobs/{digest}",
                                             "Docker-Content-Digest": str(digest),
                                             "Content-Length": "0"})


async def get_blob(request: web.Request, route: Route) -> web.StreamResponse:
    """GET and HEAD; Range requests get 206 or 416 from FileResponse, which uses sendfile."""
    reg = request.app[REGISTRY]
    digest = parse_digest_str(route.ref)
    path = reg.storage.linked_blob(route.name, digest)
    if path is None and reg.upstream is not None:
        try:
            if await reg.upstream.fetch_blob(reg.storage, route.name, digest):
                reg.metrics.blobs_stored += 1
        except aiohttp.ClientError as err:
            raise RegistryError("BLOB_UNKNOWN", detail={"digest": str(digest),
                                                        "upstream": str(err)}) from None
        path = reg.storage.linked_blob(route.name, digest)
    if path is None:
        raise RegistryError("BLOB_UNKNOWN", detail={"digest": str(digest)})
    headers = {"Docker-Content-Digest": str(digest), "Content-Type": "application/octet-stream",
               "Accept-Ranges": "bytes"}
    if request.method == "HEAD":
        headers["Content-Length"] = str(path.stat().st_size)
        return web.Response(headers=headers)
    return web.FileResponse(path, headers=headers)


async def delete_blob(request: web.Request, route: Route) -> web.StreamResponse:
    """Removes the repository's link; the content goes at the next garbage collection."""
    digest = parse_digest_str(route.ref)
    if not request.app[REGISTRY].storage.unlink_blob(route.name, digest):
        raise RegistryError("BLOB_UNKNOWN", detail={"digest": str(digest)})
    return web.Response(status=202, headers={"Content-Length": "0"})


async def _mount(request: web.Request, route: Route, digest: Digest) -> bool:
    """Cross-repository mount (distribution-spec "Mounting a blob from another repository").

    Like the distribution registry, any failure (no ``from``, a bad name, no pull
    access, no such blob) silently falls back to opening an upload session.
    """
    reg = request.app[REGISTRY]
    source = request.query.get("from", "")
    try:
        validate_name(source)
        if reg.auth is not None:
            await reg.auth.authorize(request, Scope("repository", source, frozenset({"pull"})))
    except RegistryError:
        return False
    return (reg.storage.linked_blob(source, digest) is not None
            and reg.storage.link_blob(route.name, digest))


async def start_upload(request: web.Request, route: Route) -> web.StreamResponse:
    """POST: mount, monolithic upload (``?digest=``), or a new session."""
    reg = request.app[REGISTRY]
    if "mount" in request.query:
        digest = parse_digest_str(request.query["mount"])
        if await _mount(request, route, digest):
            return _created(route.name, digest)
    upload_id = reg.uploads.create(route.name)
    if "digest" in request.query:
        digest = parse_digest_str(request.query["digest"])
        try:
            await reg.uploads.append(route.name, upload_id, request.content)
            await reg.uploads.finish(route.name, upload_id, digest)
        except BaseException:
            reg.uploads.cancel(route.name, upload_id)
            raise
        reg.metrics.blobs_stored += 1
        return _created(route.name, digest)
    return web.Response(status=202, headers=upload_headers(route.name, upload_id, 0))


def _chunk_start(request: web.Request) -> int | None:
    header = request.headers.get("Content-Range")
    if header is None:
        return None
    match = _CONTENT_RANGE_RE.fullmatch(header.strip())
    if match is None or int(match.group(2)) < int(match.group(1)):
        raise RegistryError("BLOB_UPLOAD_INVALID", status=416,
                            detail={"Content-Range": header})
    return int(match.group(1))


async def patch_upload(request: web.Request, route: Route) -> web.StreamResponse:
    """A chunk (with Content-Range) or a stream (without): 202 with the new Range."""
    uploads = request.app[REGISTRY].uploads
    size = await uploads.append(route.name, route.ref, request.content, _chunk_start(request))
    return web.Response(status=202, headers=upload_headers(route.name, route.ref, size))


async def put_upload(request: web.Request, route: Route) -> web.StreamResponse:
    """Close a session, with an optional last chunk; DIGEST_INVALID when the content differs."""
    reg = request.app[REGISTRY]
    if "digest" not in request.query:
        raise RegistryError("DIGEST_INVALID", "digest missing")
    digest = parse_digest_str(request.query["digest"])
    if request.content_length or request.headers.get("Transfer-Encoding") == "chunked":
        await reg.uploads.append(route.name, route.ref, request.content, _chunk_start(request))
    await reg.uploads.finish(route.name, route.ref, digest)
    reg.metrics.blobs_stored += 1
    return _created(route.name, digest)


async def get_upload(request: web.Request, route: Route) -> web.StreamResponse:
    uploads = request.app[REGISTRY].uploads
    size = uploads.size(route.name, route.ref)
    return web.Response(status=204, headers=upload_headers(route.name, route.ref, size))


async def delete_upload(request: web.Request, route: Route) -> web.StreamResponse:
    request.app[REGISTRY].uploads.cancel(route.name, route.ref)
    return web.Response(status=204, headers={"Content-Length": "0"})
