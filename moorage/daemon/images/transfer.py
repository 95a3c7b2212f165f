"""Images in and out of the store: load and save (image archives) and import (a rootfs tar)."""

from __future__ import annotations

import time
import urllib.error
import urllib.request
from collections.abc import Callable
from dataclasses import dataclass
from typing import IO, BinaryIO

from moorage.daemon.images.store import ImageStore
from moorage.errors import InvalidParameter, NotFound, SystemFailure
from moorage.image import config as image_config
from moorage.image.archive import ExportImage, read_archive, write_archive
from moorage.image.changes import apply_changes
from moorage.image.compression import decompressed
from moorage.image.manifest import (
    OCI_CONFIG,
    OCI_MANIFEST,
    Descriptor,
    encode_manifest,
    layer_media_type,
)
from moorage.image.reference import Reference, parse_normalized
from moorage.model.image import ImportRequest
from moorage.store.metadata import ImageRecord, LayerRecord

_URL_TIMEOUT = 60


LayerProgress = Callable[[str, int, int], None]
"""Told (diff ID, bytes read, layer size) while a layer the store lacked is unpacked."""


def register(service: ImageStore, config_digest: str, blobs: list[str],
             parent_image: str = "", progress: LayerProgress | None = None) -> str:
    """Unpack ``blobs`` (the layers, bottom first) and record the image whose config
    is the stored blob ``config_digest``; returns its ID. Call inside
    ``service.operation()``. InvalidParameter when the layers do not match the
    config's diff IDs."""
    config = image_config.decode(service.content.read(config_digest), config_digest)
    diff_ids = image_config.diff_ids(config)
    if len(diff_ids) != len(blobs):
        raise InvalidParameter(f"invalid manifest, layers length mismatch: expected "
                               f"{len(diff_ids)}, got {len(blobs)}")
    parent: str | None = None
    layers: list[LayerRecord] = []
    for blob, diff_id in zip(blobs, diff_ids, strict=True):
        snapshot = service.snapshots.unpack(parent, _opener(service, blob, diff_id, progress),
                                            diff_id)
        with service.content.open(blob) as f:
            media_type = layer_media_type(f.read(8))
        layers.append(LayerRecord(blob, media_type, service.content.size(blob), diff_id,
                                  snapshot.chain_id))
        parent = snapshot.chain_id
    manifest = encode_manifest(
        Descriptor(OCI_CONFIG, config_digest, service.content.size(config_digest)),
        [Descriptor(lay.media_type, lay.digest, lay.blob_size) for lay in layers])
    manifest_digest = service.content.write_bytes(manifest).digest
    add_image(service, config_digest, manifest_digest, layers, parent_image)
    return config_digest


def add_image(service: ImageStore, config_digest: str, manifest_digest: str,
              layers: list[LayerRecord], parent: str = "") -> None:
    """Record the image whose config, manifest, layer blobs and snapshots are all in
    the store (a load's or a pull's last step); a no-op when it exists. ``parent``
    is the image it was made on (commit, build), "" for others."""
    config = image_config.decode(service.content.read(config_digest), config_digest)
    size = 0
    for layer in layers:
        snapshot = service.metadata.snapshot(layer.chain_id)
        if snapshot is None:
            raise NotFound(f"snapshot {layer.chain_id} does not exist")
        size += snapshot.size
    with service.lock:
        service.metadata.add_image(ImageRecord(
            id=config_digest, manifest=manifest_digest, parent=parent,
            top_chain=layers[-1].chain_id if layers else None, size=size,
            created=image_config.parse_time(config.get("created", "")),
            last_tag_time="", retained=False), layers, namespace=service.namespace)


def _opener(service: ImageStore, digest: str, diff_id: str,
            progress: LayerProgress | None) -> Callable[[], BinaryIO]:
    if progress is None:
        return lambda: service.content.open(digest)
    return lambda: _Reported(service.content.open(digest), service.content.size(digest),
                             lambda current, total: progress(diff_id, current, total))


class _Reported:
    """A layer blob read for unpacking that tells how far the reading got, as dockerd's
    progress reader does: after each 1% (512 KiB at most) but at most ten times a
    second, and at the end."""

    _STEP = 512 * 1024
    _INTERVAL = 0.1

    def __init__(self, blob: BinaryIO, size: int, tell: Callable[[int, int], None]) -> None:
        self._blob, self._size, self._tell = blob, size, tell
        self._step = min(self._STEP, size // 100)
        self._current = self._told = 0
        self._next = 0.0

    def read(self, n: int = -1) -> bytes:
        data = self._blob.read(n)
        self._current += len(data)
        if self._current == self._told:
            return data
        now = time.monotonic()
        if not data or self._current >= self._size \
                or (self._current - self._told > self._step and now >= self._next):
            self._told, self._next = self._current, now + self._INTERVAL
            self._tell(self._current, self._size)
        return data

    def __enter__(self) -> _Reported:
        return self

    def __exit__(self, *_exc: object) -> None:
        self._blob.close()


# --- load -------------------------------------------------------------------------------


def load(service: ImageStore, stream: BinaryIO,
         progress: LayerProgress | None = None) -> list[str]:
    """moby's tarexport Load, in one pass over the stream; returns the output lines."""
    lines: list[str] = []
    try:
        with service.operation():
            found = read_archive(
                stream, lambda s, expected: service.content.write_stream(s, expected).digest,
                service.content.read)
            if not found:
                raise InvalidParameter("invalid archive: it contains no image")
            loaded = [(register(service, image.config, list(image.layers),
                                progress=progress), image.names) for image in found]
            for image_id, names in loaded:
                lines.extend(_tag_loaded(service, image_id, names))
    finally:
        # What a failed load ingested or unpacked has no image now: collect it.
        service.collect_garbage()
    return lines


def _tag_loaded(service: ImageStore, image_id: str, names: tuple[str, ...]) -> list[str]:
    if not names:
        return [f"Loaded image ID: {image_id}"]
    lines = []
    for name in names:
        ref = parse_normalized(name).with_default_tag()
        if ref.tag is None:
            raise InvalidParameter(f'invalid tag "{name}"')
        before = service.add_tag(ref, image_id)
        if before is not None and before != image_id:
            lines.append(f"The image {ref.familiar_string()} already exists, renaming the "
                         f"old one with ID {before} to empty string")
        lines.append(f"Loaded image: {ref.familiar_string()}")
    return lines


# --- save -------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class ImageArchive:
    images: tuple[ExportImage, ...]
    open_blob: Callable[[str], BinaryIO]

    def write_to(self, out: IO[bytes]) -> None:
        write_archive(list(self.images), self.open_blob, out)


def export(service: ImageStore, names: list[str]) -> ImageArchive:
    """moby's tarexport parseNames: a bare repository name saves all of its tags,
    a tag saves that tag, an ID or digest saves the image without tags."""
    if not names:
        raise InvalidParameter("no images given to save")
    chosen: dict[str, list[Reference]] = {}
    for name in names:
        for image_id, tag in _selected(service, name):
            tags = chosen.setdefault(image_id, [])
            if tag is not None and tag not in tags:
                tags.append(tag)
    images = []
    for image_id, tags in chosen.items():
        record = service.metadata.image(image_id)
        if record is None:
            raise NotFound(f"No such image: {image_id}")
        layers = service.metadata.layers(image_id)
        images.append(ExportImage(
            manifest=Descriptor(OCI_MANIFEST, record.manifest,
                                service.content.size(record.manifest)),
            config=Descriptor(OCI_CONFIG, image_id, service.content.size(image_id)),
            layers=tuple(Descriptor(lay.media_type, lay.digest, lay.blob_size)
                         for lay in layers),
            tags=tuple(tags)))
    return ImageArchive(tuple(images), service.content.open)


def _selected(service: ImageStore, name: str) -> list[tuple[str, Reference | None]]:
    hex_part = name.removeprefix("sha256:")
    if len(hex_part) != 64:
        ref = parse_normalized(name)
        if ref.tag is None and ref.digest is None:
            tagged = [(r.image_id, parse_normalized(r.ref)) for r in service.refs()
                      if not r.is_digest and parse_normalized(r.ref).name == ref.name]
            if tagged:
                return tagged  # type: ignore[return-value]
            try:
                return [(service.lookup(hex_part).id, None)]
            except NotFound:
                raise NotFound(f"No such image: {name}") from None
    record = service.lookup(name)
    if _is_id(record.id, name):
        return [(record.id, None)]
    ref = parse_normalized(name).with_default_tag()
    return [(record.id, ref if ref.digest is None else None)]


def _is_id(image_id: str, name: str) -> bool:
    return image_id.removeprefix("sha256:").startswith(name.removeprefix("sha256:"))


def tag_target(repo: str, tag: str) -> Reference:
    """moby's TagImage reference rules, with its messages."""
    ref = parse_normalized(repo)
    if ref.digest is not None:
        raise InvalidParameter("refusing to create a tag with a digest reference")
    if tag:
        try:
            checked = parse_normalized(f"{ref.name}:{tag}")
        except InvalidParameter:
            raise InvalidParameter("invalid tag format") from None
        if checked.tag != tag:
            raise InvalidParameter("invalid tag format")
        ref = checked
    ref = ref.with_default_tag()
    if ref.familiar_name == "sha256" or ref.path == "library/sha256":
        raise InvalidParameter(
            "refusing to create an ambiguous tag using digest algorithm as name")
    return ref


# --- import -----------------------------------------------------------------------------


def import_rootfs(service: ImageStore, request: ImportRequest, body: BinaryIO | None) -> str:
    """moby's ImportImage: one layer from a rootfs tar (maybe compressed), a config
    made of ``changes``, tagged ``repo[:tag]``."""
    target = tag_target(request.repo, request.tag) if request.repo else None
    settings = apply_changes({}, list(request.changes))
    source = request.url or "-"
    comment = request.message or f"Imported from {source}"
    try:
        with service.operation():
            stream = _open_url(request.url) if request.url else body
            if stream is None:
                raise InvalidParameter("import: no rootfs given")
            with stream:
                blob = service.content.write(decompressed(stream, "import")).digest
            config = image_config.new_import_config(blob, settings, comment)
            config_digest = service.content.write_bytes(image_config.encode(config)).digest
            image_id = register(service, config_digest, [blob])
            if target is not None:
                service.add_tag(target, image_id)
    finally:
        service.collect_garbage()
    return image_id


def _open_url(url: str) -> BinaryIO:
    if not url.startswith(("http://", "https://")):
        raise InvalidParameter(f"import: unsupported URL {url!r} (http or https only)")
    try:
        return urllib.request.urlopen(url, timeout=_URL_TIMEOUT)  # type: ignore[no-any-return]
    except (urllib.error.URLError, OSError, ValueError) as e:
        raise SystemFailure(f'Get "{url}": {getattr(e, "reason", e)}') from None
