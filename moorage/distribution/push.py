"""Pushing an image: blobs the registry lacks, then the manifest (distribution-spec "Push").

Per layer: ``HEAD`` the blob (present: "Layer already exists"); else try a
cross-repository mount from each repository the image is known to come from
on the same registry (``POST …/blobs/uploads/?mount=<digest>&from=<repo>``;
201 means mounted); else upload. Small blobs go in one monolithic ``PUT``
with the digest, bigger ones as ``POST`` + streamed ``PATCH`` + closing
``PUT`` (the spec's chunked upload, in one chunk as dockerd sends it). The
manifest goes last, so a registry never holds a manifest whose blobs are
missing. Blobs are the ones in the content store: the compressed layers kept
at pull or load time, so a pulled image pushes back with the same digests.
"""

from __future__ import annotations

import asyncio
import hashlib
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from typing import BinaryIO
from urllib.parse import urljoin, urlsplit, urlunsplit

from moorage.distribution.auth import Credentials
from moorage.distribution.client import Registry, Repository, first_answer
from moorage.distribution.mirrors import Endpoint, endpoints
from moorage.distribution.pull import Emit
from moorage.image.manifest import Descriptor
from moorage.image.reference import Reference
from moorage.protocol.jsonmessage import JSONMessage
from moorage.protocol.stringid import short_id

# dockerd --max-concurrent-uploads defaults to 5.
CONCURRENT_UPLOADS = 5
MONOLITHIC_LIMIT = 8 << 20
_CHUNK = 1 << 20


@dataclass(frozen=True, slots=True)
class PushImage:
    manifest: bytes
    media_type: str
    config: Descriptor
    layers: tuple[Descriptor, ...]
    mount_from: tuple[str, ...]  # repository paths on the same registry holding the blobs


async def push(registry: Registry, ref: Reference, tag: str, image: PushImage,
               credentials: Credentials, open_blob: Callable[[str], BinaryIO],
               emit: Emit) -> str:
    """Push ``image`` as ``ref``:``tag``; returns the manifest digest."""
    emit(JSONMessage(f"The push refers to repository [{ref.name}]"))
    mount_from = tuple(m for m in image.mount_from if m != ref.path)

    async def attempt(endpoint: Endpoint) -> Repository:
        repo = await registry.repository(endpoint, ref.path, credentials, "pull,push",
                                         mount_from=mount_from)
        await repo.auth.headers()  # refused credentials fail here, before any output
        return repo

    repo = await first_answer(endpoints(ref.domain, registry.config, pull=False), attempt)
    # dockerd lists layers top first.
    layers = list(reversed(image.layers))
    for layer in layers:
        emit(JSONMessage("Preparing", short_id(layer.digest)))
    limit = asyncio.Semaphore(CONCURRENT_UPLOADS)

    async def one(layer: Descriptor) -> None:
        async with limit:
            await _push_blob(repo, layer, mount_from, open_blob, emit, report=True)

    await asyncio.gather(*(one(layer) for layer in layers))
    await _push_blob(repo, image.config, (), open_blob, emit, report=False)
    response = await repo.request(
        "PUT", repo.url(f"manifests/{tag}"), data=image.manifest,
        headers={"Content-Type": image.media_type})
    await repo.check(response, 201, 200)
    response.release()
    digest = f"sha256:{hashlib.sha256(image.manifest).hexdigest()}"
    emit(JSONMessage(f"{tag}: digest: {digest} size: {len(image.manifest)}"))
    return digest


async def _push_blob(repo: Repository, blob: Descriptor, mount_from: tuple[str, ...],
                     open_blob: Callable[[str], BinaryIO], emit: Emit, *,
                     report: bool) -> None:
    layer_id = short_id(blob.digest)
    response = await repo.request("HEAD", repo.url(f"blobs/{blob.digest}"))
    response.release()
    if response.status == 200:
        if report:
            emit(JSONMessage("Layer already exists", layer_id))
        return
    location = ""
    for source in mount_from:
        response = await repo.request(
            "POST", repo.url(f"blobs/uploads/?mount={blob.digest}&from={source}"))
        response.release()
        if response.status == 201:
            if report:
                emit(JSONMessage(f"Mounted from {source}", layer_id))
            return
        if response.status == 202:
            # Not mountable, but the registry opened an upload session: use it.
            location = response.headers.get("Location", "")
            break
    if not location:
        response = await repo.request("POST", repo.url("blobs/uploads/"))
        await repo.check(response, 202)
        response.release()
        location = response.headers.get("Location", "")
    location = urljoin(repo.endpoint.url + "/", location)
    progress = (lambda sent: emit(JSONMessage("Pushing", layer_id, sent, blob.size))) \
        if report else (lambda _sent: None)
    if blob.size <= MONOLITHIC_LIMIT:
        data = await asyncio.to_thread(_read_all, open_blob, blob.digest)
        response = await repo.request(
            "PUT", _with_digest(location, blob.digest), data=data,
            headers={"Content-Type": "application/octet-stream"})
        progress(blob.size)
    else:
        response = await repo.request(
            "PATCH", location, data=_chunks(open_blob, blob.digest, progress),
            headers={"Content-Type": "application/octet-stream"}, replayable=False)
        await repo.check(response, 202, 204)
        response.release()
        location = urljoin(location, response.headers.get("Location", location))
        response = await repo.request("PUT", _with_digest(location, blob.digest))
    await repo.check(response, 201, 204)
    response.release()
    if report:
        emit(JSONMessage("Pushed", layer_id))


def _read_all(open_blob: Callable[[str], BinaryIO], digest: str) -> bytes:
    with open_blob(digest) as f:
        return f.read()


async def _chunks(open_blob: Callable[[str], BinaryIO], digest: str,
                  progress: Callable[[int], None]) -> AsyncIterator[bytes]:
    sent = 0
    with open_blob(digest) as f:
        while chunk := await asyncio.to_thread(f.read, _CHUNK):
            sent += len(chunk)
            progress(sent)
            yield chunk


def _with_digest(location: str, digest: str) -> str:
    parts = urlsplit(location)
    query = f"{parts.query}&digest={digest}" if parts.query else f"digest={digest}"
    return urlunsplit((parts.scheme, parts.netloc, parts.path, query, parts.fragment))
