"""Pulling an image: manifest (or index, then the platform's manifest), config, layers.

distribution-spec "Pulling manifests" / "Pulling blobs", image-spec manifest.md
and image-index.md. Layers download several at a time; each is unpacked into
a staged snapshot while it streams (blobs.py) and the snapshots are committed
bottom first, as chain IDs need their parent. Layers whose snapshot and blob
are in the store already are skipped ("Already exists"). On any failure every
layer in flight is told to stop and waited for, so what was staged is gone
before the error is reported; the caller collects what was committed.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
from collections.abc import Callable
from dataclasses import dataclass

from moorage.distribution.auth import Credentials, error_message, json_body
from moorage.distribution.blobs import Aborted, BlobSource, VerifyingReader
from moorage.distribution.client import Registry, RegistryError, Repository, first_answer
from moorage.distribution.mirrors import Endpoint, endpoints
from moorage.errors import (
    InvalidParameter,
    MoorError,
    NotFound,
    SystemFailure,
    Unauthorized,
    write_failed,
)
from moorage.image import config as image_config
from moorage.image.manifest import (
    DOCKER_LIST,
    DOCKER_MANIFEST,
    DOCKER_SCHEMA1,
    OCI_INDEX,
    OCI_MANIFEST,
    Descriptor,
    is_index,
    parse_index,
    parse_manifest,
    pick_platform,
)
from moorage.image.reference import Reference
from moorage.protocol.jsonmessage import Emit, JSONMessage
from moorage.protocol.stringid import short_id
from moorage.store.content import ContentStore
from moorage.store.metadata import LayerRecord
from moorage.store.snapshots import Snapshotter, Staged

# Docker pulls three layers at a time (dockerd --max-concurrent-downloads).
CONCURRENT_DOWNLOADS = 3
MAX_MANIFEST = 4 << 20
ACCEPT = ", ".join((OCI_INDEX, DOCKER_LIST, OCI_MANIFEST, DOCKER_MANIFEST))


@dataclass(frozen=True, slots=True)
class Pulled:
    digest: str  # what the reference resolved to (index or manifest): the RepoDigest
    manifest: str  # the platform manifest's digest, stored in the content store
    config: str  # the config blob's digest: the image ID
    layers: tuple[LayerRecord, ...]


@dataclass(frozen=True, slots=True)
class Resolved:
    """A reference resolved on one endpoint: the document and the open repository."""

    repo: Repository
    data: bytes
    media_type: str
    digest: str


def _digest(data: bytes) -> str:
    return f"sha256:{hashlib.sha256(data).hexdigest()}"


async def fetch_manifest(repo: Repository, ref: Reference, reference: str,
                         credentials: Credentials) -> Resolved:
    """GET a manifest or index by tag or digest, with moby's error messages."""
    url = repo.url(f"manifests/{reference}")
    response = await repo.request("GET", url, headers={"Accept": ACCEPT})
    if response.status in (401, 403, 404):
        message = error_message(await json_body(response),
                                f"{response.status} {response.reason}")
        response.release()
        if response.status == 404:
            raise NotFound(f"manifest for {ref.familiar_string()} not found: {message}")
        if response.status == 401 and not credentials.anonymous:
            raise Unauthorized(f'Get "{url}": {message}')
        raise NotFound(f"pull access denied for {ref.familiar_name}, repository does not "
                       f"exist or may require 'docker login': {message}")
    await repo.check(response, 200)
    async with response:
        if (response.content_length or 0) > MAX_MANIFEST:
            raise InvalidParameter(f"manifest for {ref.familiar_string()} is too large")
        data = await response.content.read(MAX_MANIFEST + 1)
    if len(data) > MAX_MANIFEST:
        raise InvalidParameter(f"manifest for {ref.familiar_string()} is too large")
    digest = _digest(data)
    if reference.startswith("sha256:") and digest != reference:
        raise InvalidParameter(f"manifest verification failed for digest {reference}")
    media_type = response.headers.get("Content-Type", "").split(";")[0].strip()
    if media_type in DOCKER_SCHEMA1 or _schema_version(data) == 1:
        # moby distribution/errors.go DeprecatedSchema1ImageError, word for word
        # (Docker 28 removed schema 1 pulls).
        raise InvalidParameter(
            "Docker Image Format v1 and Docker Image manifest version 2, schema 1 support "
            f"has been removed. Suggest the author of {ref} to upgrade the image to the OCI "
            "Format or Docker Image manifest v2, schema 2. More information at "
            "https://docs.docker.com/go/deprecated-image-specs/")
    return Resolved(repo, data, media_type, digest)


def _schema_version(data: bytes) -> object:
    """The document's schemaVersion: registries that omit Content-Type still say it."""
    try:
        document = json.loads(data)
    except ValueError:
        return None
    return document.get("schemaVersion") if isinstance(document, dict) else None


async def resolve(registry: Registry, ref: Reference, credentials: Credentials) -> Resolved:
    """The reference's manifest or index, from the first mirror or registry that has it.
    Credentials go to the registry itself only, never to a mirror."""
    reference = ref.digest or ref.tag or "latest"

    async def attempt(endpoint: Endpoint) -> Resolved:
        creds = Credentials() if endpoint.mirror else credentials
        repo = await registry.repository(endpoint, ref.path, creds, "pull")
        return await fetch_manifest(repo, ref, reference, creds)

    return await first_answer(endpoints(ref.domain, registry.config, pull=True), attempt)


# A bound on the pages of a tag list followed (Link rel="next"), against a registry
# that would send one for ever.
_TAG_PAGES = 100


async def list_tags(registry: Registry, ref: Reference, credentials: Credentials) -> list[str]:
    """Every tag of ``ref``'s repository (distribution's tags/list, its pages followed),
    from the first mirror or registry that answers; for docker pull --all-tags."""

    async def attempt(endpoint: Endpoint) -> list[str]:
        creds = Credentials() if endpoint.mirror else credentials
        repo = await registry.repository(endpoint, ref.path, creds, "pull")
        tags: list[str] = []
        url: str | None = repo.url("tags/list")
        for _ in range(_TAG_PAGES):
            if url is None:
                break
            response = await repo.request("GET", url)
            await repo.check(response, 200)
            async with response:
                body = await response.json(content_type=None)
                following = response.links.get("next", {}).get("url")
            if not isinstance(body, dict) or not isinstance(body.get("tags") or [], list):
                raise InvalidParameter(f"{url}: the registry's tag list is not one")
            tags += [tag for tag in body.get("tags") or [] if isinstance(tag, str)]
            url = str(response.url.join(following)) if following is not None else None
        return tags

    return await first_answer(endpoints(ref.domain, registry.config, pull=True), attempt)


async def fetch_blob(repo: Repository, descriptor: Descriptor, limit: int = 16 << 20) -> bytes:
    """A small blob (a config) in memory, verified against its digest."""
    response = await repo.request("GET", repo.url(f"blobs/{descriptor.digest}"))
    await repo.check(response, 200)
    async with response:
        data = await response.content.read(limit + 1)
    if len(data) > limit or _digest(data) != descriptor.digest:
        raise InvalidParameter(f"blob {descriptor.digest}: content does not match its digest")
    return data


async def pull(registry: Registry, ref: Reference, platform: tuple[str, str, str] | None,
               credentials: Credentials, content: ContentStore, snapshots: Snapshotter,
               emit: Emit) -> Pulled:
    """Fetch ``ref`` into the store (blobs and committed snapshots; no image row).

    Raises before emitting anything when the reference cannot be resolved
    (NotFound, Unauthorized, SystemFailure for an unreachable registry), so the
    API can still answer with a plain error status."""
    top = await resolve(registry, ref, credentials)
    repo, resolved = top.repo, top
    # Some registries omit Content-Type; an index is then told by its "manifests".
    if is_index(top.media_type) or (not top.media_type and b'"manifests"' in top.data):
        chosen = pick_platform(parse_index(top.data), platform)
        resolved = await fetch_manifest(repo, ref, chosen.digest, credentials)
    manifest = parse_manifest(resolved.data)
    emit(JSONMessage(f"Pulling from {ref.path}", ref.digest or ref.tag or "latest"))
    known = content.exists(manifest.config.digest)
    if not known:
        config_data = await fetch_blob(repo, manifest.config)
        await asyncio.to_thread(content.write_bytes, config_data, manifest.config.digest)
    config = image_config.decode(await asyncio.to_thread(content.read, manifest.config.digest),
                                 manifest.config.digest)
    if platform is not None:
        actual = (config.get("os", ""), config.get("architecture", ""))
        if actual != platform[:2]:
            raise InvalidParameter(
                f"image with reference {ref.familiar_string()} was found but does not "
                f"match the specified platform: wanted {'/'.join(platform[:2])}, "
                f"actual: {'/'.join(actual)}")
    diff_ids = image_config.diff_ids(config)
    if len(diff_ids) != len(manifest.layers):
        raise InvalidParameter(f"invalid manifest, layers length mismatch: expected "
                               f"{len(diff_ids)}, got {len(manifest.layers)}")
    chains = image_config.chain_ids(diff_ids)
    layers = await _pull_layers(repo, manifest.layers, diff_ids, chains, content, snapshots,
                                emit, known)
    await asyncio.to_thread(content.write_bytes, resolved.data, resolved.digest)
    return Pulled(top.digest, resolved.digest, manifest.config.digest, tuple(layers))


async def _pull_layers(repo: Repository, descriptors: tuple[Descriptor, ...],
                       diff_ids: list[str], chains: list[str], content: ContentStore,
                       snapshots: Snapshotter, emit: Emit,
                       image_known: bool = False) -> list[LayerRecord]:
    """The layers' records, each fetched and unpacked unless its snapshot is there; an
    image already whole (`image_known`: its config was in the store) shows no layer at
    all, as dockerd's pull of an image it has."""
    present = await asyncio.to_thread(
        lambda: [snapshots.get(chain) is not None and content.exists(d.digest)
                 for d, chain in zip(descriptors, chains, strict=True)])
    if not (image_known and all(present)):
        for descriptor, done in zip(descriptors, present, strict=True):
            emit(JSONMessage("Already exists" if done else "Pulling fs layer",
                             short_id(descriptor.digest)))
    loop = asyncio.get_running_loop()
    limit = asyncio.Semaphore(CONCURRENT_DOWNLOADS)
    sources: list[BlobSource] = []
    tasks: dict[int, asyncio.Task[Staged]] = {}
    for index, (descriptor, done) in enumerate(zip(descriptors, present, strict=True)):
        if done:
            continue
        source = BlobSource(repo, descriptor, _download_progress(emit, descriptor))
        sources.append(source)
        tasks[index] = asyncio.create_task(_layer(
            source, diff_ids[index], content, snapshots, limit, loop, emit))
    records: list[LayerRecord] = []
    parent: str | None = None
    try:
        for index, descriptor in enumerate(descriptors):
            if index in tasks:
                staged = await tasks[index]
                await asyncio.to_thread(snapshots.commit, parent, staged)
                emit(JSONMessage("Pull complete", short_id(descriptor.digest)))
            records.append(LayerRecord(descriptor.digest, descriptor.media_type,
                                       descriptor.size, diff_ids[index], chains[index]))
            parent = chains[index]
    except BaseException:
        for source in sources:
            source.aborted = True
        results = await asyncio.gather(*tasks.values(), return_exceptions=True)
        for result in results:
            if isinstance(result, Staged):
                await asyncio.to_thread(snapshots.discard, result)
        raise
    return records


def _download_progress(emit: Emit, descriptor: Descriptor) -> Callable[[int], None]:
    return lambda offset: emit(JSONMessage("Downloading", short_id(descriptor.digest), offset,
                                           descriptor.size))


async def _layer(source: BlobSource, diff_id: str, content: ContentStore,
                 snapshots: Snapshotter, limit: asyncio.Semaphore,
                 loop: asyncio.AbstractEventLoop, emit: Emit) -> Staged:
    descriptor = source.descriptor
    layer_id = short_id(descriptor.digest)
    async with limit:
        if source.aborted:
            raise Aborted

        def work() -> Staged:
            with content.ingest() as ingest:
                reader = VerifyingReader(source, ingest, loop)
                try:
                    staged = snapshots.stage(reader, diff_id)
                except InvalidParameter:
                    # Bad content: when the blob is not the one the manifest names,
                    # say so (as dockerd, which verifies before extracting, does).
                    reader.drain()
                    raise
                try:
                    ingest.commit(descriptor.digest)
                except BaseException:
                    snapshots.discard(staged)
                    raise
                return staged

        try:
            staged = await asyncio.to_thread(work)
        except RegistryError:
            raise
        except MoorError as e:
            raise type(e)(_layer_error(e)) from None
        except OSError as e:  # the blob's ingest failed: disk full, I/O error
            raise SystemFailure(_layer_error(write_failed(e, e.filename or "blob"))) from None
    emit(JSONMessage("Verifying Checksum", layer_id))
    emit(JSONMessage("Download complete", layer_id))
    emit(JSONMessage("Extracting", layer_id, descriptor.size, descriptor.size))
    return staged


def _layer_error(e: MoorError) -> str:
    message = str(e)
    if message.startswith("filesystem layer verification failed"):
        return message
    # moby's wording when a layer cannot be applied (daemon/images, layer store).
    return f"failed to register layer: {message}"
