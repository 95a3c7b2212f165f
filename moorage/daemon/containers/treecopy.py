"""Files in and out of a container's filesystem as tar, never leaving its root.

Every path is resolved from a directory fd of the container's root with openat2's
RESOLVE_IN_ROOT (symlinks and ".." stay inside, as if chrooted) and without magic
links (/proc/<pid>/root inside the container leads nowhere). Below the resolved
directory each step opens with O_NOFOLLOW at its parent's fd: a symlink the running
container swaps in between two steps fails the step instead of being followed.
Blocking: callers run these in a thread.
"""

from __future__ import annotations

import contextlib
import errno
import os
import posixpath
import queue
import shutil
import stat
import tarfile
from collections.abc import Iterator
from typing import IO

from moorage.daemon.containers import tarstream
from moorage.errors import InvalidParameter, SystemFailure, write_failed
from moorage.image import tarwriter
from moorage.linux import libc
from moorage.timefmt import format_ns

_RESOLVE = libc.RESOLVE_IN_ROOT | libc.RESOLVE_NO_MAGICLINKS
_PATH = os.O_PATH | os.O_CLOEXEC
_DIR = os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC
_CHUNK = 1 << 20
# Go's fs.FileMode bits, as the path-stat header carries the mode.
_GO_MODE = ((stat.S_ISDIR, 1 << 31), (stat.S_ISLNK, 1 << 27), (stat.S_ISFIFO, 1 << 25),
            (stat.S_ISSOCK, 1 << 24), (stat.S_ISBLK, 1 << 26),
            (stat.S_ISCHR, (1 << 26) | (1 << 21)))


class Missing(Exception):
    """The path does not exist in the container."""


def _open(root: int, path: str, flags: int) -> int:
    try:
        return libc.openat2(root, path, flags, _RESOLVE)
    except FileNotFoundError:
        raise Missing(path) from None


def open_in_root(rootfs: str, path: str, flags: int) -> int:
    """`path` opened as the container would see it, from its root's host path."""
    root = os.open(rootfs, _PATH | os.O_DIRECTORY)
    try:
        return _open(root, clean(path), flags)
    finally:
        os.close(root)


def read_table(root: int, path: str) -> list[list[str]]:
    """The fields of a colon-separated file of the root (/etc/passwd, /etc/group), its
    links followed inside the root only; none when there is no such file.

    The image may make /etc/passwd a link to the host's files: the kernel resolves it
    as inside the container (openat2's RESOLVE_IN_ROOT), where ".." stops at the root.
    """
    try:
        fd = _open(root, path, os.O_RDONLY | os.O_CLOEXEC)
    except (OSError, Missing):
        return []
    with open(fd, errors="surrogateescape") as f:
        return [line.split(":") for line in f.read().splitlines()
                if line and not line.startswith("#") and line.count(":") >= 2]


def _writer(root: int, out: IO[bytes]) -> tarwriter.TarWriter:
    return tarwriter.TarWriter(out, tarwriter.Owners.from_tables(
        read_table(root, "/etc/passwd"), read_table(root, "/etc/group")))


def go_mode(mode: int) -> int:
    bits = stat.S_IMODE(mode) & 0o777
    for test, flag in _GO_MODE:
        if test(mode):
            bits |= flag
    for special, flag in ((stat.S_ISUID, 1 << 23), (stat.S_ISGID, 1 << 22),
                          (stat.S_ISVTX, 1 << 20)):
        if mode & special:
            bits |= flag
    return bits


def clean(path: str) -> str:
    """The absolute, normal form of a path in the container ("//x" is "/x" there too)."""
    return posixpath.normpath("/" + path.lstrip("/"))


def _follows(path: str) -> bool:
    """A trailing "/" or "/." asks for what a symlink points to, not the link."""
    return path.endswith(("/", "/."))


def path_stat(root: int, path: str) -> dict:
    """X-Docker-Container-Path-Stat: name, size, Go mode, mtime and linkTarget."""
    wanted = clean(path)
    fd = _open(root, wanted, _PATH | (0 if _follows(path) else os.O_NOFOLLOW))
    try:
        info = os.fstat(fd)
        target = ""
        if stat.S_ISLNK(info.st_mode):
            link = os.readlink("", dir_fd=fd)
            target = posixpath.normpath(posixpath.join(posixpath.dirname(wanted), link))
    finally:
        os.close(fd)
    name = "." if path.endswith("/.") else posixpath.basename(wanted) or "/"
    return {"name": name, "size": info.st_size, "mode": go_mode(info.st_mode),
            "mtime": format_ns(info.st_mtime_ns), "linkTarget": target}


class ChunkSink:
    """A write-only file whose bytes go out as chunks through a bounded queue, so a tar
    made in a thread streams to the client without being held whole."""

    def __init__(self, out: queue.Queue[bytes | None]) -> None:
        self.out, self.buffer = out, bytearray()

    def write(self, data: bytes) -> int:
        if not self.buffer and len(data) >= _CHUNK:
            self.out.put(data)  # a file's data goes as it was read, uncopied
            return len(data)
        self.buffer += data
        if len(self.buffer) >= _CHUNK:
            self.out.put(bytes(self.buffer))
            self.buffer.clear()
        return len(data)

    def close(self) -> None:
        if self.buffer:
            self.out.put(bytes(self.buffer))
            self.buffer.clear()


def write_archive(root: int, path: str, out: IO[bytes],
                  opaque: frozenset[str] = frozenset()) -> None:
    """The tar docker cp reads: the resource named by its base name, a directory with
    everything under it but what is under the `opaque` directories (absolute paths in
    the root), which appear empty."""
    wanted = clean(path)
    follow = _follows(path)
    # dockerd names entries after the path's base name: "/" for the root ("/bin"…),
    # "." for a path ending in "/." ("./bin"…)
    name = "." if path.endswith("/.") else posixpath.basename(wanted) or "/"
    fd = _open(root, wanted, _PATH | (0 if follow else os.O_NOFOLLOW))
    try:
        with contextlib.closing(_writer(root, out)) as tar:
            info = os.fstat(fd)
            if stat.S_ISDIR(info.st_mode):
                top = os.open(".", _DIR, dir_fd=fd)
                try:
                    _add(tar, name, info, None)
                    if wanted not in opaque:
                        _walk(tar, top, name, wanted, opaque)
                finally:
                    os.close(top)
            elif stat.S_ISLNK(info.st_mode):
                _add(tar, name, info, os.readlink("", dir_fd=fd))
            else:
                # The O_PATH fd reopened for reading: the same inode, whatever the path
                # now names.
                readable = os.open(f"/proc/self/fd/{fd}", os.O_RDONLY | os.O_CLOEXEC)
                try:
                    _add_file(tar, name, os.fstat(readable), readable)
                finally:
                    os.close(readable)
    finally:
        os.close(fd)


def write_tree(root: int, out: IO[bytes]) -> None:
    """The whole tree under `root`, its entries named relative to it (docker export)."""
    top = os.open(".", _DIR, dir_fd=root)
    try:
        with contextlib.closing(_writer(root, out)) as tar:
            _walk(tar, top, "", "/", frozenset())
    finally:
        os.close(top)


def _walk(tar: tarwriter.TarWriter, directory: int, prefix: str, path: str,
          opaque: frozenset[str]) -> None:
    """`directory`'s entries under `prefix` in the tar; `path`: where it is in the root."""
    with os.scandir(directory) as entries:
        names = sorted(e.name for e in entries)
    for entry in names:
        arcname = f"{prefix.rstrip('/')}/{entry}" if prefix else entry
        try:
            info = os.stat(entry, dir_fd=directory, follow_symlinks=False)
            if stat.S_ISDIR(info.st_mode):
                child = os.open(entry, _DIR, dir_fd=directory)
                try:
                    _add(tar, arcname, info, None)
                    inner = posixpath.join(path, entry)
                    if inner not in opaque:
                        _walk(tar, child, arcname, inner, opaque)
                finally:
                    os.close(child)
            elif (earlier := tar.hardlink(arcname, info)) is not None:
                member = _header(arcname, info, None)
                member.type, member.linkname = tarfile.LNKTYPE, earlier
                tar.addfile(member)
            elif stat.S_ISLNK(info.st_mode):
                _add(tar, arcname, info, os.readlink(entry, dir_fd=directory))
            elif stat.S_ISREG(info.st_mode):
                fd = os.open(entry, os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC | os.O_NONBLOCK,
                             dir_fd=directory)
                try:
                    _add_file(tar, arcname, os.fstat(fd), fd)
                finally:
                    os.close(fd)
            else:
                _add(tar, arcname, info, None)
        except (FileNotFoundError, NotADirectoryError):
            continue  # gone or swapped while the container runs: as if never there
        except OSError as err:
            if err.errno != errno.ELOOP:
                raise


def _header(name: str, info: os.stat_result, link: str | None) -> tarfile.TarInfo:
    directory = stat.S_ISDIR(info.st_mode)
    member = tarfile.TarInfo(name + "/" if directory and not name.endswith("/") else name)
    member.mode = info.st_mode  # the file-type bits too, which tarwriter writes
    member.uid, member.gid = info.st_uid, info.st_gid
    member.mtime = int(info.st_mtime)  # whole seconds, as moby's FileInfoHeader
    if directory:
        member.type = tarfile.DIRTYPE
    elif link is not None:
        member.type, member.linkname = tarfile.SYMTYPE, link
    elif stat.S_ISFIFO(info.st_mode):
        member.type = tarfile.FIFOTYPE
    elif stat.S_ISCHR(info.st_mode) or stat.S_ISBLK(info.st_mode):
        member.type = tarfile.CHRTYPE if stat.S_ISCHR(info.st_mode) else tarfile.BLKTYPE
        member.devmajor, member.devminor = os.major(info.st_rdev), os.minor(info.st_rdev)
    return member


def _add(tar: tarwriter.TarWriter, name: str, info: os.stat_result, link: str | None) -> None:
    if not stat.S_ISSOCK(info.st_mode):  # tar has no sockets; docker cp leaves them out
        tar.addfile(_header(name, info, link))


def _add_file(tar: tarwriter.TarWriter, name: str, info: os.stat_result, fd: int) -> None:
    """A regular file from `fd`, open for reading (the caller keeps it)."""
    member = _header(name, info, None)
    member.size = info.st_size
    tar.addfile(member, fd)


def extract(root: int, dest: str, source: tarstream.Source, *, no_overwrite_dir_non_dir: bool,
            owner: tuple[int, int] | None) -> None:
    """Unpack a tar stream (any compression) into the directory `dest`. An entry named
    absolutely or with ".." is refused before anything of it is written; `owner`
    replaces the archive's uid/gid (copyUIDGID)."""
    wanted = clean(dest)
    try:
        top = _open(root, wanted, _PATH | os.O_DIRECTORY)
    except NotADirectoryError:
        raise InvalidParameter("extraction point is not a directory") from None
    os.close(top)
    parents = _Parents(root, wanted)
    try:
        for member, data in _entries(source):
            parts = _parts(member.name)
            if not parts:
                continue
            parent = parents.get(parts[:-1])
            shown = posixpath.join(wanted, *parts)
            try:
                _place(member, data, parent, parts[-1], shown, no_overwrite_dir_non_dir,
                       owner, parents)
            except OSError as err:
                if err.errno not in (errno.ENOSPC, errno.EDQUOT):
                    raise
                # dockerd's words, but for its untar process's "(exit status 1)".
                raise SystemFailure(f"Error processing tar file: {write_failed(err, shown)}"
                                    ) from None
    except tarfile.ReadError as err:
        if str(err) != "empty file":  # no body: nothing to unpack, as dockerd
            raise InvalidParameter(f"Error processing tar file: {err}") from None
    finally:
        parents.close()


class _TarData:
    """A member's data through tarfile (compressed streams)."""

    def __init__(self, tar: tarfile.TarFile, member: tarfile.TarInfo) -> None:
        self.tar, self.member = tar, member

    def write_to(self, fd: int) -> None:
        data = self.tar.extractfile(self.member)
        while data is not None and (piece := data.read(_CHUNK)):
            os.write(fd, piece)


def _entries(source: tarstream.Source
             ) -> Iterator[tuple[tarfile.TarInfo, tarstream.Data | _TarData]]:
    if tarstream.is_plain(source):
        yield from tarstream.members(source)
        return
    with tarfile.open(fileobj=source, mode="r|*", bufsize=_CHUNK) as tar:  # type: ignore[call-overload]
        for member in tar:
            yield member, _TarData(tar, member)


def _parts(name: str) -> list[str]:
    if name.startswith("/") or ".." in name.split("/"):
        raise InvalidParameter(f"refusing archive entry {name!r}: it names a path outside "
                               "the extraction point")
    return [p for p in name.split("/") if p and p != "."]


class _Parents:
    """Directory fds below the extraction point, made when the archive lacks them; the
    last one kept, as entries come grouped by directory."""

    def __init__(self, root: int, dest: str) -> None:
        self.root, self.dest = root, dest
        self.key: tuple[str, ...] | None = None
        self.fd = -1

    def get(self, parts: list[str]) -> int:
        key = tuple(parts)
        if key == self.key:
            return self.fd
        self.close()
        fd = _open(self.root, self.dest, _PATH | os.O_DIRECTORY)
        for part in parts:  # each step at its parent, never through a symlink
            try:
                child = os.open(part, _DIR, dir_fd=fd)
            except FileNotFoundError:
                os.mkdir(part, 0o755, dir_fd=fd)
                child = os.open(part, _DIR, dir_fd=fd)
            except OSError as err:
                os.close(fd)
                if err.errno in (errno.ELOOP, errno.ENOTDIR):
                    raise InvalidParameter(f"cannot extract under {'/'.join(parts)}: "
                                           "not a directory") from None
                raise
            os.close(fd)
            fd = child
        self.key, self.fd = key, fd
        return fd

    def close(self) -> None:
        if self.fd >= 0:
            os.close(self.fd)
        self.key, self.fd = None, -1


def _place(member: tarfile.TarInfo, data: tarstream.Data | _TarData, parent: int, name: str,
           shown: str, no_overwrite: bool, owner: tuple[int, int] | None,
           parents: _Parents) -> None:
    try:
        existing: os.stat_result | None = os.stat(name, dir_fd=parent, follow_symlinks=False)
    except FileNotFoundError:
        existing = None
    is_dir = member.isdir()
    if existing is not None:
        was_dir = stat.S_ISDIR(existing.st_mode)
        if no_overwrite and was_dir and not is_dir:
            raise InvalidParameter(f'cannot overwrite directory "{shown}" with non-directory '
                                   f'"{shown}"')
        if no_overwrite and not was_dir and is_dir:
            raise InvalidParameter(f'cannot overwrite non-directory "{shown}" with directory '
                                   f'"{shown}"')
        if was_dir and not is_dir:
            shutil.rmtree(name, dir_fd=parent)
        elif not was_dir:
            os.unlink(name, dir_fd=parent)
    uid, gid = owner or (member.uid, member.gid)
    if is_dir:
        if existing is None or not stat.S_ISDIR(existing.st_mode):
            os.mkdir(name, 0o700, dir_fd=parent)
        fd = os.open(name, _DIR, dir_fd=parent)
        try:
            os.fchown(fd, uid, gid)
            os.fchmod(fd, member.mode & 0o7777)
        finally:
            os.close(fd)
        parents.close()  # a cached fd may sit under a directory just replaced
    elif member.isreg():
        fd = os.open(name, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW
                     | os.O_CLOEXEC, 0o600, dir_fd=parent)
        try:
            data.write_to(fd)
            os.fchown(fd, uid, gid)
            os.fchmod(fd, member.mode & 0o7777)
            os.utime(fd, (member.mtime, member.mtime))
        finally:
            os.close(fd)
    elif member.issym():
        os.symlink(member.linkname, name, dir_fd=parent)
        os.chown(name, uid, gid, dir_fd=parent, follow_symlinks=False)
    elif member.islnk():
        target = _parts(member.linkname)
        if not target:
            raise InvalidParameter(f"refusing hard link {member.name!r} to the extraction "
                                   "point itself")
        source_parent = _open(parents.root, posixpath.join(parents.dest, *target[:-1]),
                              _PATH | os.O_DIRECTORY)
        try:
            os.link(target[-1], name, src_dir_fd=source_parent, dst_dir_fd=parent,
                    follow_symlinks=False)
        finally:
            os.close(source_parent)
    elif member.isfifo():
        os.mkfifo(name, member.mode & 0o7777, dir_fd=parent)
        os.chown(name, uid, gid, dir_fd=parent, follow_symlinks=False)
    elif member.ischr() or member.isblk():
        kind = stat.S_IFCHR if member.ischr() else stat.S_IFBLK
        os.mknod(name, kind | (member.mode & 0o7777),
                 os.makedev(member.devmajor, member.devminor), dir_fd=parent)
        os.chown(name, uid, gid, dir_fd=parent, follow_symlinks=False)
