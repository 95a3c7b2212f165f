"""The overlay snapshotter: one unpacked layer per chain ID, shared by every image.

snapshots/<chain hex>/fs holds a single layer in overlayfs's format (whiteouts as
0/0 devices, opaque directories by xattr), applied on its own, as Docker's
overlay2 driver stores its diff directories. Keying by chain ID (image-spec
config.md, "Layer ChainID") rather than diff ID matters because a layer's
meaning depends on what lies below it. A snapshot is unpacked into tmp/ and
renamed into place, so a visible directory is complete; its row in moor.db is
written after the rename, so a row always has its directory.

A container's writable layer is an active snapshot (containerd's Prepare):
snapshots/active/<key>/{fs,work} on top of a committed chain. A Docker container's
also lies on the init layer (image/initlayer.py), which moby makes per container and
this snapshotter once per data-root, read-only: snapshots/init/fs, the lowerdir right
below the writable layer, and snapshots/init/below, the lowest, of every active snapshot
whose directory links to it (active/<key>/init, made with the directory, before its
row). An image whose /etc or /dev has another mode or owner than 0755 root gets an
init/fs-<attributes> of its own, which shows them. This module never mounts
(containerd's rule, storage describes and callers act): ``prepare`` returns the overlay
mount that assembles the layer and its parents, and the container code mounts it where
it wants.
"""

from __future__ import annotations

import os
import shutil
import tempfile
from collections.abc import Callable
from dataclasses import dataclass
from typing import BinaryIO

from moorage.errors import InvalidParameter, NotFound
from moorage.image import initlayer
from moorage.image.config import chain_id_of
from moorage.image.layer import apply_layer
from moorage.store import trash
from moorage.store.content import hex_of
from moorage.store.metadata import ActiveSnapshotRecord, Metadata, SnapshotRecord

_UNPACK_PREFIX = "unpack-"
# What this module stages under tmp/: unpacks in progress, trees being deleted.
TMP_PREFIXES = (_UNPACK_PREFIX, trash.PREFIX)
# Under the snapshotter's root, beside the committed chains (named by their hex).
ACTIVE_DIR = "active"
INIT_DIR = "init"


@dataclass(frozen=True, slots=True)
class Mount:
    """containerd's mount.Mount: a mount described, for the caller to perform
    (mount(2) with ``source``, ``type`` and the comma-joined ``options``)."""

    type: str
    source: str
    options: tuple[str, ...]

    def option(self, name: str) -> str | None:
        """The value of option ``name=value``; None when absent."""
        prefix = name + "="
        for option in self.options:
            if option.startswith(prefix):
                return option[len(prefix):]
        return None


@dataclass(frozen=True, slots=True)
class Staged:
    """A layer unpacked under tmp/ (``work``/fs), not yet a snapshot."""

    work: str
    diff_id: str
    size: int


class Snapshotter:
    def __init__(self, root: str, tmp_dir: str, metadata: Metadata) -> None:
        self.root = root
        self.tmp_dir = tmp_dir
        self.metadata = metadata
        # Out of sight at once, deleted at once or (a writable layer's, `later`) after.
        self.trash = trash.Trash(tmp_dir)
        self.active_root = os.path.join(root, ACTIVE_DIR)
        os.makedirs(self.active_root, mode=0o700, exist_ok=True)
        self.init_below = os.path.join(root, INIT_DIR, "below")
        # Init layers seen in place: never removed, so each is looked for once a process.
        self._init_layers_present: set[str] = set()

    def dir_of(self, chain_id: str) -> str:
        return os.path.join(self.root, hex_of(chain_id))

    def fs_of(self, chain_id: str) -> str:
        return os.path.join(self.dir_of(chain_id), "fs")

    def get(self, chain_id: str) -> SnapshotRecord | None:
        record = self.metadata.snapshot(chain_id)
        if record is not None and os.path.isdir(self.fs_of(chain_id)):
            return record
        return None

    def unpack(self, parent: str | None, open_layer: Callable[[], BinaryIO],
               expected_diff_id: str | None = None) -> SnapshotRecord:
        """The snapshot of the layer ``open_layer()`` yields, on top of chain ``parent``.

        With ``expected_diff_id`` (from an image config) an existing snapshot is
        reused without reading the layer, and a layer whose content hashes to
        another diff ID is refused (InvalidParameter). Idempotent and safe to
        race: two unpacks of one chain leave one directory.
        """
        if parent is not None and self.get(parent) is None:
            raise NotFound(f"parent snapshot {parent} does not exist")
        if expected_diff_id is not None:
            existing = self.get(chain_id_of(parent, expected_diff_id))
            if existing is not None:
                return existing
        with open_layer() as stream:
            staged = self.stage(stream, expected_diff_id)
        return self.commit(parent, staged)

    def stage(self, stream: BinaryIO, expected_diff_id: str | None = None) -> Staged:
        """Unpack one layer into tmp/, before its parent exists: a pull unpacks its
        layers in parallel, then commits them bottom first. InvalidParameter when
        ``expected_diff_id`` is given and the content differs; nothing is left
        behind on any error."""
        work = tempfile.mkdtemp(prefix=_UNPACK_PREFIX, dir=self.tmp_dir)
        try:
            fs = os.path.join(work, "fs")
            os.mkdir(fs, 0o755)
            applied = apply_layer(stream, fs)
            if expected_diff_id is not None and applied.diff_id != expected_diff_id:
                raise InvalidParameter(
                    f"layer content has diff ID {applied.diff_id}, the image config "
                    f"says {expected_diff_id}")
            return Staged(work, applied.diff_id, disk_size(fs))
        except BaseException:
            shutil.rmtree(work, ignore_errors=True)
            raise

    def commit(self, parent: str | None, staged: Staged) -> SnapshotRecord:
        """Move a staged layer into place on top of chain ``parent`` (which must be
        committed); idempotent, and the staged directory is gone afterwards."""
        try:
            if parent is not None and self.get(parent) is None:
                raise NotFound(f"parent snapshot {parent} does not exist")
            chain_id = chain_id_of(parent, staged.diff_id)
            record = SnapshotRecord(chain_id, parent, staged.diff_id, staged.size)
            try:
                os.rename(staged.work, self.dir_of(chain_id))
            except OSError:
                # Another unpack of the same chain won (ENOTEMPTY/EEXIST), or a
                # leftover directory without its row: keep the one in place
                # only if it is complete.
                if not os.path.isdir(self.fs_of(chain_id)):
                    raise
            self.metadata.add_snapshot(record)
            return self.metadata.snapshot(chain_id) or record
        finally:
            self.discard(staged)

    def discard(self, staged: Staged) -> None:
        if os.path.exists(staged.work):
            shutil.rmtree(staged.work, ignore_errors=True)

    def lower_dirs(self, top_chain_id: str) -> list[str]:
        """The fs directories from ``top_chain_id`` down to its base, top first
        (overlayfs's lowerdir order). NotFound when a link of the chain is missing."""
        dirs = []
        chain: str | None = top_chain_id
        while chain is not None:
            record = self.get(chain)
            if record is None:
                raise NotFound(f"snapshot {chain} does not exist")
            dirs.append(self.fs_of(chain))
            chain = record.parent
        return dirs

    def remove(self, chain_id: str) -> None:
        """Forget the snapshot, then delete its directory (a crash between leaves an
        orphan directory that ``on_disk`` reports). Idempotent."""
        self.metadata.delete_snapshot(chain_id)
        self.remove_dir(hex_of(chain_id))

    def remove_dir(self, name: str) -> None:
        # Out of sight first, so a half-deleted tree is never taken for a snapshot.
        self.trash.remove(os.path.join(self.root, name))

    def on_disk(self) -> list[str]:
        """Names of the committed snapshots' directories under snapshots/."""
        return sorted(n for n in os.listdir(self.root) if n not in (ACTIVE_DIR, INIT_DIR))

    # --- active snapshots ----------------------------------------------------------------

    def prepare(self, key: str, parent: str | None, init: bool = False) -> list[Mount]:
        """A writable layer ``key`` on top of chain ``parent`` (None: on nothing), with
        the init layer between them when ``init``, and the mounts that assemble it.
        Idempotent: an existing ``key`` keeps its content, its parent and its init
        layer or none. NotFound when a link of ``parent``'s chain is missing."""
        existing = self.metadata.active_snapshot(key)
        if existing is None:
            if parent is not None:
                self.lower_dirs(parent)  # the whole chain must be there
            path = self.active_dir(key)
            for sub in ("fs", "work", "empty"):
                os.makedirs(os.path.join(path, sub), mode=0o755, exist_ok=True)
            if init and not os.path.islink(os.path.join(path, INIT_DIR)):
                covered = initlayer.image_attributes(
                    self.lower_dirs(parent) if parent is not None else [])
                os.symlink(os.path.join("..", "..", INIT_DIR, initlayer.layer_name(covered)),
                           os.path.join(path, INIT_DIR))
            self.metadata.add_active_snapshot(key, parent)
            existing = ActiveSnapshotRecord(key, parent)
        return self.mounts(existing)

    def active(self, key: str) -> ActiveSnapshotRecord:
        record = self.metadata.active_snapshot(key)
        if record is None or not os.path.isdir(self.active_dir(key)):
            raise NotFound(f"snapshot {key} does not exist")
        return record

    def mounts(self, record: ActiveSnapshotRecord) -> list[Mount]:
        """The overlay mount of active snapshot ``record`` (containerd's Mounts)."""
        path = self.active_dir(record.key)
        lowers = (self.lower_dirs(record.parent) if record.parent is not None
                  else [os.path.join(path, "empty")])
        try:
            init = os.path.basename(os.readlink(os.path.join(path, INIT_DIR)))
        except OSError:  # no init layer (the CRI's), or the snapshot is being removed
            init = None
        if init is not None:
            lowers = [self._init_layer(init), *lowers,
                      self._made(self.init_below, initlayer.populate_below)]
        return [Mount("overlay", "overlay", (
            f"workdir={os.path.join(path, 'work')}", f"upperdir={os.path.join(path, 'fs')}",
            f"lowerdir={':'.join(lowers)}"))]

    def _init_layer(self, name: str) -> str:
        """The init layer's fs named ``name`` (initlayer.layer_name), made on first need."""
        covered = initlayer.covered_by(name)
        return self._made(os.path.join(self.root, INIT_DIR, name),
                          lambda out: initlayer.populate_above(out, covered))

    def _made(self, path: str, populate: Callable[[str], None]) -> str:
        """``path``, made by ``populate`` on first need: staged under tmp/ and renamed
        into place, so a visible one is complete (a leftover stage goes at daemon start)."""
        if path in self._init_layers_present:
            return path
        if os.path.isdir(path):
            self._init_layers_present.add(path)
            return path
        os.makedirs(os.path.dirname(path), mode=0o755, exist_ok=True)
        work = tempfile.mkdtemp(prefix=_UNPACK_PREFIX, dir=self.tmp_dir)
        try:
            populate(os.path.join(work, "out"))
            os.rename(os.path.join(work, "out"), path)
        except OSError:
            if not os.path.isdir(path):  # another thread's made it: keep that one
                raise
        finally:
            shutil.rmtree(work, ignore_errors=True)
        self._init_layers_present.add(path)
        return path

    def active_dir(self, key: str) -> str:
        if not key or "/" in key or key.startswith("."):
            raise InvalidParameter(f"invalid snapshot key {key!r}")
        return os.path.join(self.active_root, key)

    def remove_active(self, key: str, *, later: bool = False) -> None:
        """Forget the writable layer, then delete it; the caller has unmounted it.
        With `later` it is only out of sight when this returns, deleted by
        `trash.empty()`. Idempotent."""
        self.metadata.delete_active_snapshot(key)
        if later:
            self.trash.discard(self.active_dir(key))
        else:
            self.trash.remove(self.active_dir(key))

    def active_on_disk(self) -> list[str]:
        return sorted(os.listdir(self.active_root))


def disk_size(root: str) -> int:
    """moby's pkg/directory Size, which overlay2 reports as a layer's size: the
    lstat sizes of everything but directories, each hard-linked inode once."""
    seen: set[int] = set()
    total = 0
    stack = [root]
    while stack:
        with os.scandir(stack.pop()) as entries:
            for entry in entries:
                if entry.is_dir(follow_symlinks=False):
                    stack.append(entry.path)
                    continue
                st = entry.stat(follow_symlinks=False)
                if st.st_size and st.st_ino not in seen:
                    seen.add(st.st_ino)
                    total += st.st_size
    return total
