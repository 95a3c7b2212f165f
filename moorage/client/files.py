"""Atomic writes of client files with their final mode from the first byte.

The docker CLI keeps config.json (credentials in "auths") and context TLS keys
at 0600 in 0700 folders; a file made with the umask's mode and chmod-ed after
would be readable by others in between.
"""

from __future__ import annotations

import os


def write_atomic(path: str, data: bytes, mode: int) -> None:
    """Replace `path` (through a symlink, as docker does) with `data`, created at `mode`."""
    target = os.path.realpath(path)
    tmp = f"{target}.tmp-{os.getpid()}"
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC, mode)
    try:
        # The umask may clear bits of `mode`, never add any: fchmod sets it exactly.
        os.fchmod(fd, mode)
        view = memoryview(data)
        while view:
            view = view[os.write(fd, view):]
        os.fsync(fd)
    except BaseException:
        os.close(fd)
        os.unlink(tmp)
        raise
    os.close(fd)
    os.replace(tmp, target)


def make_dirs(path: str, mode: int) -> None:
    """mkdir -p with `mode` for every folder it makes, as Go's os.MkdirAll (Python's
    makedirs gives the intermediate ones the umask's default); existing ones keep theirs."""
    missing = []
    while path and not os.path.isdir(path):
        missing.append(path)
        path = os.path.dirname(path)
    for folder in reversed(missing):
        try:
            os.mkdir(folder, mode)
        except FileExistsError:
            pass
