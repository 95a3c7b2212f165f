"""Manifest and index parsing: what a manifest references and how it is described.

Pure code. The four accepted media types are the Docker schema 2 manifest and
manifest list (Docker Registry HTTP API v2, "Image Manifest V2, Schema 2") and the
OCI image manifest and index (image-spec v1.1). Schema 1 is refused, as the
distribution registry does once schema1 support is off.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from typing import Any

from moorage.image.manifest import (
    DOCKER_LIST,
    DOCKER_MANIFEST,
    DOCKER_SCHEMA1,
    OCI_INDEX,
    OCI_MANIFEST,
)
from moorage.registry.errors import RegistryError
from moorage.registry.names import Digest, parse_digest_str

MANIFEST_TYPES = (DOCKER_MANIFEST, DOCKER_LIST, OCI_MANIFEST, OCI_INDEX)
INDEX_TYPES = (DOCKER_LIST, OCI_INDEX)
# Layers a registry is not expected to hold (image-spec "non-distributable", Docker
# "foreign" layers): their blobs live at their `urls`, so their presence is not checked.
FOREIGN_LAYER_TYPES = ("application/vnd.docker.image.rootfs.foreign.diff.tar.gzip",
                       "application/vnd.oci.image.layer.nondistributable.v1.tar",
                       "application/vnd.oci.image.layer.nondistributable.v1.tar+gzip",
                       "application/vnd.oci.image.layer.nondistributable.v1.tar+zstd")
# distribution-spec "Pushing manifests": registries may limit the size; 4 MiB is the
# limit the distribution registry and most others use.
MAX_MANIFEST_SIZE = 4 * 1024 * 1024


@dataclass(frozen=True, slots=True)
class Descriptor:
    """image-spec "Content Descriptors": the fields the registry acts on."""

    media_type: str
    digest: Digest
    size: int


@dataclass(frozen=True, slots=True)
class Manifest:
    media_type: str
    digest: Digest
    size: int
    blobs: tuple[Descriptor, ...]      # config and layers: must be blobs of the repository
    children: tuple[Descriptor, ...]   # index entries: must be manifests of the repository
    subject: Descriptor | None
    artifact_type: str | None
    annotations: dict[str, str] | None

    def referrer(self) -> dict[str, Any]:
        """This manifest as a referrers index entry (distribution-spec "Listing Referrers")."""
        entry: dict[str, Any] = {"mediaType": self.media_type, "digest": str(self.digest),
                                 "size": self.size}
        if self.artifact_type:
            entry["artifactType"] = self.artifact_type
        if self.annotations:
            entry["annotations"] = self.annotations
        return entry


def compute_digest(data: bytes, algorithm: str = "sha256") -> Digest:
    return Digest(algorithm, hashlib.new(algorithm, data).hexdigest())


def _invalid(reason: str) -> RegistryError:
    return RegistryError("MANIFEST_INVALID", detail={"reason": reason})


def _descriptor(raw: Any, where: str) -> Descriptor:
    if not isinstance(raw, dict):
        raise _invalid(f"{where} is not a descriptor")
    media_type, digest, size = raw.get("mediaType"), raw.get("digest"), raw.get("size")
    if not isinstance(media_type, str) or not isinstance(digest, str):
        raise _invalid(f"{where} needs a mediaType and a digest")
    if not isinstance(size, int) or isinstance(size, bool) or size < 0:
        raise _invalid(f"{where} needs a non-negative size")
    return Descriptor(media_type, parse_digest_str(digest), size)


def parse_manifest(data: bytes, content_type: str, algorithm: str = "sha256") -> Manifest:
    """Validate a pushed manifest; MANIFEST_INVALID (or DIGEST_INVALID) when it is not one.

    The media type is the body's ``mediaType`` or, when absent (OCI allows it), the
    request's Content-Type; both present and different is an error (image-spec
    "Image Manifest Property Descriptions": mediaType is used to distinguish).
    """
    content_type = content_type.split(";")[0].strip()
    try:
        doc = json.loads(data)
    except ValueError as err:
        raise _invalid(f"not JSON: {err}") from None
    if not isinstance(doc, dict):
        raise _invalid("not a JSON object")
    if doc.get("schemaVersion") == 1 or content_type in DOCKER_SCHEMA1:
        raise RegistryError("MANIFEST_INVALID", "manifest invalid: schema 1 is not supported",
                            detail={"reason": "schema1 manifests are deprecated and refused"})
    if doc.get("schemaVersion") != 2:
        raise _invalid("schemaVersion must be 2")
    body_type = doc.get("mediaType")
    media_type = body_type if isinstance(body_type, str) else content_type
    if body_type is not None and content_type in MANIFEST_TYPES and body_type != content_type:
        raise _invalid(f"mediaType {body_type} does not match Content-Type {content_type}")
    if media_type not in MANIFEST_TYPES:
        raise _invalid(f"unsupported manifest media type {media_type!r}")
    blobs: list[Descriptor] = []
    children: list[Descriptor] = []
    if media_type in INDEX_TYPES:
        entries = doc.get("manifests")
        if not isinstance(entries, list):
            raise _invalid("manifests must be a list")
        children = [_descriptor(e, f"manifests[{i}]") for i, e in enumerate(entries)]
    else:
        layers = doc.get("layers")
        if not isinstance(layers, list):
            raise _invalid("layers must be a list")
        blobs.append(_descriptor(doc.get("config"), "config"))
        for i, raw in enumerate(layers):
            layer = _descriptor(raw, f"layers[{i}]")
            if layer.media_type not in FOREIGN_LAYER_TYPES:
                blobs.append(layer)
    subject = _descriptor(doc["subject"], "subject") if "subject" in doc else None
    artifact_type = doc.get("artifactType")
    if artifact_type is None and media_type == OCI_MANIFEST:
        # distribution-spec "Listing Referrers": an image manifest without
        # artifactType is listed under its config's media type.
        artifact_type = blobs[0].media_type
    annotations = doc.get("annotations")
    return Manifest(media_type=media_type, digest=compute_digest(data, algorithm),
                    size=len(data), blobs=tuple(blobs), children=tuple(children),
                    subject=subject,
                    artifact_type=artifact_type if isinstance(artifact_type, str) else None,
                    annotations=annotations if isinstance(annotations, dict) else None)

