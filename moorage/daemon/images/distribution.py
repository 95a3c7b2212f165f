"""Pull, push, login and distribution inspect: the registry client bound to the image store.

moorage.distribution talks to registries and fills the content store and the
snapshotter; this module turns requests into references and credentials, and
records the result the way a load does (transfer.add_image), with the
RepoDigest Docker records (``name@<manifest or index digest>``). A failed pull
is followed by a garbage collection, as a failed load is, so nothing it
committed stays without an image.
"""

from __future__ import annotations

import asyncio
import json

from moorage.daemon.images import transfer
from moorage.daemon.images.store import ImageStore
from moorage.distribution import pull as pulling
from moorage.distribution import push as pushing
from moorage.distribution.auth import Credentials, TokenCache
from moorage.distribution.client import Registry, login
from moorage.distribution.mirrors import RegistryConfig, login_endpoints
from moorage.errors import InvalidParameter, NotFound
from moorage.image.manifest import (
    OCI_CONFIG,
    OCI_MANIFEST,
    Descriptor,
    is_index,
    parse_index,
    parse_manifest,
    parse_platform,
)
from moorage.image.reference import Reference, parse_normalized
from moorage.model.distribution import (
    AuthConfig,
    DistributionInspect,
    Platform,
    PullRequest,
    PushRequest,
)
from moorage.protocol.jsonmessage import Emit, JSONMessage


def credentials(auth: AuthConfig) -> Credentials:
    return Credentials(auth.username, auth.password, auth.identity_token, auth.registry_token)


def pull_reference(from_image: str, tag: str) -> Reference:
    """moby's postImagesCreate: ``tag`` may be a tag or a digest; default "latest"."""
    ref = parse_normalized(from_image)
    if tag:
        suffix = f"@{tag}" if ":" in tag else f":{tag}"
        try:
            ref = parse_normalized(f"{ref.name}{suffix}")
        except InvalidParameter:
            raise InvalidParameter(f"invalid reference format: {tag!r}") from None
    if ref.digest is not None:
        return Reference(ref.domain, ref.path, None, ref.digest)
    return ref.with_default_tag()




def _record(service: ImageStore, ref: Reference, pulled: pulling.Pulled) -> str | None:
    """Add the image and its references; returns the image the name pointed at before."""
    transfer.add_image(service, pulled.config, pulled.manifest, list(pulled.layers))
    named = str(ref)
    before = service.ref(named)
    if ref.tag is not None:
        service.add_tag(ref, pulled.config)
    digested = Reference(ref.domain, ref.path, None, pulled.digest)
    service.set_ref(str(digested), pulled.config, is_digest=True)
    return before




def _push_targets(service: ImageStore, request: PushRequest) -> list[tuple[Reference, str]]:
    """moby's PushImage: the tag given, or every tag of the repository."""
    ref = parse_normalized(request.name)
    if request.tag:
        ref = parse_normalized(f"{ref.name}:{request.tag}")
    if ref.tag is not None:
        image_id = service.ref(str(ref))
        if image_id is None:
            raise NotFound(f"An image does not exist locally with the tag: {ref.name}")
        return [(ref, image_id)]
    targets = []
    for record in service.refs():
        tagged = parse_normalized(record.ref)
        if not record.is_digest and tagged.name == ref.name:
            targets.append((tagged, record.image_id))
    if not targets:
        raise NotFound(f"An image does not exist locally with the tag: {ref.name}")
    return targets


def _push_image(service: ImageStore, image_id: str, ref: Reference) -> pushing.PushImage:
    record = service.metadata.image(image_id)
    if record is None:
        raise NotFound(f"No such image: {image_id}")
    data = service.content.read(record.manifest)
    manifest = parse_manifest(data)
    media_type = json.loads(data).get("mediaType") or OCI_MANIFEST
    layers = tuple(Descriptor(lay.media_type, lay.digest, lay.blob_size)
                   for lay in service.metadata.layers(image_id))
    sources = []
    for r in service.refs(image_id):
        other = parse_normalized(r.ref)
        if other.domain == ref.domain and other.path != ref.path and other.path not in sources:
            sources.append(other.path)
    config = Descriptor(manifest.config.media_type or OCI_CONFIG, image_id,
                        service.content.size(image_id))
    return pushing.PushImage(data, media_type, config, layers, tuple(sources))


class Distribution:
    """The registries, for the image store: pull and push fill and read it."""

    def __init__(self, store: ImageStore, registry: RegistryConfig) -> None:
        self.store = store
        self.registry = registry
        # Registry tokens outlive one pull: the next pull of the repository reuses them.
        self.tokens = TokenCache()

    async def pull_image(self, request: PullRequest, emit: Emit) -> None:
        named = parse_normalized(request.from_image)
        platform = parse_platform(request.platform) if request.platform else None
        every_tag = not request.tag and named.tag is None and named.digest is None
        downloaded = False
        async with Registry(self.registry, self.tokens) as registry:
            if every_tag:
                # Engine API: fromImage without a tag asks for every tag (pull --all-tags).
                tags = await pulling.list_tags(registry, named, credentials(request.auth))
                if not tags:
                    raise NotFound(f"no tags found for {named.familiar_name}")
                refs = [pull_reference(request.from_image, tag) for tag in tags]
            else:
                refs = [pull_reference(request.from_image, request.tag)]
            for ref in refs:
                downloaded |= await self._pull_one(registry, ref, platform, request, emit)
        shown = named.familiar_name if every_tag else refs[0].familiar_string()
        news = "Downloaded newer image" if downloaded else "Image is up to date"
        emit(JSONMessage(f"Status: {news} for {shown}"))

    async def _pull_one(self, registry: Registry, ref: Reference,
                        platform: tuple[str, str, str] | None, request: PullRequest,
                        emit: Emit) -> bool:
        """Pull one reference into the store; whether its image is new."""
        failed = True
        try:
            with self.store.operation():
                pulled = await pulling.pull(registry, ref, platform, credentials(request.auth),
                                            self.store.content, self.store.snapshots, emit)
                before = await asyncio.to_thread(_record, self.store, ref, pulled)
            failed = False
        finally:
            if failed:
                await asyncio.to_thread(self.store.collect_garbage)
        emit(JSONMessage(f"Digest: {pulled.digest}"))
        return before != pulled.config

    async def push_image(self, request: PushRequest, emit: Emit) -> None:
        targets = await asyncio.to_thread(_push_targets, self.store, request)
        async with Registry(self.registry, self.tokens) as registry:
            for ref, image_id in targets:
                image = await asyncio.to_thread(_push_image, self.store, image_id, ref)
                assert ref.tag is not None
                digest = await pushing.push(registry, ref, ref.tag, image,
                                            credentials(request.auth), self.store.content.open,
                                            emit)
                digested = Reference(ref.domain, ref.path, None, digest)
                await asyncio.to_thread(self.store.set_ref, str(digested), image_id,
                                        is_digest=True)

    async def login(self, auth: AuthConfig) -> str:
        async with Registry(self.registry, self.tokens) as registry:
            await login(registry, login_endpoints(auth.server_address, self.registry),
                        credentials(auth))
        return ""

    async def distribution_inspect(self, name: str,
                                   auth: AuthConfig) -> DistributionInspect:
        ref = pull_reference(name, "")
        async with Registry(self.registry, self.tokens) as registry:
            found = await pulling.resolve(registry, ref, credentials(auth))
            if is_index(found.media_type):
                platforms = tuple(Platform(p[0], p[1], p[2]) for p in
                                  (d.platform for d in parse_index(found.data)) if p)
            else:
                config = json.loads(await pulling.fetch_blob(
                    found.repo, parse_manifest(found.data).config))
                platforms = (Platform(config.get("os", ""), config.get("architecture", ""),
                                      config.get("variant", "")),)
        return DistributionInspect(found.media_type, found.digest, len(found.data), platforms)
