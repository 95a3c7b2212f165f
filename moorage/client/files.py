"""Atomic writes of client files with their final mode from the first byte.

The docker CLI keeps config.json (credentials in "auths") and context TLS keys
at 0600 in 0700 folders; a file made with the umask's mode and chmod-ed after
would be readable by others in between.
"""

from __future__ import annotations

import os

from moorage.fsutil import atomic_write


def write_atomic(path: str, data: bytes, mode: int) -> None:
    """Replace `path` (through a symlink, as docker does) with `data`, created at `mode`."""
    atomic_write(os.path.realpath(path), data, mode)


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
