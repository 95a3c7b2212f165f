"""OCI manifests and indexes (image-spec manifest.md, image-index.md) and their Docker twins."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from moorage.errors import InvalidParameter
from moorage.image.config import encode, host_architecture, parse_object

OCI_MANIFEST = "application/vnd.oci.image.manifest.v1+json"
OCI_INDEX = "application/vnd.oci.image.index.v1+json"
OCI_CONFIG = "application/vnd.oci.image.config.v1+json"
OCI_LAYER = "application/vnd.oci.image.layer.v1.tar"
OCI_LAYER_GZIP = "application/vnd.oci.image.layer.v1.tar+gzip"
OCI_LAYER_ZSTD = "application/vnd.oci.image.layer.v1.tar+zstd"
DOCKER_MANIFEST = "application/vnd.docker.distribution.manifest.v2+json"
DOCKER_LIST = "application/vnd.docker.distribution.manifest.list.v2+json"
DOCKER_LAYER_GZIP = "application/vnd.docker.image.rootfs.diff.tar.gzip"
DOCKER_LAYER = "application/vnd.docker.image.rootfs.diff.tar"
# Docker Image Manifest V2, Schema 1: refused by the engine's pull and the registry.
DOCKER_SCHEMA1 = ("application/vnd.docker.distribution.manifest.v1+json",
                  "application/vnd.docker.distribution.manifest.v1+prettyjws")
_MANIFESTS = (OCI_MANIFEST, DOCKER_MANIFEST)
_INDEXES = (OCI_INDEX, DOCKER_LIST)
_LAYERS = (OCI_LAYER, OCI_LAYER_GZIP, OCI_LAYER_ZSTD, DOCKER_LAYER_GZIP, DOCKER_LAYER,
           "application/vnd.docker.image.rootfs.foreign.diff.tar.gzip",
           "application/vnd.oci.image.layer.nondistributable.v1.tar+gzip")

# containerd's annotation for the full reference; ref.name is image-spec's own
# (annotations.md), which Docker fills with the tag alone.
ANNOTATION_IMAGE_NAME = "io.containerd.image.name"
ANNOTATION_REF_NAME = "org.opencontainers.image.ref.name"


@dataclass(frozen=True, slots=True)
class Descriptor:
    """image-spec descriptor.md: what a manifest or index points at."""

    media_type: str
    digest: str
    size: int
    annotations: tuple[tuple[str, str], ...] = ()
    platform: tuple[str, str, str] | None = None  # (os, architecture, variant)

    def to_json(self) -> dict[str, Any]:
        out: dict[str, Any] = {"mediaType": self.media_type, "digest": self.digest,
                               "size": self.size}
        if self.annotations:
            out["annotations"] = dict(self.annotations)
        return out

    def annotation(self, key: str) -> str | None:
        return dict(self.annotations).get(key)


@dataclass(frozen=True, slots=True)
class Manifest:
    config: Descriptor
    layers: tuple[Descriptor, ...]


def layer_media_type(head: bytes) -> str:
    """The OCI media type of a layer blob, told by its first bytes."""
    if head.startswith(b"\x1f\x8b\x08"):
        return OCI_LAYER_GZIP
    if head.startswith(b"\x28\xb5\x2f\xfd"):
        return OCI_LAYER_ZSTD
    return OCI_LAYER


def encode_manifest(config: Descriptor, layers: list[Descriptor]) -> bytes:
    return encode({"schemaVersion": 2, "mediaType": OCI_MANIFEST,
                    "config": config.to_json(), "layers": [d.to_json() for d in layers]})


def encode_index(manifests: list[Descriptor]) -> bytes:
    return encode({"schemaVersion": 2, "mediaType": OCI_INDEX,
                    "manifests": [d.to_json() for d in manifests]})



def _descriptor(raw: Any, what: str) -> Descriptor:
    if not isinstance(raw, dict):
        raise InvalidParameter(f"invalid {what}: descriptor is not an object")
    digest, size = raw.get("digest"), raw.get("size")
    if not isinstance(digest, str) or not isinstance(size, int) or size < 0:
        raise InvalidParameter(f"invalid {what}: descriptor needs a digest and a size")
    annotations = raw.get("annotations") or {}
    platform = raw.get("platform")
    return Descriptor(
        media_type=str(raw.get("mediaType", "")), digest=digest, size=size,
        annotations=tuple(sorted((str(k), str(v)) for k, v in annotations.items())),
        platform=(str(platform.get("os", "")), str(platform.get("architecture", "")),
                  str(platform.get("variant", ""))) if isinstance(platform, dict) else None)


def parse_manifest(data: bytes) -> Manifest:
    document = parse_object(data, "invalid manifest")
    if document.get("mediaType", OCI_MANIFEST) not in _MANIFESTS:
        raise InvalidParameter(f"unsupported manifest media type {document['mediaType']!r}")
    layers = document.get("layers") or []
    if not isinstance(layers, list):
        raise InvalidParameter("invalid manifest: layers is not a list")
    parsed = tuple(_descriptor(d, "manifest") for d in layers)
    for layer in parsed:
        if layer.media_type not in _LAYERS:
            raise InvalidParameter(f"unsupported layer media type {layer.media_type!r}")
    return Manifest(_descriptor(document.get("config"), "manifest"), parsed)


def parse_index(data: bytes) -> list[Descriptor]:
    """The manifests an index (or an OCI layout's index.json) lists."""
    document = parse_object(data, "invalid index")
    manifests = document.get("manifests")
    if not isinstance(manifests, list):
        raise InvalidParameter("invalid index: manifests is not a list")
    return [_descriptor(d, "index") for d in manifests]


def is_index(media_type: str) -> bool:
    return media_type in _INDEXES


def parse_platform(value: str) -> tuple[str, str, str]:
    """``os/arch[/variant]`` (containerd's platforms.Parse, without the aliases
    beyond arm64's default variant); InvalidParameter for anything else."""
    parts = value.lower().split("/")
    if len(parts) not in (2, 3) or not all(parts):
        raise InvalidParameter(f'"{value}": unknown operating system or architecture: '
                               "invalid argument")
    variant = parts[2] if len(parts) == 3 else ""
    if parts[1] == "arm64" and variant == "v8":
        variant = ""
    return parts[0], parts[1], variant


def pick_platform(candidates: list[Descriptor],
                  wanted: tuple[str, str, str] | None = None) -> Descriptor:
    """The entry of a multi-platform index for ``wanted`` (os, arch, variant; default
    this host, linux/<arch>), else the only entry; image-index.md leaves the
    choice to the client."""
    if wanted is not None:
        for descriptor in candidates:
            platform = descriptor.platform
            if platform and platform[:2] == wanted[:2] and (
                    not wanted[2] or platform[2] in (wanted[2], "")):
                return descriptor
        name = "/".join(p for p in wanted if p)
        raise InvalidParameter(f"no matching manifest for {name} in the manifest list entries")
    arch = host_architecture()
    for descriptor in candidates:
        if descriptor.platform and descriptor.platform[:2] == ("linux", arch):
            return descriptor
    manifests = [d for d in candidates if not d.platform or d.platform[0] in ("linux", "")]
    if len(manifests) == 1:
        return manifests[0]
    raise InvalidParameter(f"no matching manifest for linux/{arch} in the manifest list entries")
