"""Manifests, tags, the catalog and referrers.

distribution-spec "Pulling manifests", "Pushing manifests", "Content discovery"
(tags and referrers), "Deleting tags", "Deleting manifests"; the catalog is the
Docker Registry HTTP API v2's ``/v2/_catalog``.
"""

from __future__ import annotations

import asyncio
import json
import logging
from urllib.parse import urlencode

import aiohttp
from aiohttp import web

from moorage.image.manifest import OCI_INDEX
from moorage.registry.errors import RegistryError
from moorage.registry.manifests import MANIFEST_TYPES, MAX_MANIFEST_SIZE, parse_manifest
from moorage.registry.names import is_tag, parse_digest_str
from moorage.registry.state import REGISTRY, Registry, Route

log = logging.getLogger("moor.registry")


def _acceptable(request: web.Request, media_type: str) -> bool:
    """Accept negotiation: refuse only when the client names manifest types and not this one.

    A client that names none (curl, */*) gets whatever is stored; the distribution
    registry answers MANIFEST_UNKNOWN when, say, an OCI index is not accepted.
    """
    accepted = {part.split(";")[0].strip() for header in request.headers.getall("Accept", [])
                for part in header.split(",")}
    named = accepted & set(MANIFEST_TYPES)
    return not named or media_type in named


async def _refresh_from_upstream(reg: Registry, name: str, reference: str) -> None:
    """Pull-through: a tag is always asked upstream (tags move), a digest only when missing.

    When the upstream is down or lacks it, what is stored locally is served.
    """
    assert reg.upstream is not None
    if not is_tag(reference):
        try:
            reg.storage.resolve(name, reference)
            return
        except RegistryError:
            pass
    try:
        fetched = await reg.upstream.manifest(name, reference)
    except (TimeoutError, aiohttp.ClientError, RegistryError) as err:
        log.warning(json.dumps({"msg": "upstream unavailable", "name": name,
                                "reference": reference, "error": str(err)}))
        return
    if fetched is None:
        return
    algorithm = "sha256" if is_tag(reference) else parse_digest_str(reference).algorithm
    manifest = parse_manifest(fetched.data, fetched.media_type, algorithm)
    if not is_tag(reference) and str(manifest.digest) != reference:
        raise RegistryError("DIGEST_INVALID", "upstream manifest does not match its digest")
    await asyncio.to_thread(reg.storage.put_manifest, name, manifest, fetched.data,
                            reference if is_tag(reference) else None, check_references=False)


def _require_tag_or_digest(reference: str) -> None:
    """A reference that is neither a tag nor a valid digest names no manifest.

    The distribution registry answers 404 for it (its route matches only tags and
    digests); the spec lists no 400 for a manifest fetch.
    """
    if is_tag(reference):
        return
    try:
        parse_digest_str(reference)
    except RegistryError:
        raise RegistryError("MANIFEST_UNKNOWN", detail={"reference": reference}) from None


async def get_manifest(request: web.Request, route: Route) -> web.StreamResponse:
    reg = request.app[REGISTRY]
    _require_tag_or_digest(route.ref)
    if reg.upstream is not None:
        await _refresh_from_upstream(reg, route.name, route.ref)
    digest, media_type = reg.storage.resolve(route.name, route.ref)
    if not _acceptable(request, media_type):
        raise RegistryError("MANIFEST_UNKNOWN", detail={
            "reason": f"the manifest is a {media_type}, which the Accept header excludes"})
    path = reg.storage.blob_path(digest)
    headers = {"Docker-Content-Digest": str(digest), "Content-Type": media_type,
               "ETag": f'"{digest}"'}
    if request.method == "HEAD":
        headers["Content-Length"] = str(path.stat().st_size)
        return web.Response(headers=headers)
    return web.Response(body=path.read_bytes(), headers=headers)


async def _read_manifest_body(request: web.Request) -> bytes:
    if (request.content_length or 0) > MAX_MANIFEST_SIZE:
        raise _too_large()
    data = bytearray()
    async for chunk in request.content.iter_any():
        data += chunk
        if len(data) > MAX_MANIFEST_SIZE:
            raise _too_large()
    return bytes(data)


def _too_large() -> RegistryError:
    return RegistryError("MANIFEST_INVALID", "manifest too large", status=413,
                         detail={"limit": MAX_MANIFEST_SIZE})


async def put_manifest(request: web.Request, route: Route) -> web.StreamResponse:
    reg = request.app[REGISTRY]
    data = await _read_manifest_body(request)
    tag, expected = (route.ref, None) if is_tag(route.ref) else (None, parse_digest_str(route.ref))
    manifest = parse_manifest(data, request.headers.get("Content-Type", ""),
                              expected.algorithm if expected else "sha256")
    if expected is not None and manifest.digest != expected:
        raise RegistryError("DIGEST_INVALID", detail={"digest": str(expected),
                                                      "actual": str(manifest.digest)})
    await asyncio.to_thread(reg.storage.put_manifest, route.name, manifest, data, tag)
    headers = {"Location": f"/v2/{route.name}/manifests/{manifest.digest}",
               "Docker-Content-Digest": str(manifest.digest), "Content-Length": "0"}
    if manifest.subject is not None:
        # distribution-spec "Pushing Manifests with Subject": tells the client the
        # registry indexed the referrer, so it need not maintain a tag schema index.
        headers["OCI-Subject"] = str(manifest.subject.digest)
    return web.Response(status=201, headers=headers)


async def delete_manifest(request: web.Request, route: Route) -> web.StreamResponse:
    """By tag: untag only. By digest: the manifest and every tag pointing to it."""
    storage = request.app[REGISTRY].storage
    if is_tag(route.ref):
        await asyncio.to_thread(storage.delete_tag, route.name, route.ref)
    else:
        digest, media_type = storage.resolve(route.name, route.ref)
        manifest = parse_manifest(storage.blob_path(digest).read_bytes(), media_type,
                                  digest.algorithm)
        subject = manifest.subject.digest if manifest.subject else None
        await asyncio.to_thread(storage.delete_manifest, route.name, digest, subject)
    return web.Response(status=202, headers={"Content-Length": "0"})


def _page(request: web.Request, items: list[str], path: str) -> tuple[list[str], dict[str, str]]:
    """``n``/``last`` pagination and the RFC 5988 ``Link`` to the next page."""
    last = request.query.get("last")
    if last:
        items = [item for item in items if item > last]
    raw_n = request.query.get("n")
    if raw_n is None or raw_n == "":
        return items, {}
    try:
        n = int(raw_n)
    except ValueError:
        n = -1
    if n < 0:
        raise RegistryError("PAGINATION_NUMBER_INVALID", detail={"n": raw_n})
    if len(items) <= n or n == 0:
        return items[:n], {}
    page = items[:n]
    query = urlencode({"n": n, "last": page[-1]})
    return page, {"Link": f'<{path}?{query}>; rel="next"'}


async def tags_list(request: web.Request, route: Route) -> web.StreamResponse:
    tags = request.app[REGISTRY].storage.tags(route.name)
    page, headers = _page(request, tags, f"/v2/{route.name}/tags/list")
    return web.json_response({"name": route.name, "tags": page}, headers=headers)


async def catalog(request: web.Request, route: Route) -> web.StreamResponse:
    repositories = await asyncio.to_thread(request.app[REGISTRY].storage.repositories)
    page, headers = _page(request, repositories, "/v2/_catalog")
    return web.json_response({"repositories": page}, headers=headers)


async def referrers(request: web.Request, route: Route) -> web.StreamResponse:
    """distribution-spec "Listing Referrers": an OCI index, filtered by ``artifactType``."""
    subject = parse_digest_str(route.ref)
    entries = request.app[REGISTRY].storage.referrers(route.name, subject)
    headers = {}
    artifact_type = request.query.get("artifactType")
    if artifact_type:
        entries = [e for e in entries if e.get("artifactType") == artifact_type]
        headers["OCI-Filters-Applied"] = "artifactType"
    body = {"schemaVersion": 2, "mediaType": OCI_INDEX, "manifests": entries}
    return web.Response(text=json.dumps(body), content_type=OCI_INDEX, headers=headers)
