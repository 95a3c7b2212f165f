"""COPY and ADD into a mounted workspace (moby builder/dockerfile copy.go): sources from
the context or another stage's files, globs, directories copied by content, owners
set to root or ``--chown``, ADD's local tar extraction and URLs."""

from __future__ import annotations

import glob
import hashlib
import os
import posixpath
import shutil
import stat
import tarfile
import urllib.parse
import urllib.request
from collections.abc import Mapping
from dataclasses import dataclass
from email.utils import parsedate_to_datetime

from moorage.errors import InvalidParameter, SystemFailure
from moorage.fsutil import in_scope

_URL_TIMEOUT = 60


@dataclass(frozen=True, slots=True)
class CopySpec:
    verb: str  # "COPY" or "ADD"
    sources: list[str]
    dest: str  # absolute, "/" kept at the end when written so
    uid: int
    gid: int
    extract: bool  # ADD: local tars are unpacked
    mode: int | None = None  # --chmod


@dataclass(frozen=True, slots=True)
class Source:
    """A source to copy: where its content is (a link given as a source is followed)
    and the name it is copied under (its own, not its target's)."""

    path: str
    name: str

    @classmethod
    def of(cls, path: str) -> Source:
        return cls(path, os.path.basename(path))


def parse_mode(value: str) -> int:
    try:
        mode = int(value, 8)
    except ValueError:
        raise InvalidParameter(f"invalid chmod parameter: {value!r}: only octal modes are "
                               "supported") from None
    if mode > 0o7777:
        raise InvalidParameter(f"invalid chmod parameter: {value!r}")
    return mode


def _matches(root: str, source: str, verb: str) -> list[Source]:
    clean = posixpath.normpath("/" + source.lstrip("/"))
    if posixpath.normpath(source).startswith("../") or posixpath.normpath(source) == "..":
        raise InvalidParameter(f"{verb} failed: forbidden path outside the build context: "
                               f"{source} ()")
    if any(c in source for c in "*?["):
        found = sorted(glob.glob(root + clean, include_hidden=True))
        if not found:
            raise InvalidParameter(f"{verb} failed: no source files were specified")
        return [Source(in_scope(root, f[len(root):]), os.path.basename(f)) for f in found]
    # A source that is a link is followed (inside the context); links below are copied.
    path = in_scope(root, clean)
    if not os.path.lexists(path):
        raise InvalidParameter(
            f"{verb} failed: file not found in build context or excluded by .dockerignore: "
            f"stat {source.lstrip('/')}: file does not exist")
    return [Source(path, posixpath.basename(clean) or os.path.basename(path))]


def content_hash(sources: list[Source], known: Mapping[str, str]) -> str:
    """A digest of what the sources hold (names, modes, contents, link targets), never
    their times: the cache key of a COPY. ``known``: the content digests of files
    already taken (the build context's), by host path."""
    digest = hashlib.sha256()
    for source in sources:
        top = source.path
        for path in _tree(top):
            st = os.lstat(path)
            # A directory's contents are copied, not its name; a file keeps its name.
            name = os.path.relpath(path, top) if os.path.isdir(top) else source.name
            digest.update(name.encode() + b"\0")
            digest.update(str(stat.S_IMODE(st.st_mode) | stat.S_IFMT(st.st_mode)).encode())
            if stat.S_ISREG(st.st_mode):
                digest.update((known.get(path) or _file_digest(path)).encode())
            elif stat.S_ISLNK(st.st_mode):
                digest.update(os.readlink(path).encode())
    return digest.hexdigest()


def _file_digest(path: str) -> str:
    with open(path, "rb") as f:
        return hashlib.file_digest(f, "sha256").hexdigest()


def _tree(top: str) -> list[str]:
    out = [top]
    if os.path.isdir(top) and not os.path.islink(top):
        for base, dirs, files in os.walk(top):
            dirs.sort()
            for name in sorted(dirs + files):
                out.append(os.path.join(base, name))
    return out


def resolve_sources(root: str, sources: list[str], verb: str) -> list[Source]:
    found: list[Source] = []
    for source in sources:
        found.extend(_matches(root, source, verb))
    return found


def copy_into(rootfs: str, spec: CopySpec, sources: list[Source]) -> None:
    """Copy the ``sources`` to ``spec.dest`` inside ``rootfs``."""
    to_dir = spec.dest.endswith("/") or len(sources) > 1
    if len(sources) > 1 and not spec.dest.endswith("/"):
        raise InvalidParameter(f"When using {spec.verb} with more than one source file, "
                               "the destination must be a directory and end with a /")
    dest = in_scope(rootfs, spec.dest)
    made: list[str] = []
    for source in sources:
        path = source.path
        if os.path.isdir(path) and not os.path.islink(path):
            made += make_dirs(rootfs, spec.dest, spec.uid, spec.gid)
            _copy_tree(path, dest, spec)
        elif spec.extract and _is_archive(path):
            made += make_dirs(rootfs, spec.dest, spec.uid, spec.gid)
            _extract(path, dest)
        else:
            into = to_dir or os.path.isdir(dest)
            made += make_dirs(rootfs, spec.dest if into else posixpath.dirname(spec.dest),
                              spec.uid, spec.gid)
            target = os.path.join(in_scope(rootfs, spec.dest), source.name) \
                if into else in_scope(rootfs, spec.dest)
            _copy_entry(path, target, spec)
    # Directories the copy made get the epoch, not the time of the build: the same
    # inputs make the same layer.
    for directory in made:
        os.utime(directory, (0, 0))


def make_dirs(rootfs: str, path: str, uid: int, gid: int) -> list[str]:
    """mkdir -p inside ``rootfs``, the new directories owned by uid:gid (moby's
    MkdirAllAndChown); returns the ones made."""
    made = []
    current = rootfs
    for part in [p for p in path.split("/") if p]:
        current = in_scope(rootfs, current[len(rootfs):] + "/" + part)
        if not os.path.lexists(current):
            os.mkdir(current, 0o755)
            os.chown(current, uid, gid)
            made.append(current)
    return made


def _copy_tree(src: str, dest: str, spec: CopySpec) -> None:
    for name in sorted(os.listdir(src)):
        s, d = os.path.join(src, name), os.path.join(dest, name)
        if os.path.isdir(s) and not os.path.islink(s):
            if not os.path.isdir(d) or os.path.islink(d):
                _remove(d)
                os.mkdir(d)
            _copy_tree(s, d, spec)
            _attributes(s, d, spec)
        else:
            _copy_entry(s, d, spec)


def _remove(path: str) -> None:
    if os.path.isdir(path) and not os.path.islink(path):
        shutil.rmtree(path)
    elif os.path.lexists(path):
        os.unlink(path)


def _copy_entry(src: str, dest: str, spec: CopySpec) -> None:
    if os.path.isdir(dest) and not os.path.islink(dest):
        raise InvalidParameter(f"{spec.verb} failed: cannot copy to non-directory: "
                               f"{dest}")
    _remove(dest)
    st = os.lstat(src)
    if stat.S_ISLNK(st.st_mode):
        os.symlink(os.readlink(src), dest)
    elif stat.S_ISREG(st.st_mode):
        shutil.copyfile(src, dest)
    elif stat.S_ISFIFO(st.st_mode):
        os.mkfifo(dest)
    else:
        os.mknod(dest, st.st_mode, st.st_rdev)
    _attributes(src, dest, spec)


def _attributes(src: str, dest: str, spec: CopySpec) -> None:
    st = os.lstat(src)
    os.chown(dest, spec.uid, spec.gid, follow_symlinks=False)
    if not stat.S_ISLNK(st.st_mode):
        os.chmod(dest, stat.S_IMODE(st.st_mode) if spec.mode is None else spec.mode)
    os.utime(dest, ns=(st.st_atime_ns, st.st_mtime_ns), follow_symlinks=False)


def _is_archive(path: str) -> bool:
    if not os.path.isfile(path):
        return False
    try:
        with tarfile.open(path, "r:*"):
            return True
    except (tarfile.TarError, OSError, EOFError):
        return False


def _extract(path: str, dest: str) -> None:
    """ADD's local archive, unpacked into ``dest``; an entry that would land outside it
    (an absolute or ``..`` name, or through a link) is refused, nothing written there."""
    try:
        with tarfile.open(path, "r:*") as tar:
            tar.extractall(dest, filter="tar")
    except tarfile.TarError as err:
        raise InvalidParameter(f"ADD failed: {os.path.basename(path)}: {err}") from None


def fetch(url: str, directory: str) -> str:
    """ADD's remote source, saved as the URL's last path element (mode 0600, its
    Last-Modified time), as moby's downloadSource does."""
    name = posixpath.basename(urllib.parse.urlparse(url).path) or "__unnamed__"
    target = os.path.join(directory, name)
    try:
        with urllib.request.urlopen(url, timeout=_URL_TIMEOUT) as response, \
                open(target, "wb") as out:
            shutil.copyfileobj(response, out)
            modified = response.headers.get("Last-Modified")
    except (OSError, ValueError) as err:
        raise SystemFailure(f"failed to GET {url}: {getattr(err, 'reason', err)}") from None
    os.chmod(target, 0o600)
    if modified:
        stamp = parsedate_to_datetime(modified).timestamp()
        os.utime(target, (stamp, stamp))
    return target
