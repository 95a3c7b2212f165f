"""Applying an image layer (a tar changeset) into an empty snapshot directory.

The directory becomes one overlayfs layer, so the OCI whiteouts of image-spec
layer.md ("Whiteouts", "Opaque Whiteout") are turned into overlayfs's own: a
``.wh.<name>`` entry becomes a 0/0 character device at ``<name>``, and a
``.wh..wh..opq`` entry marks its directory with ``trusted.overlay.opaque=y``
(kernel Documentation/filesystems/overlayfs.rst, "whiteouts and opaque
directories"). Each layer is unpacked on its own, never over its parents, like
Docker's overlay2 driver does: whatever a whiteout hides lives in a lower layer.

Safety: every write goes through a directory file descriptor opened component by
component with ``O_NOFOLLOW``, so no path in the archive, and no symlink the archive
created before, can make a write land outside the destination.
"""

from __future__ import annotations

import errno
import hashlib
import os
import posixpath
import shutil
import stat
import tarfile
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from typing import BinaryIO, TypeVar

from moorage.errors import InvalidParameter, MoorError, SystemFailure
from moorage.image.compression import CHUNK, decompressed

_T = TypeVar("_T")

_WHITEOUT_PREFIX = b".wh."
_OPAQUE_MARKER = b".wh..wh..opq"
# AUFS kept its bookkeeping under top-level ".wh..wh.*" names; Docker skips them.
_AUFS_META_PREFIX = b".wh..wh."
_OPAQUE_XATTR = "trusted.overlay.opaque"
_OVERLAY_XATTR_PREFIX = "trusted.overlay."
_PAX_XATTR_PREFIX = "SCHILY.xattr."

_DIR_FLAGS = os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC
_NEW_FILE_FLAGS = os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC
# Errors that say the machine is in trouble rather than that the layer is bad.
_SYSTEM_ERRNOS = frozenset(
    {errno.ENOSPC, errno.EDQUOT, errno.EIO, errno.EMFILE, errno.ENFILE, errno.ENOMEM, errno.EROFS}
)
# Open directories kept for reuse between entries; deeper ones are opened per entry.
_MAX_CACHED_DIRS = 64


@dataclass(frozen=True, slots=True)
class AppliedLayer:
    """What applying a layer produced.

    ``diff_id`` is the sha256 of the uncompressed tar stream (image-spec config.md,
    ``rootfs.diff_ids``); ``size`` is the sum of the entries' sizes, as Docker's
    ``UnpackLayer`` counts it.
    """

    diff_id: str
    size: int


def apply_layer(stream: BinaryIO, dest: str) -> AppliedLayer:
    """Unpack one layer from ``stream`` into the directory ``dest``.

    The stream may be a plain tar or gzip, zstd, xz or bzip2 compressed; the format
    is told by its magic bytes, not by a media type, because registries and tools
    are known to label layers wrongly (Docker sniffs too). The stream is read once
    and the diff ID is hashed on the way; bytes after the tar's end are hashed too.

    Precondition: ``dest`` is an existing, empty directory that nobody else writes
    to while this runs; it is trusted (it may itself be reached through symlinks).
    On any error, everything this call created in ``dest`` is removed (``dest``
    itself stays) and it raises ``InvalidParameter("layer: <entry>: <problem>")``
    for a bad or hostile layer, or ``SystemFailure`` when the host fails (disk full,
    I/O error). Not idempotent: a second call onto the same ``dest`` merges.
    """
    source = _TarSource(decompressed(stream, "layer"))
    try:
        size = _extract(source, dest)
        source.drain()
    except BaseException as error:
        _empty(dest, error)
        raise
    return AppliedLayer(diff_id=f"sha256:{source.hexdigest()}", size=size)


# --- the uncompressed stream ------------------------------------------------------


class _TarSource:
    """The file object tarfile reads from; hashes every uncompressed byte once."""

    def __init__(self, chunks: Iterator[bytes]) -> None:
        self._chunks = chunks
        self._chunk = b""
        self._pos = 0
        self._sha = hashlib.sha256()

    def at_end(self) -> bool:
        """Whether no byte is left (this pulls the next chunk to find out)."""
        while self._pos == len(self._chunk):
            # Decoders may yield empty chunks; only the end of input is the end.
            chunk = next(self._chunks, None)
            if chunk is None:
                return True
            self._chunk, self._pos = chunk, 0
            self._sha.update(chunk)
        return False

    def read(self, size: int) -> bytes:
        if self.at_end():
            return b""
        start, self._pos = self._pos, min(self._pos + size, len(self._chunk))
        if start == 0 and self._pos == len(self._chunk):
            return self._chunk
        return self._chunk[start : self._pos]

    def drain(self) -> None:
        """Hash what follows the tar's end marker: the diff ID covers the whole stream."""
        for chunk in self._chunks:
            self._sha.update(chunk)

    def hexdigest(self) -> str:
        return self._sha.hexdigest()


# --- extraction -------------------------------------------------------------------


class _Refused(Exception):
    """An entry that this layer must not contain; the text says why."""


class _StrictTarInfo(tarfile.TarInfo):
    """tarfile quietly ends the archive at a corrupt or cut-off header; Go's
    archive/tar, and so Docker, fails. Fail too, so a damaged layer is not
    mistaken for a shorter one."""

    __slots__ = ()

    @classmethod
    def fromtarfile(cls, tar: tarfile.TarFile) -> tarfile.TarInfo:
        try:
            return super().fromtarfile(tar)
        except (tarfile.InvalidHeaderError, tarfile.TruncatedHeaderError) as e:
            raise InvalidParameter(f"layer: invalid tar stream: {e}") from None


def _extract(source: _TarSource, dest: str) -> int:
    root = os.open(dest, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
    extractor = _Extractor(root)
    try:
        if source.at_end():
            return 0  # an empty stream is an empty layer, as for Go's archive/tar
        with tarfile.open(
            fileobj=source,  # type: ignore[arg-type]
            mode="r|",
            tarinfo=_StrictTarInfo,
            encoding="utf-8",
            errors="surrogateescape",
        ) as tar:
            return extractor.run(tar)
    except tarfile.TarError as e:
        raise InvalidParameter(f"layer: invalid tar stream: {e}") from None
    finally:
        extractor.close()
        os.close(root)


class _Extractor:
    def __init__(self, root: int) -> None:
        self._root = root
        self._walker = _DirWalker(root)
        # Directory attributes are set last: creating children changes a
        # directory's mtime, and a read-only mode would get in our way.
        self._dirs: dict[tuple[bytes, ...], tarfile.TarInfo] = {}
        self._owner = _creation_owner(root)

    def close(self) -> None:
        self._walker.close()

    def run(self, tar: tarfile.TarFile) -> int:
        size = 0
        while (member := tar.next()) is not None:
            # tarfile keeps every member it has read; a layer can have millions.
            tar.members.clear()
            size += member.size
            try:
                self._apply(tar, member)
            except _Refused as e:
                raise InvalidParameter(f"layer: {_printable(member.name)}: {e}") from None
            except OSError as e:
                raise _host_error(member.name, e) from e
            except tarfile.TarError as e:
                raise InvalidParameter(
                    f"layer: {_printable(member.name)}: invalid tar stream: {e}"
                ) from None
        for path in sorted(self._dirs, reverse=True):
            member = self._dirs[path]
            try:
                self._finish_dir(path, member)
            except OSError as e:
                raise _host_error(member.name, e) from e
        return size

    def _apply(self, tar: tarfile.TarFile, member: tarfile.TarInfo) -> None:
        path = _components(member.name, "path")
        if not path:
            if not member.isdir():
                raise _Refused("only a directory can be the layer's root")
            _set_xattrs(self._root, _xattrs(member))
            self._dirs[path] = member
            return
        if path[0].startswith(_AUFS_META_PREFIX) and path[0] != _OPAQUE_MARKER:
            return
        parent = self._walker.parent(path[:-1], create=True)
        name = path[-1]
        if name.startswith(_WHITEOUT_PREFIX):
            self._whiteout(parent, name)
        elif member.isreg():
            self._file(tar, member, parent, name)
        elif member.isdir():
            self._dir(member, parent, name)
            self._dirs[path] = member
        elif member.issym():
            target = member.linkname.encode("utf-8", "surrogateescape")
            # Stored as is and never followed here: where it points is the
            # container's business, resolved inside its root.
            _replacing(parent, name, lambda: os.symlink(target, name, dir_fd=parent))
            self._set_attributes_at(parent, name, member, chmod=False)
        elif member.islnk():
            self._hardlink(member, parent, name)
        elif member.ischr() or member.isblk():
            # Device nodes are legitimate in images (some bases ship /dev/null) and
            # Docker creates them when it runs as root. mknod only makes an inode
            # inside dest; it is never opened here, so nothing is written through
            # it, and containers reach devices only through the device cgroup.
            kind = stat.S_IFCHR if member.ischr() else stat.S_IFBLK
            device = os.makedev(member.devmajor, member.devminor)
            _replacing(parent, name, lambda: os.mknod(name, kind, device, dir_fd=parent))
            self._set_attributes_at(parent, name, member, chmod=True)
        elif member.isfifo():
            _replacing(parent, name, lambda: os.mkfifo(name, 0o600, dir_fd=parent))
            self._set_attributes_at(parent, name, member, chmod=True)
        else:
            raise _Refused(f"unsupported entry type {member.type!r}")

    def _whiteout(self, parent: int, name: bytes) -> None:
        if name == _OPAQUE_MARKER:
            os.setxattr(parent, _OPAQUE_XATTR, b"y")
            return
        hidden = name[len(_WHITEOUT_PREFIX) :]
        if hidden in (b"", b".", b".."):
            raise _Refused("invalid whiteout name")  # image-spec: "SHOULD return an error"
        try:
            os.mknod(hidden, stat.S_IFCHR, 0, dir_fd=parent)
        except FileExistsError:
            # image-spec: a whiteout hides lower layers only, never its own layer's files.
            if not _is_whiteout(os.stat(hidden, dir_fd=parent, follow_symlinks=False)):
                raise _Refused("whiteout of a path the layer itself creates") from None

    def _file(
        self, tar: tarfile.TarFile, member: tarfile.TarInfo, parent: int, name: bytes
    ) -> None:
        fd = _replacing(parent, name, lambda: os.open(name, _NEW_FILE_FLAGS, 0o600, dir_fd=parent))
        try:
            data = tar.extractfile(member)
            assert data is not None  # always a file object for a regular member
            while chunk := data.read(CHUNK):
                _write_all(fd, chunk)
            self._set_attributes(fd, member, _xattrs(member))
        finally:
            os.close(fd)

    def _dir(self, member: tarfile.TarInfo, parent: int, name: bytes) -> None:
        opaque = False
        try:
            os.mkdir(name, 0o700, dir_fd=parent)
        except FileExistsError:
            existing = os.stat(name, dir_fd=parent, follow_symlinks=False)
            if not stat.S_ISDIR(existing.st_mode):
                # Removing a path and creating a directory there hides what lower
                # layers had below it: the new directory must be opaque.
                opaque = _is_whiteout(existing)
                os.unlink(name, dir_fd=parent)
                os.mkdir(name, 0o700, dir_fd=parent)
        xattrs = _xattrs(member)
        if not opaque and not xattrs:
            return
        fd = os.open(name, _DIR_FLAGS, dir_fd=parent)
        try:
            if opaque:
                os.setxattr(fd, _OPAQUE_XATTR, b"y")
            _set_xattrs(fd, xattrs)
        finally:
            os.close(fd)

    def _hardlink(self, member: tarfile.TarInfo, parent: int, name: bytes) -> None:
        target = _components(member.linkname, f"hardlink target {_printable(member.linkname)}")
        if not target:
            raise _Refused("hardlink to the layer's root")
        # A one-off walk: the main walker's cache must stay a chain of the
        # current entry's parents.
        walker = _DirWalker(self._root)
        try:
            try:
                source_dir = walker.parent(target[:-1], create=False)
            except _Refused as e:
                raise _Refused(f"hardlink target {_printable(member.linkname)}: {e}") from None
            _replacing(
                parent,
                name,
                lambda: os.link(
                    target[-1],
                    name,
                    src_dir_fd=source_dir,
                    dst_dir_fd=parent,
                    follow_symlinks=False,
                ),
            )
        except FileNotFoundError:
            raise _Refused(
                f"hardlink target {_printable(member.linkname)} is not in the layer"
            ) from None
        finally:
            walker.close()

    def _finish_dir(self, path: tuple[bytes, ...], member: tarfile.TarInfo) -> None:
        if not path:
            self._set_attributes(self._root, member, [])
            return
        # A later entry may have replaced the directory, or a parent of it, with
        # something else; then these attributes no longer apply to anything.
        try:
            parent = self._walker.parent(path[:-1], create=False)
            fd = os.open(path[-1], _DIR_FLAGS, dir_fd=parent)
        except _Refused:
            return
        except OSError as e:
            if e.errno in (errno.ENOENT, errno.ENOTDIR, errno.ELOOP):
                return
            raise
        try:
            self._set_attributes(fd, member, [])  # its xattrs were set at creation
        finally:
            os.close(fd)

    def _set_attributes(
        self, fd: int, member: tarfile.TarInfo, xattrs: list[tuple[str, bytes]]
    ) -> None:
        # Docker's order: chown clears set-id bits and security.capability, so it
        # comes before xattrs and chmod.
        if (member.uid, member.gid) != self._owner:
            os.fchown(fd, member.uid, member.gid)
        _set_xattrs(fd, xattrs)
        os.fchmod(fd, member.mode & 0o7777)
        os.utime(fd, ns=_times(member))

    def _set_attributes_at(
        self, parent: int, name: bytes, member: tarfile.TarInfo, *, chmod: bool
    ) -> None:
        """Attributes of an inode that must not be opened (symlink, device, fifo)."""
        if (member.uid, member.gid) != self._owner:
            os.chown(name, member.uid, member.gid, dir_fd=parent, follow_symlinks=False)
        xattrs = _xattrs(member)
        if xattrs:
            # There is no lsetxattrat; the /proc link names the directory we hold.
            _set_xattrs(b"/proc/self/fd/%d/%s" % (parent, name), xattrs)
        if chmod:
            os.chmod(name, member.mode & 0o7777, dir_fd=parent)
        os.utime(name, ns=_times(member), dir_fd=parent, follow_symlinks=False)


class _DirWalker:
    """Opens directories below the root one component at a time, refusing symlinks.

    Keeps the chain it opened last, because tar entries come grouped by directory.
    Whoever replaces a path must first have asked for its parent, which cuts the
    chain there, so no open directory in it can be a replaced one.
    """

    def __init__(self, root: int) -> None:
        self._root = root
        self._names: list[bytes] = []
        self._fds: list[int] = []
        self._spill: int | None = None  # a directory deeper than the cache keeps

    def parent(self, path: Sequence[bytes], *, create: bool) -> int:
        """An fd of the directory at ``path`` (owned by the walker, valid until the next call).

        With ``create``, missing directories are made with mode 0755, as Docker does
        for entries whose parents the archive lacks.
        """
        self._close_spill()
        keep = 0
        while keep < min(len(path), len(self._names)) and self._names[keep] == path[keep]:
            keep += 1
        self._truncate(keep)
        fd = self._fds[-1] if self._fds else self._root
        for depth in range(keep, len(path)):
            child = self._open(fd, path, depth, create)
            if len(self._fds) < _MAX_CACHED_DIRS:
                self._names.append(path[depth])
                self._fds.append(child)
            else:
                self._close_spill()
                self._spill = child
            fd = child
        return fd

    def close(self) -> None:
        self._close_spill()
        self._truncate(0)

    def _open(self, fd: int, path: Sequence[bytes], depth: int, create: bool) -> int:
        name = path[depth]
        try:
            try:
                return os.open(name, _DIR_FLAGS, dir_fd=fd)
            except FileNotFoundError:
                if not create:
                    raise
            os.mkdir(name, 0o755, dir_fd=fd)
            child = os.open(name, _DIR_FLAGS, dir_fd=fd)
            os.fchmod(child, 0o755)  # whatever the umask
            return child
        except OSError as e:
            if e.errno not in (errno.ELOOP, errno.ENOTDIR):
                raise
            # O_DIRECTORY|O_NOFOLLOW gives ENOTDIR for a symlink too; look closer.
            mode = os.stat(name, dir_fd=fd, follow_symlinks=False).st_mode
            what = "a symlink" if stat.S_ISLNK(mode) else "not a directory"
            shown = _printable(b"/".join(path[: depth + 1]).decode("utf-8", "surrogateescape"))
            raise _Refused(f"parent {shown} is {what}") from None

    def _truncate(self, keep: int) -> None:
        while len(self._fds) > keep:
            os.close(self._fds.pop())
            self._names.pop()

    def _close_spill(self) -> None:
        if self._spill is not None:
            os.close(self._spill)
            self._spill = None


# --- helpers ----------------------------------------------------------------------


def _components(name: str, what: str) -> tuple[bytes, ...]:
    """Split an archive path into clean components below the root.

    Like Docker (Go's filepath.Clean, then a check): an absolute path is taken
    relative to the root and ".." cannot climb above a rooted path, but a relative
    path that climbs out is refused.
    """
    raw = name.encode("utf-8", "surrogateescape")
    if b"\0" in raw:
        raise _Refused(f"{what} contains a NUL byte")
    clean = posixpath.normpath(raw)
    if clean.startswith(b"/"):
        clean = clean.lstrip(b"/") or b"."
    elif clean == b".." or clean.startswith(b"../"):
        raise _Refused(f"{what} escapes the layer's root")
    return () if clean == b"." else tuple(clean.split(b"/"))


def _replacing(parent: int, name: bytes, make: Callable[[], _T]) -> _T:
    """Create with ``make``; if the name is taken, remove what is there and retry.

    image-spec "Changeset over existing files": unlink, then recreate. Trying first
    saves a stat per entry in the usual case, an empty destination.
    """
    try:
        return make()
    except FileExistsError:
        _remove(parent, name)
        return make()


def _remove(parent: int, name: bytes | str) -> None:
    if stat.S_ISDIR(os.stat(name, dir_fd=parent, follow_symlinks=False).st_mode):
        shutil.rmtree(name, dir_fd=parent)
    else:
        os.unlink(name, dir_fd=parent)


def _empty(dest: str, error: BaseException) -> None:
    """Remove everything below ``dest``; a failure to do so is noted on ``error``."""
    try:
        fd = os.open(dest, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
        try:
            for name in os.listdir(fd):
                _remove(fd, name)
        finally:
            os.close(fd)
    except OSError as e:
        error.add_note(f"cleaning {dest} failed: {e}")


def _creation_owner(root: int) -> tuple[int, int] | None:
    """The owner new inodes get, if certain, so chown can be skipped when it matches.

    Directories made here carry no set-group-ID bit until the very end, so the
    root decides: without that bit, and with our group, new inodes are ours.
    """
    st = os.fstat(root)
    if st.st_mode & stat.S_ISGID or st.st_gid != os.getegid():
        return None
    return os.geteuid(), os.getegid()


def _xattrs(member: tarfile.TarInfo) -> list[tuple[str, bytes]]:
    xattrs = []
    for key, value in member.pax_headers.items():
        if not key.startswith(_PAX_XATTR_PREFIX):
            continue
        name = key[len(_PAX_XATTR_PREFIX) :]
        if name.startswith(_OVERLAY_XATTR_PREFIX):
            # overlayfs's own attributes (opaque, redirect, metacopy…) would steer
            # lookups across layers; only whiteout entries may produce them.
            raise _Refused(f"xattr {name} is reserved for overlayfs")
        # tarfile decoded the value with surrogateescape; this gives the bytes back.
        xattrs.append((name, value.encode("utf-8", "surrogateescape")))
    return xattrs


def _set_xattrs(target: int | bytes, xattrs: list[tuple[str, bytes]]) -> None:
    for name, value in xattrs:
        try:
            # A path is a /proc link to a symlink or device: never follow it.
            os.setxattr(target, name, value, follow_symlinks=isinstance(target, int))
        except OSError as e:
            # Like Docker: a filesystem that cannot store an attribute (or a
            # namespace we may not write) loses it rather than failing the pull.
            if e.errno not in (errno.ENOTSUP, errno.EPERM):
                raise


def _times(member: tarfile.TarInfo) -> tuple[int, int]:
    mtime = member.mtime
    ns = mtime * 1_000_000_000 if isinstance(mtime, int) else round(mtime * 1e9)
    return ns, ns


def _is_whiteout(st: os.stat_result) -> bool:
    return stat.S_ISCHR(st.st_mode) and st.st_rdev == 0


def _write_all(fd: int, data: bytes) -> None:
    view = memoryview(data)
    while view:
        view = view[os.write(fd, view) :]


def _printable(name: str) -> str:
    """Keep an error message on one line whatever the archive put in a name."""
    return "".join(c if c.isprintable() else repr(c)[1:-1] for c in name)


def _host_error(name: str, e: OSError) -> MoorError:
    message = f"layer: {_printable(name)}: {e.strerror or e}"
    if e.errno in _SYSTEM_ERRNOS:
        return SystemFailure(message)
    return InvalidParameter(message)
