"""Image archives: what ``docker save`` writes and ``docker load`` reads.

Three shapes exist, and ``read_archive`` takes all of them:
- the legacy docker-archive (dockerd ≤ 24): manifest.json, repositories,
  ``<hex>.json`` configs and ``<v1 id>/layer.tar`` (duplicates as symlinks);
- Docker 25+: an OCI image layout (oci-layout, index.json, blobs/sha256/…)
  that also carries manifest.json whose paths point into blobs/;
- a plain OCI image layout (image-spec image-layout.md), without manifest.json.
``write_archive`` writes the Docker 25+ shape, which both older dockerd (it reads
manifest.json) and OCI tools (they read index.json) load.

The archive is read once, as a stream: every file that may be a blob goes
straight to the caller's ``ingest`` (the content store, which verifies digests),
small metadata files stay in memory, and names are only ever dictionary keys —
nothing is written to a path taken from the archive.
"""

from __future__ import annotations

import io
import json
import posixpath
import re
import tarfile
from collections.abc import Callable
from dataclasses import dataclass
from typing import IO, Any, BinaryIO

from moorage.errors import InvalidParameter
from moorage.image.manifest import (
    ANNOTATION_IMAGE_NAME,
    ANNOTATION_REF_NAME,
    Descriptor,
    encode_index,
    is_index,
    parse_index,
    parse_manifest,
    pick_platform,
)
from moorage.image.reference import Reference

Ingest = Callable[[BinaryIO, str | None], str]
ReadBlob = Callable[[str], bytes]
_BLOB_PATH = re.compile(r"blobs/sha256/([a-f0-9]{64})")
_METADATA_MAX = 8 << 20
_METADATA_NAMES = ("manifest.json", "index.json", "oci-layout", "repositories")
_MAX_LINKS = 16


@dataclass(frozen=True, slots=True)
class ArchiveImage:
    """One image found in an archive; its blobs are already ingested."""

    config: str
    layers: tuple[str, ...]
    names: tuple[str, ...]


@dataclass(frozen=True, slots=True)
class ExportImage:
    """One image to write: its stored manifest, config and layer descriptors."""

    manifest: Descriptor
    config: Descriptor
    layers: tuple[Descriptor, ...]
    tags: tuple[Reference, ...]


@dataclass
class _Contents:
    files: dict[str, bytes]
    blobs: dict[str, str]
    links: dict[str, str]

    def digest(self, path: str, ingest: Ingest) -> str:
        path = self._resolve(path)
        if path in self.blobs:
            return self.blobs[path]
        if path in self.files:
            return ingest(io.BytesIO(self.files[path]), None)
        raise InvalidParameter(f"invalid archive: {path} is missing")

    def _resolve(self, path: str) -> str:
        path = _clean(path)
        for _ in range(_MAX_LINKS):
            if path not in self.links:
                return path
            path = self.links[path]
        raise InvalidParameter(f"invalid archive: too many links at {path}")


def _clean(name: str) -> str:
    """A member name as a key: rooted and normalised, so "./a", "a" and "x/../a" agree."""
    return posixpath.normpath("/" + name).lstrip("/")


def read_archive(stream: BinaryIO, ingest: Ingest, read: ReadBlob) -> list[ArchiveImage]:
    """The images of a docker-archive or OCI-layout tar stream.

    ``ingest(stream, expected_digest)`` stores a blob and returns its digest;
    ``read(digest)`` returns a stored blob. Raises InvalidParameter for an
    archive that is not one of the three shapes or refers to missing files.
    """
    contents = _scan(stream, ingest)
    if "manifest.json" in contents.files:
        return _docker_images(contents, ingest)
    if "index.json" in contents.files:
        return _oci_images(contents, read)
    raise InvalidParameter("invalid archive: neither manifest.json nor index.json found "
                           "(is it a docker save or OCI layout tar?)")


def _scan(stream: BinaryIO, ingest: Ingest) -> _Contents:
    contents = _Contents({}, {}, {})
    try:
        with tarfile.open(fileobj=stream, mode="r|*") as tar:
            for member in tar:
                tar.members.clear()
                path = _clean(member.name)
                if member.issym() or member.islnk():
                    base = posixpath.dirname(path) if member.issym() else ""
                    contents.links[path] = _clean(posixpath.join(base, member.linkname))
                    continue
                if not member.isreg():
                    continue
                data = tar.extractfile(member)
                assert data is not None  # a regular file always has data
                blob = _BLOB_PATH.fullmatch(path)
                if blob:
                    contents.blobs[path] = ingest(data, f"sha256:{blob.group(1)}")  # type: ignore[arg-type]
                elif _is_metadata(path) and member.size <= _METADATA_MAX:
                    contents.files[path] = data.read()
                else:
                    contents.blobs[path] = ingest(data, None)  # type: ignore[arg-type]
    except tarfile.TarError as e:
        raise InvalidParameter(f"invalid archive: {e}") from None
    return contents


def _is_metadata(path: str) -> bool:
    return path in _METADATA_NAMES or path.endswith(".json") or path.endswith("/json") \
        or path.endswith("/VERSION")


def _json(data: bytes, what: str) -> Any:
    try:
        return json.loads(data)
    except ValueError as e:
        raise InvalidParameter(f"invalid archive: {what}: {e}") from None


def _docker_images(contents: _Contents, ingest: Ingest) -> list[ArchiveImage]:
    entries = _json(contents.files["manifest.json"], "manifest.json")
    if not isinstance(entries, list):
        raise InvalidParameter("invalid archive: manifest.json is not a list")
    images = []
    for entry in entries:
        if not isinstance(entry, dict) or not isinstance(entry.get("Config"), str) \
                or not isinstance(entry.get("Layers") or [], list):
            raise InvalidParameter("invalid archive: bad entry in manifest.json")
        images.append(ArchiveImage(
            config=contents.digest(entry["Config"], ingest),
            layers=tuple(contents.digest(str(p), ingest) for p in entry.get("Layers") or []),
            names=tuple(str(t) for t in entry.get("RepoTags") or [])))
    return images


def _oci_images(contents: _Contents, read: ReadBlob) -> list[ArchiveImage]:
    images = []
    for top in parse_index(contents.files["index.json"]):
        descriptor = top
        for _ in range(_MAX_LINKS):
            if not is_index(descriptor.media_type):
                break
            descriptor = pick_platform(parse_index(read(descriptor.digest)))
        manifest = parse_manifest(read(descriptor.digest))
        name = top.annotation(ANNOTATION_IMAGE_NAME)
        ref_name = top.annotation(ANNOTATION_REF_NAME)
        # Docker puts only the tag in ref.name; a name there counts only when
        # it is a whole reference (image-spec annotations.md allows both).
        if name is None and ref_name and ("/" in ref_name or ":" in ref_name):
            name = ref_name
        images.append(ArchiveImage(manifest.config.digest,
                                   tuple(d.digest for d in manifest.layers),
                                   (name,) if name else ()))
    return images


# --- writing ------------------------------------------------------------------------


def write_archive(images: list[ExportImage], open_blob: Callable[[str], BinaryIO],
                  out: IO[bytes]) -> None:
    """Write ``images`` as a Docker 25+ archive (OCI layout + manifest.json) to ``out``.

    Streams: blobs are copied from ``open_blob`` one at a time, once each.
    """
    with tarfile.open(fileobj=out, mode="w|", format=tarfile.PAX_FORMAT) as tar:
        for directory in ("blobs", "blobs/sha256"):
            info = tarfile.TarInfo(directory)
            info.type, info.mode = tarfile.DIRTYPE, 0o755
            tar.addfile(info)
        written: set[str] = set()
        for image in images:
            for descriptor in (*image.layers, image.config, image.manifest):
                if descriptor.digest in written:
                    continue
                written.add(descriptor.digest)
                with open_blob(descriptor.digest) as blob:
                    tar.addfile(_file_info(_blob_path(descriptor.digest), descriptor.size), blob)
        for name, data in _metadata(images).items():
            tar.addfile(_file_info(name, len(data)), io.BytesIO(data))


def _blob_path(digest: str) -> str:
    return "blobs/sha256/" + digest.removeprefix("sha256:")


def _file_info(name: str, size: int) -> tarfile.TarInfo:
    info = tarfile.TarInfo(name)
    info.size, info.mode = size, 0o644
    return info


def _metadata(images: list[ExportImage]) -> dict[str, bytes]:
    index: list[Descriptor] = []
    manifest_json: list[dict[str, Any]] = []
    repositories: dict[str, dict[str, str]] = {}
    for image in images:
        for tag in image.tags or (None,):
            annotations = () if tag is None else (
                (ANNOTATION_IMAGE_NAME, str(tag)), (ANNOTATION_REF_NAME, tag.tag or ""))
            index.append(Descriptor(image.manifest.media_type, image.manifest.digest,
                                    image.manifest.size, annotations))
            if tag is not None and image.layers:
                repositories.setdefault(tag.familiar_name, {})[tag.tag or "latest"] = \
                    image.layers[-1].digest.removeprefix("sha256:")
        manifest_json.append({
            "Config": _blob_path(image.config.digest),
            "RepoTags": [t.familiar_string() for t in image.tags] or None,
            "Layers": [_blob_path(d.digest) for d in image.layers],
        })
    files = {
        "index.json": encode_index(index),
        "manifest.json": json.dumps(manifest_json, separators=(",", ":")).encode(),
        "oci-layout": b'{"imageLayoutVersion":"1.0.0"}',
    }
    if repositories:
        files["repositories"] = json.dumps(repositories, separators=(",", ":")).encode()
    return files
