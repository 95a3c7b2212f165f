"""Kept build contexts: a copy of a client's context kept between builds, so that a
rebuild receives only the files that changed (as BuildKit's filesync keeps one per
shared key).

The client names its context by a key (its host and the context's absolute path, as
BuildKit's shared key) and describes every entry by a stat identity: [mode, size,
mtime_ns, link target], or null for an entry that has none (a Dockerfile from stdin,
a hard-linked file), which is always sent. ``needed`` answers which entries to send:
those whose identity the kept copy does not have, and the parents of every entry
added, changed or removed (their own times change with them, and a tar member sets
them back). The build then sends a tar of just those, which ``synced`` applies.

The copy is the tar's unpacking, member for member, so a build from it is a build
from the whole context: same files, same modes and times, same cache keys. Its index
(each entry's identity and content digest) is what a later build trusts; it is
removed before the copy changes and written back, atomically, once the copy matches
it again, so a crash or a cut transfer leaves a copy no build trusts, which the next
transfer replaces whole."""

from __future__ import annotations

import asyncio
import hashlib
import json
import os
import posixpath
import shutil
import time
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import Any

from moorage.daemon.build.context import BuildContext, unpack_members
from moorage.errors import Conflict, InvalidParameter
from moorage.fsutil import atomic_write, fsync_dir
from moorage.model.system import BuildCacheUsage

_KEY_MAX = 4096
# Kept copies beyond this many make room by removing the least recently synced.
_KEPT_MAX = 16
Identity = list[Any] | None


@dataclass(frozen=True, slots=True)
class Manifest:
    """The client's context: its key, each entry's identity, by relative path, in the
    order the client walked it."""

    key: str
    entries: dict[str, Identity]
    sent: frozenset[str]  # the entries the tar that follows holds

    @classmethod
    def parse(cls, document: Any) -> Manifest:
        try:
            key = document["key"]
            if not isinstance(key, str) or not 0 < len(key) <= _KEY_MAX:
                raise ValueError("bad key")
            entries = {_path(path): _identity(ident) for path, ident in document["entries"]}
            sent = frozenset(_path(p) for p in document.get("sent") or ())
        except (TypeError, ValueError, KeyError) as err:
            raise InvalidParameter(f"invalid build context manifest: {err}") from None
        if not sent <= entries.keys():
            raise InvalidParameter("invalid build context manifest: a sent path is not "
                                   "in its entries")
        return cls(key, entries, sent)


def _path(path: Any) -> str:
    if not isinstance(path, str) or not path or path != posixpath.normpath(path) or \
            path.startswith(("/", "../")) or path == "..":
        raise ValueError(f"bad path {path!r}")
    return path


def _identity(ident: Any) -> Identity:
    if ident is None:
        return None
    if not (isinstance(ident, list) and len(ident) == 4 and
            all(isinstance(v, int) for v in ident[:3]) and isinstance(ident[3], str)):
        raise ValueError(f"bad stat identity {ident!r}")
    return ident


class _SharedLock:
    """Many builds read a kept copy at once; a transfer that changes it waits for them
    and keeps others out, then reads like them (``downgrade``)."""

    def __init__(self) -> None:
        self.readers = 0
        self.writing = False
        self.changed = asyncio.Condition()

    async def acquire(self, write: bool) -> None:
        async with self.changed:
            await self.changed.wait_for(
                lambda: not self.writing and (not write or not self.readers))
            if write:
                self.writing = True
            else:
                self.readers += 1

    async def downgrade(self) -> None:
        async with self.changed:
            self.writing = False
            self.readers += 1
            self.changed.notify_all()

    async def release(self) -> None:
        async with self.changed:
            if self.writing:
                self.writing = False
            else:
                self.readers -= 1
            self.changed.notify_all()

    @property
    def free(self) -> bool:
        return not self.readers and not self.writing

    def take(self) -> bool:
        """Write-lock it if no one holds it, without waiting."""
        if not self.free:
            return False
        self.writing = True
        return True


class KeptContexts:
    def __init__(self, root: str) -> None:
        self.root = root
        os.makedirs(root, mode=0o700, exist_ok=True)
        self.locks: dict[str, _SharedLock] = {}

    def _dir(self, manifest: Manifest) -> str:
        name = hashlib.sha256(manifest.key.encode("utf-8", "surrogatepass")).hexdigest()
        return os.path.join(self.root, name)

    def needed(self, manifest: Manifest) -> list[str]:
        """The entries to send, in the manifest's order."""
        index = _load_index(self._dir(manifest))
        changed = _changed(manifest, index)
        need = set(changed) | {posixpath.dirname(p) for p in changed}
        need |= {posixpath.dirname(p) for p in index.keys() - manifest.entries.keys()}
        return [p for p in manifest.entries if p in need]

    @asynccontextmanager
    async def synced(self, manifest: Manifest,
                     body: Iterator[bytes]) -> AsyncIterator[BuildContext]:
        """The kept copy updated from ``body`` (the tar of the sent entries), read-locked
        for the build. Conflict when the copy moved on since ``needed`` answered (a
        concurrent transfer of the same context): the client sends the whole tar then."""
        directory = self._dir(manifest)
        lock = self.locks.setdefault(os.path.basename(directory), _SharedLock())
        write = False  # most builds change nothing: they share the copy
        held = False
        try:
            while True:
                await lock.acquire(write)
                held = True
                index = await asyncio.to_thread(_load_index, directory)
                if write or not _must_write(manifest, index):
                    break
                held = False
                await lock.release()
                write = True
            if write:
                if not index:
                    await self._bound(os.path.basename(directory))
                index = await asyncio.to_thread(_sync, directory, manifest, index, body)
                await lock.downgrade()
            else:
                await asyncio.to_thread(_drain, body)
            await asyncio.to_thread(os.utime, directory)  # recently used: _bound keeps it
            tree = os.path.join(directory, "tree")
            yield BuildContext(tree, {os.path.join(tree, p): entry[1]
                                      for p, entry in index.items() if entry[1]},
                               kept=True)
        finally:
            if held:
                await lock.release()

    def usage(self) -> list[BuildCacheUsage]:
        """The kept copies, as build cache records. Blocking."""
        found = []
        for name in sorted(os.listdir(self.root)):
            directory = os.path.join(self.root, name)
            lock = self.locks.get(name)
            found.append(BuildCacheUsage(
                name, "source.local", "local source for context",
                _index_size(_load_index(directory)), _created_ns(directory),
                int(_mtime(directory) * 1e9), lock is not None and not lock.free))
        return found

    async def prune(self) -> tuple[list[str], int]:
        """Remove the kept copies no build holds; their names and the bytes freed."""
        gone, size = [], 0
        for name in sorted(await asyncio.to_thread(os.listdir, self.root)):
            freed = await self._drop(name)
            if freed is not None:
                gone.append(name)
                size += freed
        return gone, size

    async def _drop(self, name: str) -> int | None:
        """Remove one kept copy unless a build holds it; the bytes freed."""
        lock = self.locks.setdefault(name, _SharedLock())
        if not lock.take():
            return None
        try:
            return await asyncio.to_thread(_remove_copy, os.path.join(self.root, name))
        finally:
            await lock.release()

    async def _bound(self, keep: str) -> None:
        """At most _KEPT_MAX copies: the least recently synced go first."""
        names = [n for n in await asyncio.to_thread(os.listdir, self.root) if n != keep]
        if len(names) < _KEPT_MAX:
            return
        used = await asyncio.to_thread(
            lambda: sorted(names, key=lambda n: _mtime(os.path.join(self.root, n))))
        for name in used[:len(names) - _KEPT_MAX + 1]:
            await self._drop(name)


def _mtime(path: str) -> float:
    try:
        return os.stat(path).st_mtime
    except OSError:
        return 0.0


def _remove_copy(directory: str) -> int:
    size = _index_size(_load_index(directory))
    shutil.rmtree(directory, ignore_errors=True)
    return size


def _index_size(index: dict[str, list[Any]]) -> int:
    return sum(e[0][1] for e in index.values() if e[0] is not None)


def _load_index(directory: str) -> dict[str, list[Any]]:
    """path → [identity, content digest or None]; empty when absent or untrusted."""
    entries = _index_file(directory).get("entries")
    return entries if isinstance(entries, dict) else {}


def _created_ns(directory: str) -> int:
    created = _index_file(directory).get("created_ns")
    return created if isinstance(created, int) else 0


def _index_file(directory: str) -> dict[str, Any]:
    try:
        with open(os.path.join(directory, "index.json"), encoding="utf-8") as f:
            document = json.load(f)
    except (OSError, ValueError):
        return {}
    return document if isinstance(document, dict) else {}


def _changed(manifest: Manifest, index: dict[str, list[Any]]) -> list[str]:
    """The entries the kept copy lacks or holds otherwise."""
    return [p for p, ident in manifest.entries.items()
            if ident is None or p not in index or index[p][0] != ident]


def _must_write(manifest: Manifest, index: dict[str, list[Any]]) -> bool:
    return bool(_changed(manifest, index)) or bool(index.keys() - manifest.entries.keys())


def _sync(directory: str, manifest: Manifest, index: dict[str, list[Any]],
          body: Iterator[bytes]) -> dict[str, list[Any]]:
    """Apply the sent tar to the kept copy (write-locked); its new index."""
    tree = os.path.join(directory, "tree")
    changed = set(_changed(manifest, index))
    removed = index.keys() - manifest.entries.keys()
    parents = {posixpath.dirname(p) for p in changed | removed} - removed - {""}
    if not changed | parents <= manifest.sent:
        _drain(body)
        raise Conflict("the kept build context changed during the transfer")
    created_ns = _created_ns(directory) if index else time.time_ns()
    index_path = os.path.join(directory, "index.json")
    if index:
        os.unlink(index_path)
        fsync_dir(directory)  # untrusted on disk before the copy changes
    else:
        shutil.rmtree(directory, ignore_errors=True)  # what a crash or cut left
    os.makedirs(directory, mode=0o700, exist_ok=True)
    try:
        if not os.path.isdir(tree):
            os.mkdir(tree, 0o700)  # as the tar's private directory (mkdtemp)
        for path in sorted(removed, reverse=True):
            _remove(tree, path)
        for path in sorted(changed):
            target = os.path.join(tree, path)
            ident = manifest.entries[path]
            if not (ident is not None and _is_dir(ident[0]) and os.path.isdir(target) and
                    not os.path.islink(target)):
                _remove(tree, path)
        # The parents' times change with their entries: their members set them back.
        digests = unpack_members(body, tree, changed | parents)
        fresh = {p: [ident, digests.get(os.path.normpath(os.path.join(tree, p)))
                     if p in changed else index[p][1]]
                 for p, ident in manifest.entries.items()}
        atomic_write(index_path, json.dumps({"created_ns": created_ns, "entries": fresh}),
                     0o600)
    except BaseException:
        shutil.rmtree(tree, ignore_errors=True)
        raise
    return fresh


def _is_dir(mode: int) -> bool:
    return mode & 0o170000 == 0o040000


def _remove(tree: str, path: str) -> None:
    """Remove ``path`` from the copy, never through a link: a manifest can name an
    entry below one of its links."""
    root = os.path.realpath(tree)
    parent = os.path.realpath(os.path.dirname(os.path.join(root, path)))
    if parent != root and not parent.startswith(root + "/"):
        raise InvalidParameter(f"invalid build context manifest: {path} is below a link")
    path = os.path.join(root, path)
    if os.path.isdir(path) and not os.path.islink(path):
        shutil.rmtree(path)
    elif os.path.lexists(path):
        os.unlink(path)


def _drain(body: Iterator[bytes]) -> None:
    """Read what is left of a body that brings nothing new (the client sent it anyway:
    its entries' parents, unchanged)."""
    for _ in body:
        pass

