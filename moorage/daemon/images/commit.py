"""New images on top of others: a writable layer (or none) plus a config and a history
entry, as ``docker commit`` and each Dockerfile step make them (moby's
image.NewChildImage and daemon/commit.go)."""

from __future__ import annotations

import copy
import fcntl
import os
import threading
from dataclasses import dataclass, field
from typing import IO, Any

from moorage import __version__
from moorage.daemon.images.store import ImageStore
from moorage.daemon.images.transfer import add_image, register
from moorage.errors import write_failed
from moorage.image import config as image_config
from moorage.image.diff import write_layer
from moorage.image.manifest import OCI_CONFIG, Descriptor, encode_manifest
from moorage.store.content import Ingest
from moorage.store.metadata import LayerRecord
from moorage.store.snapshots import Staged

# The pipe from the layer's writer to its unpacking: large, so the two threads hand
# over big pieces rather than taking turns every 64 KiB.
_PIPE_SIZE = 1 << 20


@dataclass(frozen=True, slots=True)
class ChildImage:
    """What a new image adds to its parent."""

    config: dict[str, Any]  # the container-config section ("config")
    created_by: str
    upper: str | None = None  # an overlay upper directory; None: no layer (empty_layer)
    author: str = ""
    comment: str = ""
    container: str = ""
    container_config: dict[str, Any] | None = None
    extra: dict[str, Any] = field(default_factory=dict)


def commit_child(service: ImageStore, parent_id: str | None, child: ChildImage) -> str:
    """Record the image ``child`` describes on top of image ``parent_id`` (None:
    scratch); returns its ID. Blocking; collects what it made if it fails."""
    try:
        with service.operation():
            return _commit(service, parent_id, child)
    finally:
        service.collect_garbage()


def _commit(service: ImageStore, parent_id: str | None, child: ChildImage) -> str:
    parent = service.config(parent_id) if parent_id else {}
    diff_ids = image_config.diff_ids(parent) if parent else []
    blobs = [lay.digest for lay in service.metadata.layers(parent_id)] if parent_id else []
    created = image_config.now_rfc3339()
    history = list(copy.deepcopy(parent.get("history") or []))
    entry: dict[str, Any] = {"created": created, "created_by": child.created_by}
    if child.author:
        entry["author"] = child.author
    if child.comment:
        entry["comment"] = child.comment
    if child.upper is None:
        entry["empty_layer"] = True
    else:
        with service.content.ingest() as ingest:
            staged = None
            try:
                staged = _write_and_stage(service, child.upper, ingest)
                blob = ingest.commit().digest
            except OSError as err:  # the blob's write: a full disk, an I/O error
                if staged is not None:
                    service.snapshots.discard(staged)
                raise write_failed(err, "layer") from None
        # Stored uncompressed, the layer's blob digest is its diff ID.
        if staged is not None:
            _place(service, parent_id, staged, blob)
        diff_ids.append(blob)
        blobs.append(blob)
    history.append(entry)
    document: dict[str, Any] = {
        "architecture": parent.get("architecture") or image_config.host_architecture(),
        "author": child.author,
        "config": image_config.container_config(child.config),
        "container": child.container,
        "container_config": image_config.container_config(child.container_config),
        "created": created,
        "docker_version": __version__,
        "history": history,
        "os": parent.get("os") or "linux",
        "rootfs": {"type": "layers", "diff_ids": diff_ids},
        **child.extra,
    }
    if child.comment:
        document["comment"] = child.comment
    if parent.get("variant"):
        document["variant"] = parent["variant"]
    config_digest = service.content.write_bytes(image_config.encode(document)).digest
    if child.upper is None and blobs:
        _reuse_layers(service, config_digest, parent_id or "")
    else:
        register(service, config_digest, blobs, parent_id or "")
    return config_digest


def _write_and_stage(service: ImageStore, upper: str, ingest: Ingest) -> Staged | None:
    """The layer of `upper` written into `ingest` and, at the same time, unpacked from a
    pipe by another thread (staged for its snapshot), where unpacking the stored blob
    afterwards took as long again. None when the unpacking failed: register() then
    unpacks the blob as for any other image."""
    read_end, write_end = os.pipe2(os.O_CLOEXEC)
    try:
        fcntl.fcntl(write_end, fcntl.F_SETPIPE_SZ, _PIPE_SIZE)
    except OSError:  # above /proc/sys/fs/pipe-max-size: the default size works too
        pass
    outcome: list[Staged | BaseException] = []

    def stage() -> None:
        with os.fdopen(read_end, "rb", buffering=0) as stream:
            try:
                outcome.append(service.snapshots.stage(stream))  # type: ignore[arg-type]
            except BaseException as err:
                outcome.append(err)
            finally:
                while stream.read(_PIPE_SIZE):  # the writer never blocks on a failed stage
                    pass

    unpacking = threading.Thread(target=stage, name="commit-stage", daemon=True)
    unpacking.start()
    try:
        with os.fdopen(write_end, "wb", buffering=0) as pipe:
            write_layer(upper, _Tee(ingest, pipe))  # type: ignore[arg-type]
    except BaseException:
        unpacking.join()
        if outcome and isinstance(outcome[0], Staged):  # a layer cut short
            service.snapshots.discard(outcome[0])
        raise
    unpacking.join()
    staged = outcome[0] if outcome else None
    return staged if isinstance(staged, Staged) else None


class _Tee:
    """Writes to the ingest and to the unpacking's pipe."""

    def __init__(self, ingest: Ingest, pipe: IO[bytes]) -> None:
        self.ingest = ingest
        self.pipe = pipe

    def write(self, chunk: bytes | memoryview) -> None:
        self.ingest.write(chunk)
        view = memoryview(chunk)
        while view:
            view = view[self.pipe.write(view) or 0:]


def _place(service: ImageStore, parent_id: str | None, staged: Staged, blob: str) -> None:
    """The staged layer made the snapshot on top of the parent image's, which register()
    then finds in place."""
    if staged.diff_id != blob:  # the same bytes hashed twice: never, unless a bug
        service.snapshots.discard(staged)
        return
    layers = service.metadata.layers(parent_id) if parent_id else []
    service.snapshots.commit(layers[-1].chain_id if layers else None, staged)


def _reuse_layers(service: ImageStore, config_digest: str, parent_id: str) -> None:
    """An image with its parent's layers: a new manifest, no unpacking."""
    layers: list[LayerRecord] = service.metadata.layers(parent_id)
    manifest = encode_manifest(
        Descriptor(OCI_CONFIG, config_digest, service.content.size(config_digest)),
        [Descriptor(lay.media_type, lay.digest, lay.blob_size) for lay in layers])
    add_image(service, config_digest, service.content.write_bytes(manifest).digest, layers,
              parent_id)
