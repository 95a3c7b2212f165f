"""Files that appear whole or not at all (DESIGN.md: temp file, fsync, rename).

Only os: the runtime and the shim may use it on their start paths.
"""

from __future__ import annotations

import os


def atomic_write(path: str, data: bytes | str, mode: int = 0o644, *, sync: bool = True) -> None:
    """Replace ``path`` with ``data``: a reader sees the old file or the new one, never
    part of either. With ``sync`` (the default) the content and the rename are on
    disk when it returns, so a crash or power loss keeps one of the two; without,
    only a process crash is covered (for state that a reboot ends anyway). The file
    gets ``mode`` whatever the umask. Raises OSError; nothing is left behind then."""
    directory = os.path.dirname(path) or "."
    tmp = os.path.join(directory, f".{os.path.basename(path)}.tmp-{os.urandom(6).hex()}")
    payload = data.encode() if isinstance(data, str) else data
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC, 0o600)
    try:
        try:
            os.fchmod(fd, mode)
            view = memoryview(payload)
            while view:
                view = view[os.write(fd, view):]
            if sync:
                os.fsync(fd)
        finally:
            os.close(fd)
        os.rename(tmp, path)
    except BaseException:
        try:
            os.unlink(tmp)
        except FileNotFoundError:
            pass
        raise
    if sync:
        fsync_dir(directory)


def fsync_dir(path: str) -> None:
    """Make the renames and creations in directory ``path`` durable."""
    fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def in_scope(root: str, path: str) -> str:
    """``path`` under ``root`` with its symlinks followed as if ``root`` were "/"
    (moby's FollowSymlinkInScope): the result never leaves ``root``. The last
    component is followed too when it is a link."""
    parts = [p for p in path.split("/") if p not in ("", ".")]
    current = root
    hops = 0
    while parts:
        part = parts.pop(0)
        if part == "..":
            if current != root:
                current = os.path.dirname(current)
            continue
        candidate = os.path.join(current, part)
        if os.path.islink(candidate):
            hops += 1
            if hops > 255:
                raise OSError(40, "too many levels of symbolic links", path)
            target = os.readlink(candidate)
            if target.startswith("/"):
                current = root
            parts = [p for p in target.split("/") if p not in ("", ".")] + parts
            continue
        current = candidate
    return current
