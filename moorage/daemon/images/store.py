"""The image store: content, metadata and snapshots under the data-root, and their GC.

What every image operation shares (lookups, references, the store lock, the
collector) and nothing more: the service, the registries, transfer and check
build on it, and none of them imports the service.

Locking: ``lock`` serialises changes that must see a consistent store (adding
an image, deleting, collecting garbage); unpacking runs outside it, inside an
``operation`` that keeps the collector off blobs and snapshots meanwhile. What
containers use is protected by leases (store/leases.py), not by the lock.

A store is a view of one namespace of images (store/metadata.py): the Docker
API's, or, from ``namespaced``, another (the CRI's k8s.io) over the same
content, snapshots, lock and collector.
"""

from __future__ import annotations

import copy
import os
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any, Self

from moorage.errors import NotFound
from moorage.image import config as image_config
from moorage.image.reference import Reference, parse_normalized
from moorage.store.content import ContentStore
from moorage.store.leases import Leases
from moorage.store.metadata import DOCKER_NAMESPACE, ImageRecord, Metadata, RefRecord
from moorage.store.snapshots import Snapshotter


def familiar(ref: str) -> str:
    return parse_normalized(ref).familiar_string()


class _InFlight:
    """Imports and loads under way, in every namespace's view."""

    def __init__(self) -> None:
        self.count = 0


class ImageStore:
    def __init__(self, data_root: str, metadata: Metadata | None = None) -> None:
        self.namespace = DOCKER_NAMESPACE
        self.data_root = data_root
        self.tmp_dir = os.path.join(data_root, "tmp")
        os.makedirs(self.tmp_dir, mode=0o700, exist_ok=True)
        self.metadata = metadata or Metadata(os.path.join(data_root, "moor.db"))
        self.content = ContentStore(os.path.join(data_root, "content"), self.tmp_dir)
        self.snapshots = Snapshotter(os.path.join(data_root, "snapshots"), self.tmp_dir,
                                     self.metadata)
        # Containers lease their image: removal refuses (or retains) a leased one.
        self.leases = Leases(self.metadata, "image")
        self.lock = threading.RLock()
        self._in_flight = _InFlight()

    def namespaced(self, namespace: str) -> Self:
        """This store seen from ``namespace``: its own references and images, the same
        content, snapshots, leases, lock and collector."""
        view = copy.copy(self)
        view.namespace = namespace
        return view

    # --- lookups --------------------------------------------------------------------

    def lookup(self, name: str, *, retained: bool = False) -> ImageRecord:
        """moby's GetImage: a digest is an ID, a reference is looked up, then an ID prefix.

        With ``retained``, a full ID also finds an image removed by force that
        containers still use (they keep running on it, as with Docker)."""
        hex_part = name.removeprefix("sha256:")
        if len(hex_part) == 64 and all(c in "0123456789abcdef" for c in hex_part):
            record = self.metadata.image(f"sha256:{hex_part}")
            if record is None or not (retained or self.metadata.in_namespace(
                    record.id, self.namespace)):
                raise NotFound(f"No such image: sha256:{hex_part}")
            return record
        ref = parse_normalized(name)
        tagged = ref.with_default_tag()
        if tagged.tag is not None and tagged.digest is not None:
            tagged = Reference(tagged.domain, tagged.path, None, tagged.digest)
        image_id = self.metadata.ref(str(tagged), namespace=self.namespace)
        if image_id is None and _could_be_id(hex_part):
            matches = self.metadata.image_ids_with_prefix(hex_part, namespace=self.namespace)
            if len(matches) == 1:
                image_id = matches[0]
        record = self.metadata.image(image_id) if image_id else None
        if record is None:
            raise NotFound(f"No such image: {tagged.familiar_string()}")
        return record

    def config(self, image_id: str) -> dict[str, Any]:
        return image_config.decode(self.content.read(image_id), image_id)

    def refs(self, image_id: str | None = None) -> list[RefRecord]:
        """The references of this namespace, of one image or of all."""
        return self.metadata.refs(image_id, namespace=self.namespace)

    def ref(self, ref: str) -> str | None:
        return self.metadata.ref(ref, namespace=self.namespace)

    def set_ref(self, ref: str, image_id: str, *, is_digest: bool = False,
                tag_time: str = "") -> str | None:
        return self.metadata.set_ref(ref, image_id, namespace=self.namespace,
                                     is_digest=is_digest, tag_time=tag_time)

    def delete_ref(self, ref: str) -> bool:
        return self.metadata.delete_ref(ref, namespace=self.namespace)

    def repo_tags(self, image_id: str) -> list[str]:
        return sorted(familiar(r.ref) for r in self.refs(image_id) if not r.is_digest)

    def repo_digests(self, image_id: str) -> list[str]:
        return sorted(familiar(r.ref) for r in self.refs(image_id) if r.is_digest)

    def add_tag(self, ref: Reference, image_id: str) -> str | None:
        return self.set_ref(str(ref), image_id, tag_time=image_config.now_rfc3339())

    def drop_image(self, image_id: str) -> bool:
        """Take the image out of this namespace: the row goes when no other namespace
        has it, or is kept hidden (retained) while containers lease it. True when the
        row is gone."""
        return self.metadata.leave_namespace(image_id, self.namespace)

    # --- garbage ---------------------------------------------------------------------

    @contextmanager
    def operation(self) -> Iterator[None]:
        """Mark an import or load in flight: until it ends, collect_garbage leaves
        blobs and snapshots alone, since they may not have their image row yet."""
        with self.lock:
            self._in_flight.count += 1
        try:
            yield
        finally:
            with self.lock:
                self._in_flight.count -= 1

    def busy(self) -> bool:
        return self._in_flight.count > 0

    def collect_garbage(self) -> list[str]:
        """Drop retained images nobody uses any more, then the snapshots and blobs no
        image needs; returns the chain IDs of the snapshots removed (Docker reports
        them as deleted layers), top first. Sweeps nothing while an operation is
        in flight: what it has made may not have its image row yet."""
        with self.lock:
            for record in self.metadata.images(None):
                if record.retained and not self.leases.holders(record.id):
                    self.metadata.delete_image(record.id)
            if self.busy():
                return []
            chains = self.metadata.referenced_chains()
            removed = [s for s in self.metadata.snapshots() if s.chain_id not in chains]
            # Top first: a layer goes only after what was stacked on it.
            removed.sort(key=lambda s: -self._depth(s.chain_id))
            for snapshot in removed:
                self.snapshots.remove(snapshot.chain_id)
            blobs = self.metadata.referenced_blobs()
            for digest in self.content.walk():
                if digest not in blobs:
                    self.content.delete(digest)
            return [s.chain_id for s in removed]

    def _depth(self, chain_id: str) -> int:
        depth = 0
        record = self.metadata.snapshot(chain_id)
        while record is not None and record.parent is not None:
            depth += 1
            record = self.metadata.snapshot(record.parent)
        return depth


def _could_be_id(s: str) -> bool:
    return 0 < len(s) <= 64 and all(c in "0123456789abcdef" for c in s)
