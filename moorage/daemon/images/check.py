"""`moor system check`: prove the store is whole (DESIGN.md, "State on disk").

It verifies every blob's digest, every snapshot's chain (row and directory,
parent present, chain ID = hash of parent chain and diff ID) and every
reference (tag → image → config blob → manifest and layer blobs → snapshots), and
that every image is in a namespace of images or retained for the containers using it.
Orphans (blobs and snapshots no image needs, leftovers in tmp/) are not
errors — a crash may leave them — but ``repair`` removes them.
"""

from __future__ import annotations

import os
import shutil

from moorage.daemon.images.store import ImageStore
from moorage.errors import MoorError
from moorage.image import config as image_config
from moorage.model.image import CheckReport
from moorage.store import content, snapshots
from moorage.store.content import hex_of

# Only these are ours in tmp/ (other services may stage their own files there).
TMP_PREFIXES = (content.TMP_PREFIX, *snapshots.TMP_PREFIXES)


def reconcile(service: ImageStore) -> None:
    """At daemon start: drop half-finished ingests and unpacks, and snapshot
    directories whose row was never written (a crash between rename and commit,
    or between preparing a writable layer's directory and recording it); then
    collect the blobs and snapshots no image needs: a crash between an image's
    rows and its content (a load killed before it recorded the image, an rmi
    killed after it dropped the rows) leaves them, and nothing else would."""
    for name in os.listdir(service.tmp_dir):
        if name.startswith(TMP_PREFIXES):
            _remove_path(os.path.join(service.tmp_dir, name))
    known = {hex_of(s.chain_id) for s in service.metadata.snapshots()}
    for name in service.snapshots.on_disk():
        if name not in known:
            service.snapshots.remove_dir(name)
    for key in _stray_active(service):
        service.snapshots.remove_active(key)
    service.collect_garbage()


def _stray_active(service: ImageStore) -> list[str]:
    recorded = set(service.metadata.active_snapshot_keys())
    return [k for k in service.snapshots.active_on_disk() if k not in recorded]


def _remove_path(path: str) -> None:
    if os.path.isdir(path) and not os.path.islink(path):
        shutil.rmtree(path, ignore_errors=True)
    else:
        try:
            os.unlink(path)
        except FileNotFoundError:
            pass


def check(service: ImageStore, repair: bool) -> CheckReport:
    problems: list[str] = []
    orphans: list[str] = []
    removed: list[str] = []
    with service.lock:
        blobs = list(service.content.walk())
        bad_blobs = {d for d in blobs if not service.content.verify(d)}
        problems += [f"blob {d}: content does not match its digest" for d in sorted(bad_blobs)]
        problems += [f"content store: unexpected file {p}" for p in service.content.strays()]
        present = set(blobs) - bad_blobs
        problems += _check_snapshots(service)
        problems += _check_active(service)
        images = service.metadata.images(None)
        for record in images:
            problems += _check_image(service, record.id, present)
        refs = service.metadata.refs(namespace=None)
        live = {r.id for r in images if not r.retained}
        problems += [f"reference {r.ref}: image {r.image_id} is gone"
                     for r in refs if r.image_id not in live]

        needed_blobs = service.metadata.referenced_blobs()
        needed_chains = service.metadata.referenced_chains()
        orphan_blobs = [d for d in blobs if d not in needed_blobs]
        orphan_chains = [s.chain_id for s in service.metadata.snapshots()
                         if s.chain_id not in needed_chains]
        known = {hex_of(s.chain_id) for s in service.metadata.snapshots()}
        stray_dirs = [n for n in service.snapshots.on_disk() if n not in known]
        stray_active = _stray_active(service)
        deleting = service.snapshots.trash.pending()
        leftovers = [n for n in sorted(os.listdir(service.tmp_dir))
                     if n.startswith(TMP_PREFIXES) and n not in deleting]
        orphans += [f"blob {d}" for d in orphan_blobs]
        orphans += [f"snapshot {c}" for c in orphan_chains]
        orphans += [f"snapshot directory {n} without metadata" for n in stray_dirs]
        orphans += [f"writable layer {k} without metadata" for k in stray_active]
        if not service.busy():
            # In flight, tmp/ holds live ingests, not leftovers.
            orphans += [f"tmp/{n}" for n in leftovers]
        if repair:
            removed += _repair(service, stray_dirs, stray_active, leftovers)
    return CheckReport(blobs=len(blobs), snapshots=len(service.metadata.snapshots()),
                       images=len(images), references=len(refs), problems=tuple(problems),
                       orphans=tuple(orphans), removed=tuple(removed))


def _repair(service: ImageStore, stray_dirs: list[str], stray_active: list[str],
            leftovers: list[str]) -> list[str]:
    if service.busy():
        return []
    removed = [f"snapshot {c}" for c in service.collect_garbage()]
    for name in stray_dirs:
        service.snapshots.remove_dir(name)
        removed.append(f"snapshot directory {name}")
    for key in stray_active:
        service.snapshots.remove_active(key)
        removed.append(f"writable layer {key}")
    for name in leftovers:
        _remove_path(os.path.join(service.tmp_dir, name))
        removed.append(f"tmp/{name}")
    return removed


def _check_snapshots(service: ImageStore) -> list[str]:
    problems = []
    rows = {s.chain_id: s for s in service.metadata.snapshots()}
    for chain_id, record in rows.items():
        where = f"snapshot {chain_id}"
        if not os.path.isdir(service.snapshots.fs_of(chain_id)):
            problems.append(f"{where}: directory is missing")
        if not record.diff_id.startswith("sha256:") or len(record.diff_id) != 71:
            problems.append(f"{where}: no valid diff ID recorded")
            continue
        if record.parent is not None and record.parent not in rows:
            problems.append(f"{where}: parent {record.parent} is missing")
        if image_config.chain_id_of(record.parent, record.diff_id) != chain_id:
            problems.append(f"{where}: chain ID does not match its parent and diff ID")
    return problems


def _check_active(service: ImageStore) -> list[str]:
    """Containers' writable layers: each has its directory and its parent chain, and
    every image leased is still recorded."""
    problems = []
    for key in service.metadata.active_snapshot_keys():
        record = service.metadata.active_snapshot(key)
        if record is None:
            continue
        where = f"writable layer {key}"
        if not os.path.isdir(service.snapshots.active_dir(key)):
            problems.append(f"{where}: directory is missing")
        if record.parent is not None and service.snapshots.get(record.parent) is None:
            problems.append(f"{where}: parent snapshot {record.parent} is missing")
    for image_id in sorted(service.leases.held()):
        if service.metadata.image(image_id) is None:
            holders = ", ".join(service.leases.holders(image_id))
            problems.append(f"image {image_id}: gone, but leased by {holders}")
    return problems


def _check_image(service: ImageStore, image_id: str, blobs: set[str]) -> list[str]:
    where = f"image {image_id}"
    record = service.metadata.image(image_id)
    if record is None:
        return []
    problems = [f"{where}: {kind} blob {d} is missing or corrupt"
                for kind, d in (("config", image_id), ("manifest", record.manifest))
                if d not in blobs]
    if not record.retained and not service.metadata.namespaces(image_id):
        problems.append(f"{where}: in no namespace, yet not retained for a container")
    if image_id not in blobs:
        return problems
    try:
        diff_ids = image_config.diff_ids(service.config(image_id))
    except MoorError as e:
        return [*problems, f"{where}: {e}"]
    layers = service.metadata.layers(image_id)
    if [lay.diff_id for lay in layers] != diff_ids:
        problems.append(f"{where}: layers do not match the config's diff IDs")
    chains = image_config.chain_ids(diff_ids)
    if [lay.chain_id for lay in layers] != chains[:len(layers)]:
        problems.append(f"{where}: recorded chain IDs are wrong")
    if (chains[-1] if chains else None) != record.top_chain:
        problems.append(f"{where}: top chain ID is wrong")
    for layer in layers:
        if layer.digest not in blobs:
            problems.append(f"{where}: layer blob {layer.digest} is missing or corrupt")
        if service.snapshots.get(layer.chain_id) is None:
            problems.append(f"{where}: snapshot {layer.chain_id} is missing")
    return problems
