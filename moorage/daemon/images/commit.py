"""New images on top of others: a writable layer (or none) plus a config and a history
entry, as ``docker commit`` and each Dockerfile step make them (moby's
image.NewChildImage and daemon/commit.go)."""

from __future__ import annotations

import copy
from dataclasses import dataclass, field
from typing import Any

from moorage import __version__
from moorage.daemon.images.store import ImageStore
from moorage.daemon.images.transfer import add_image, register
from moorage.image import config as image_config
from moorage.image.diff import write_layer
from moorage.image.manifest import OCI_CONFIG, Descriptor, encode_manifest
from moorage.store.metadata import LayerRecord


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
            write_layer(child.upper, ingest)  # type: ignore[arg-type]
            blob = ingest.commit().digest
        # Stored uncompressed, the layer's blob digest is its diff ID.
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


def _reuse_layers(service: ImageStore, config_digest: str, parent_id: str) -> None:
    """An image with its parent's layers: a new manifest, no unpacking."""
    layers: list[LayerRecord] = service.metadata.layers(parent_id)
    manifest = encode_manifest(
        Descriptor(OCI_CONFIG, config_digest, service.content.size(config_digest)),
        [Descriptor(lay.media_type, lay.digest, lay.blob_size) for lay in layers])
    add_image(service, config_digest, service.content.write_bytes(manifest).digest, layers,
              parent_id)
