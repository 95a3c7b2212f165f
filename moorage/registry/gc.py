"""Online garbage collection: mark and sweep while the registry keeps serving.

The distribution registry's collector needs read-only mode because a blob pushed
before its manifest looks like garbage. This one never stops writes:

* The mark start time T is taken under the storage lock, so every manifest PUT
  either finished before T (and the mark sees it) or bumps the mtime of the blobs
  it references after T.
* Mark: every manifest revision of every repository, plus its config, layers and
  index entries (image-spec "Image Manifest", "Image Index"). Untagged manifests
  stay: deleting a manifest is how a client says it is garbage.
* Sweep: an unmarked blob is deleted only if its mtime is older than
  T - grace, checked again under the storage lock right before the unlink. New
  uploads, mounts and re-pushes bump the mtime (Storage.link_blob), and the grace
  period covers layers whose manifest has not been pushed yet.
* Upload sessions are separate files (DIR/uploads) and are only purged when idle
  for a day, as the distribution registry's upload purger does.

Kernel file timestamps come from a coarse clock that can lag time.time() by a
tick, so the grace period is never shorter than one second.
"""

from __future__ import annotations

import json
import logging
import time
from dataclasses import dataclass

from moorage.registry.errors import RegistryError
from moorage.registry.manifests import parse_manifest
from moorage.registry.names import Digest
from moorage.registry.storage import Storage
from moorage.registry.uploads import Uploads

log = logging.getLogger("moor.registry.gc")

DEFAULT_GRACE = 3600.0
MIN_GRACE = 1.0
UPLOAD_TTL = 24 * 3600.0


@dataclass(frozen=True, slots=True)
class GCResult:
    marked: int
    blobs_deleted: int
    bytes_freed: int
    links_removed: int
    uploads_purged: int
    seconds: float

    def as_json(self) -> dict[str, float]:
        return {"marked": self.marked, "blobs_deleted": self.blobs_deleted,
                "bytes_freed": self.bytes_freed, "links_removed": self.links_removed,
                "uploads_purged": self.uploads_purged, "seconds": round(self.seconds, 3)}


def _mark(storage: Storage) -> set[Digest]:
    marked: set[Digest] = set()
    for name in storage.repositories():
        for digest, media_type in storage.revisions(name):
            marked.add(digest)
            try:
                manifest = parse_manifest(storage.blob_path(digest).read_bytes(), media_type,
                                          digest.algorithm)
            except (FileNotFoundError, RegistryError):
                continue  # a dangling or unreadable revision keeps nothing alive
            marked.update(d.digest for d in manifest.blobs)
            marked.update(d.digest for d in manifest.children)
    return marked


def collect(storage: Storage, uploads: Uploads, grace: float = DEFAULT_GRACE,
            dry_run: bool = False) -> GCResult:
    """One mark-and-sweep pass; blocking, run it in a thread when serving."""
    started = time.monotonic()
    with storage.lock:
        mark_start = time.time()
    marked = _mark(storage)
    cutoff_ns = int((mark_start - max(grace, MIN_GRACE)) * 1e9)
    deleted = freed = 0
    for digest in storage.blobs():
        if digest in marked:
            continue
        path = storage.blob_path(digest)
        with storage.lock:
            try:
                st = path.stat()
            except FileNotFoundError:
                continue
            if st.st_mtime_ns >= cutoff_ns:
                continue
            if not dry_run:
                path.unlink()
        deleted += 1
        freed += st.st_size
    links = 0
    if not dry_run:
        for name in storage.repositories():
            for digest in storage.layer_links(name):
                with storage.lock:
                    if not storage.blob_path(digest).exists():
                        storage.unlink_blob(name, digest)
                        links += 1
    purged = 0 if dry_run else uploads.purge(time.time() - UPLOAD_TTL)
    result = GCResult(marked=len(marked), blobs_deleted=deleted, bytes_freed=freed,
                      links_removed=links, uploads_purged=purged,
                      seconds=time.monotonic() - started)
    log.info(json.dumps({"msg": "garbage collection", "dry_run": dry_run, **result.as_json()}))
    return result

