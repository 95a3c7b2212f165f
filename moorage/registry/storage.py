"""The registry's filesystem layout, shared by every repository.

::

    DIR/blobs/<alg>/<xx>/<hex>                           content, written once
    DIR/repositories/<name>/_layers/<alg>/<hex>          "this repository has this blob"
    DIR/repositories/<name>/_manifests/revisions/<alg>/<hex>   its manifests (file: media type)
    DIR/repositories/<name>/_manifests/tags/<tag>        tag → digest
    DIR/repositories/<name>/_referrers/<alg>/<hex>/<digest>    referrers of <alg>:<hex>
    DIR/uploads/<uuid>/                                  upload sessions (uploads.py)
    DIR/tmp/                                             temp files, renamed into place

Every file is written to DIR/tmp, fsynced and renamed, so a crash leaves either the
old state or the new one. ``lock`` orders the mutations against the collector's
sweep (gc.py): making a blob reachable (link, manifest) checks that it exists and
bumps its mtime under the lock, and the sweep re-checks the mtime under the lock
before unlinking, so a blob is never deleted while something starts using it.
"""

from __future__ import annotations

import json
import os
import shutil
import tempfile
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from moorage.registry.errors import RegistryError
from moorage.registry.manifests import Manifest
from moorage.registry.names import Digest, is_tag, parse_digest_str


class Storage:
    def __init__(self, root: str | os.PathLike[str]) -> None:
        self.root = Path(root)
        self.lock = threading.Lock()
        self.tmp = self.root / "tmp"
        for sub in ("blobs", "repositories", "uploads", "tmp"):
            (self.root / sub).mkdir(parents=True, exist_ok=True)

    def clean_tmp(self) -> None:
        """Drop temp files a crashed process left; only safe before serving starts."""
        shutil.rmtree(self.tmp, ignore_errors=True)
        self.tmp.mkdir(exist_ok=True)

    # ------------------------------------------------------------------ paths and writes

    def blob_path(self, digest: Digest) -> Path:
        return self.root / "blobs" / digest.algorithm / digest.hex[:2] / digest.hex

    def repo_path(self, name: str) -> Path:
        """``name`` must have passed names.validate_name: it is then a safe relative path."""
        return self.root / "repositories" / name

    def _layer_link(self, name: str, digest: Digest) -> Path:
        return self.repo_path(name) / "_layers" / digest.algorithm / digest.hex

    def _revision(self, name: str, digest: Digest) -> Path:
        return self.repo_path(name) / "_manifests" / "revisions" / digest.algorithm / digest.hex

    def _tags_dir(self, name: str) -> Path:
        return self.repo_path(name) / "_manifests" / "tags"

    def _referrers_dir(self, name: str, subject: Digest) -> Path:
        return self.repo_path(name) / "_referrers" / subject.algorithm / subject.hex

    def temp_file(self) -> Path:
        fd, path = tempfile.mkstemp(dir=self.tmp)
        os.close(fd)
        return Path(path)

    def write_atomic(self, path: Path, data: bytes) -> None:
        tmp = self.temp_file()
        with open(tmp, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        path.parent.mkdir(parents=True, exist_ok=True)
        os.replace(tmp, path)

    # ------------------------------------------------------------------ blobs

    def blob_size(self, digest: Digest) -> int | None:
        try:
            return self.blob_path(digest).stat().st_size
        except FileNotFoundError:
            return None

    def linked_blob(self, name: str, digest: Digest) -> Path | None:
        """The blob's file when ``name`` has it, else None."""
        path = self.blob_path(digest)
        if self._layer_link(name, digest).exists() and path.exists():
            return path
        return None

    def link_blob(self, name: str, digest: Digest) -> bool:
        """Give ``name`` an existing blob (cross-repository mount); False when there is none."""
        with self.lock:
            return self._link_locked(name, digest)

    def _link_locked(self, name: str, digest: Digest) -> bool:
        path = self.blob_path(digest)
        try:
            os.utime(path)  # the collector keeps blobs touched after its mark started
        except FileNotFoundError:
            return False
        link = self._layer_link(name, digest)
        if not link.exists():
            self.write_atomic(link, b"")
        return True

    def commit_blob(self, name: str, src: Path, digest: Digest) -> None:
        """Move a verified, fsynced file into the store (deduplicated) and link it."""
        dest = self.blob_path(digest)
        with self.lock:
            if dest.exists():
                src.unlink()
            else:
                dest.parent.mkdir(parents=True, exist_ok=True)
                os.replace(src, dest)
            self._link_locked(name, digest)

    def unlink_blob(self, name: str, digest: Digest) -> bool:
        try:
            self._layer_link(name, digest).unlink()
            return True
        except FileNotFoundError:
            return False

    # ------------------------------------------------------------------ manifests

    def put_manifest(self, name: str, manifest: Manifest, data: bytes, tag: str | None,
                     *, check_references: bool = True) -> None:
        """Store a parsed manifest, its tag and its referrers entry.

        Raises MANIFEST_BLOB_UNKNOWN when a config, layer or index entry is not in
        the repository (distribution-spec "Pushing Manifests"); a pull-through
        cache passes ``check_references=False`` because it fetches blobs lazily.
        """
        with self.lock:
            if check_references:
                for blob in manifest.blobs:
                    if not self._layer_link(name, blob.digest).exists() or \
                            not self._link_locked(name, blob.digest):
                        raise RegistryError("MANIFEST_BLOB_UNKNOWN",
                                            detail={"digest": str(blob.digest)})
                for child in manifest.children:
                    if not self._revision(name, child.digest).exists():
                        raise RegistryError("MANIFEST_BLOB_UNKNOWN",
                                            detail={"digest": str(child.digest)})
                    os.utime(self.blob_path(child.digest))
            path = self.blob_path(manifest.digest)
            if path.exists():
                os.utime(path)
            else:
                self.write_atomic(path, data)
            self.write_atomic(self._revision(name, manifest.digest), manifest.media_type.encode())
            if tag is not None:
                self.write_atomic(self._tags_dir(name) / tag, str(manifest.digest).encode())
            if manifest.subject is not None:
                entry = json.dumps(manifest.referrer()).encode()
                self.write_atomic(self._referrers_dir(name, manifest.subject.digest)
                                  / str(manifest.digest), entry)

    def resolve(self, name: str, reference: str) -> tuple[Digest, str]:
        """(digest, media type) of a tag or digest in ``name``, or MANIFEST_UNKNOWN."""
        if is_tag(reference):
            try:
                digest = parse_digest_str((self._tags_dir(name) / reference).read_text())
            except FileNotFoundError:
                raise RegistryError("MANIFEST_UNKNOWN", detail={"tag": reference}) from None
        else:
            digest = parse_digest_str(reference)
        try:
            media_type = self._revision(name, digest).read_text()
        except FileNotFoundError:
            raise RegistryError("MANIFEST_UNKNOWN", detail={"digest": str(digest)}) from None
        if not self.blob_path(digest).exists():
            raise RegistryError("MANIFEST_UNKNOWN", detail={"digest": str(digest)})
        return digest, media_type

    def delete_manifest(self, name: str, digest: Digest, subject: Digest | None) -> None:
        """Remove a revision, the tags that point to it and its referrers entry (not the blob)."""
        with self.lock:
            try:
                self._revision(name, digest).unlink()
            except FileNotFoundError:
                raise RegistryError("MANIFEST_UNKNOWN", detail={"digest": str(digest)}) from None
            for tag in self._list(self._tags_dir(name)):
                if (self._tags_dir(name) / tag).read_text() == str(digest):
                    (self._tags_dir(name) / tag).unlink()
            if subject is not None:
                (self._referrers_dir(name, subject) / str(digest)).unlink(missing_ok=True)

    def delete_tag(self, name: str, tag: str) -> None:
        try:
            (self._tags_dir(name) / tag).unlink()
        except FileNotFoundError:
            raise RegistryError("MANIFEST_UNKNOWN", detail={"tag": tag}) from None

    def tags(self, name: str) -> list[str]:
        if not (self.repo_path(name) / "_manifests").is_dir():
            raise RegistryError("NAME_UNKNOWN", detail={"name": name})
        return sorted(self._list(self._tags_dir(name)))

    def referrers(self, name: str, subject: Digest) -> list[dict[str, Any]]:
        folder = self._referrers_dir(name, subject)
        return [json.loads((folder / entry).read_bytes()) for entry in sorted(self._list(folder))]

    # ------------------------------------------------------------------ walks

    def repositories(self) -> list[str]:
        """Every repository with a manifest or a blob, sorted (the _catalog order)."""
        found: list[str] = []
        base = self.root / "repositories"
        for dirpath, dirnames, _ in os.walk(base):
            if "_manifests" in dirnames or "_layers" in dirnames:
                found.append(os.path.relpath(dirpath, base))
            dirnames[:] = [d for d in dirnames if not d.startswith("_")]
        return sorted(found)

    def revisions(self, name: str) -> Iterator[tuple[Digest, str]]:
        """(digest, media type) of every manifest of ``name``."""
        base = self.repo_path(name) / "_manifests" / "revisions"
        for algorithm in self._list(base):
            for hex_ in self._list(base / algorithm):
                try:
                    yield Digest(algorithm, hex_), (base / algorithm / hex_).read_text()
                except FileNotFoundError:
                    continue  # deleted while we walked

    def layer_links(self, name: str) -> Iterator[Digest]:
        base = self.repo_path(name) / "_layers"
        for algorithm in self._list(base):
            for hex_ in self._list(base / algorithm):
                yield Digest(algorithm, hex_)

    def blobs(self) -> Iterator[Digest]:
        base = self.root / "blobs"
        for algorithm in self._list(base):
            for prefix in self._list(base / algorithm):
                for hex_ in self._list(base / algorithm / prefix):
                    yield Digest(algorithm, hex_)

    @staticmethod
    def _list(path: Path) -> list[str]:
        try:
            return os.listdir(path)
        except FileNotFoundError:
            return []
