"""A writable overlay layer as an image layer: its changes (``docker diff``) and its tar.

The upper directory of an overlay mount holds what a container changed, in
overlayfs's format: a deleted name is a 0/0 character device, a directory that
replaced one below is marked ``trusted.overlay.opaque=y``. An image layer says
the same with OCI whiteouts (image-spec layer.md): ``.wh.<name>`` and
``.wh..wh..opq``. Docker's overlay2 driver tars its upper directory with that
conversion (moby pkg/archive, OverlayWhiteoutFormat); its ``docker diff`` walks
the upper directory against the lower ones (pkg/archive changes.go with
overlayDeletedFile). Both are mirrored here.

The tar is deterministic: entries sorted by path, no atime/ctime, no user or
group names (dockerd's come from the host's user database, so the same tree would give
another diff ID on another host), hard links recorded as links, so the same tree always
gives the same diff ID (a rebuild from the same inputs makes the same layer). Its
headers are otherwise dockerd's (tarwriter: the file-type bits in the mode...).
"""

from __future__ import annotations

import contextlib
import os
import stat
import tarfile
from collections.abc import Iterator
from dataclasses import dataclass
from typing import BinaryIO

from moorage.image.tarwriter import TarWriter

_OPAQUE_XATTR = "trusted.overlay.opaque"
_WHITEOUT_PREFIX = ".wh."
_OPAQUE_MARKER = ".wh..wh..opq"
# The only xattr an image layer carries from a container's files (file capabilities).
_KEPT_XATTRS = ("security.capability",)


@dataclass(frozen=True, slots=True)
class Change:
    path: str
    kind: int  # 0 modified, 1 added, 2 deleted (the Engine API's ContainerChangeResponseItem)


CHANGE_MODIFY, CHANGE_ADD, CHANGE_DELETE = 0, 1, 2


def _is_whiteout(st: os.stat_result) -> bool:
    return stat.S_ISCHR(st.st_mode) and st.st_rdev == 0


def _is_opaque(path: str) -> bool:
    try:
        return os.getxattr(path, _OPAQUE_XATTR, follow_symlinks=False) == b"y"
    except OSError:
        return False


def _walk_below(rel: str, full: str) -> Iterator[tuple[str, os.stat_result]]:
    for name in sorted(os.listdir(full)):
        child_rel = rel + "/" + name
        child = os.path.join(full, name)
        st = os.lstat(child)
        yield child_rel, st
        if stat.S_ISDIR(st.st_mode):
            yield from _walk_below(child_rel, child)


def walk(root: str) -> Iterator[tuple[str, os.stat_result]]:
    """Every entry below ``root`` as ("/rel/path", lstat), in filepath.Walk order."""
    for name in sorted(os.listdir(root)):
        child = os.path.join(root, name)
        st = os.lstat(child)
        yield "/" + name, st
        if stat.S_ISDIR(st.st_mode):
            yield from _walk_below("/" + name, child)


def _lower_stat(lowers: list[str], path: str) -> os.stat_result | None:
    """The entry ``path`` in the topmost lower layer that has it (os.Stat follows links,
    as moby's changes does)."""
    for layer in lowers:
        try:
            return os.stat(layer + path)
        except (FileNotFoundError, NotADirectoryError):
            continue
    return None


# What the engine mounts over a container's rootfs. Their mount points are in the init
# layer below the container's (image/initlayer.py), so neither ``docker diff`` nor a
# commit sees them; containers made before it, and the CRI's, have them in their own.
INIT_PATHS = frozenset({"/etc/hostname", "/etc/hosts", "/etc/resolv.conf"})


def changes(upper: str, lowers: list[str]) -> list[Change]:
    """What ``docker diff`` lists for the upper directory ``upper`` on ``lowers`` (top
    first), sorted by path. dockerd 20.10's overlay2 answers from its naive diff
    (pkg/archive ChangesDirs): a directory is modified when its mode or owner
    changed or something inside it did, and a directory that replaced one below
    (opaque) lists the entries it hides as deleted."""
    found: dict[str, int] = {}
    for path, st in walk(upper):
        if path in INIT_PATHS or any(path.startswith(p + "/") for p in found
                                     if found[p] == CHANGE_DELETE):
            continue
        if _is_whiteout(st):
            _mark(found, path, CHANGE_DELETE)
            continue
        below = _lower_stat(lowers, path)
        if below is None:
            _mark(found, path, CHANGE_ADD)
            continue
        is_dir = stat.S_ISDIR(st.st_mode)
        if not is_dir or not stat.S_ISDIR(below.st_mode) or _owner_or_mode(below, st):
            _mark(found, path, CHANGE_MODIFY)
        if is_dir and _is_opaque(upper + path):
            present = set(os.listdir(upper + path))
            for name in sorted(_lower_names(lowers, path) - present):
                _mark(found, f"{path}/{name}", CHANGE_DELETE)
    return [Change(p, k) for p, k in sorted(found.items())]


def _mark(found: dict[str, int], path: str, kind: int) -> None:
    """Record a change, and its parent directories as modified (moby's addChanges
    inserts a directory before the changes inside it)."""
    found.setdefault(path, kind)
    parent = os.path.dirname(path)
    while parent != "/":
        found.setdefault(parent, CHANGE_MODIFY)
        parent = os.path.dirname(parent)


def _owner_or_mode(a: os.stat_result, b: os.stat_result) -> bool:
    return (a.st_mode, a.st_uid, a.st_gid) != (b.st_mode, b.st_uid, b.st_gid)


def _lower_names(lowers: list[str], path: str) -> set[str]:
    """The names the merged lower layers show in directory ``path``."""
    names: set[str] = set()
    hidden: set[str] = set()
    for layer in lowers:
        directory = layer + path
        if not os.path.isdir(directory) or os.path.islink(directory):
            continue
        for name in os.listdir(directory):
            st = os.lstat(os.path.join(directory, name))
            if name in hidden or name in names:
                continue
            (hidden if _is_whiteout(st) else names).add(name)
        if _is_opaque(directory):
            break
    return names


def settle_times(upper: str, lowers: list[str]) -> None:
    """A directory copied up from below gets its time from below back: what a step
    adds into it must not stamp the layer with the time of the build."""
    for path, st in walk(upper):
        if not stat.S_ISDIR(st.st_mode):
            continue
        below = _lower_stat(lowers, path)
        if below is not None and stat.S_ISDIR(below.st_mode):
            os.utime(upper + path, ns=(below.st_atime_ns, below.st_mtime_ns))


# --- the layer tar -----------------------------------------------------------------------


def write_layer(upper: str, out: BinaryIO) -> None:
    """Write the upper directory ``upper`` as an OCI layer tar to ``out`` (its sha256
    is the diff ID: whoever stores it uncompressed has it already)."""
    with contextlib.closing(TarWriter(out)) as tar:
        for path, st in walk(upper):
            if stat.S_ISSOCK(st.st_mode):
                continue  # sockets do not go into layers (moby's tar skips them too)
            if path in INIT_PATHS:
                continue
            name = path[1:]
            full = upper + path
            if _is_whiteout(st):
                # moby's overlay whiteout converter: an empty file of mode 0600.
                head, _, base = name.rpartition("/")
                info = tarfile.TarInfo((head + "/" if head else "") + _WHITEOUT_PREFIX + base)
                _stamp(info, st)
                info.mode = 0o600
                tar.addfile(info, type_bits=False)
                continue
            info = _header(full, name, st, None if stat.S_ISDIR(st.st_mode)
                           else tar.hardlink(name, st))
            if info.type == tarfile.REGTYPE:
                fd = os.open(full, os.O_RDONLY | os.O_CLOEXEC)
                try:
                    tar.addfile(info, fd)
                finally:
                    os.close(fd)
            else:
                tar.addfile(info)
            if info.type == tarfile.DIRTYPE and _is_opaque(full):
                # moby's marker has its directory's permissions.
                marker = tarfile.TarInfo(name + "/" + _OPAQUE_MARKER)
                _stamp(marker, st)
                marker.mode = info.mode
                tar.addfile(marker, type_bits=False)


def _stamp(info: tarfile.TarInfo, st: os.stat_result) -> None:
    info.mtime = int(st.st_mtime)
    info.uid = info.gid = 0
    info.uname = info.gname = ""


def _header(full: str, name: str, st: os.stat_result,
            earlier: str | None) -> tarfile.TarInfo:
    """`earlier`: the entry of another link to the same file (this one is a link to it)."""
    info = tarfile.TarInfo(name)
    info.mode = st.st_mode  # the file-type bits too, which tarwriter writes
    info.uid, info.gid = st.st_uid, st.st_gid
    info.uname = info.gname = ""
    info.mtime = int(st.st_mtime)
    mode = st.st_mode
    if earlier is not None:
        info.type, info.linkname = tarfile.LNKTYPE, earlier
    elif stat.S_ISREG(mode):
        info.type, info.size = tarfile.REGTYPE, st.st_size
    elif stat.S_ISDIR(mode):
        info.type = tarfile.DIRTYPE
    elif stat.S_ISLNK(mode):
        info.type, info.linkname = tarfile.SYMTYPE, os.readlink(full)
    elif stat.S_ISFIFO(mode):
        info.type = tarfile.FIFOTYPE
    elif stat.S_ISCHR(mode) or stat.S_ISBLK(mode):
        info.type = tarfile.CHRTYPE if stat.S_ISCHR(mode) else tarfile.BLKTYPE
        info.devmajor, info.devminor = os.major(st.st_rdev), os.minor(st.st_rdev)
    pax = {}
    for key in _KEPT_XATTRS:
        try:
            value = os.getxattr(full, key, follow_symlinks=False)
        except OSError:
            continue
        pax["SCHILY.xattr." + key] = value.decode("latin-1")
    if pax:
        info.pax_headers = pax
    return info
