"""What every Docker container finds between its image and its writable layer (moby
daemon/initlayer): the mount points the engine and the runtime need, /.dockerenv, by
which software tells it runs in a Docker container, and /etc/mtab as a link to
/proc/mounts. The same for every container, so one copy serves them all.

moby's Setup replaces the image's files there but leaves its directories alone, which
keep their own mode and owner (its writes in the image's /etc and /dev copy them up
with theirs). One copy for every image cannot know them, so it comes in two: the files
above the image's layers (``populate``'s ``above``), and the directories that are only
mount points below them (``below``), where the image's own directory, when it has one,
is the one a container sees. The files' directories, /etc and /dev, are above and so
take the image's mode and owner (``Attributes``): one copy of ``above`` for each
combination the images have, nearly always the one of 0755 root.
"""

from __future__ import annotations

import os
import stat
from typing import NamedTuple

# moby's initlayer.Setup: a directory, an empty file (mode 0755, as moby makes them),
# or a symbolic link to the target given.
_DIR, _FILE = "dir", "file"
ENTRIES = (("/dev/pts", _DIR), ("/dev/shm", _DIR), ("/proc", _DIR), ("/sys", _DIR),
           ("/.dockerenv", _FILE), ("/etc/resolv.conf", _FILE), ("/etc/hosts", _FILE),
           ("/etc/hostname", _FILE), ("/dev/console", _FILE), ("/etc/mtab", "/proc/mounts"))


class Attributes(NamedTuple):
    """The mode bits (stat.S_IMODE) and owner of a directory."""

    mode: int
    uid: int
    gid: int


DEFAULT = Attributes(0o755, 0, 0)
# The directories of ``above`` that stand in for the image's own.
COVERED = ("etc", "dev")


def image_attributes(lowers: list[str]) -> tuple[Attributes, ...]:
    """The attributes of the COVERED directories as an image's layers (``lowers``, top
    first, as overlayfs stacks them) show them; DEFAULT where the image has none."""
    found = []
    for name in COVERED:
        attributes = DEFAULT
        for layer in lowers:
            try:
                st = os.lstat(os.path.join(layer, name))
            except FileNotFoundError:
                continue
            if stat.S_ISDIR(st.st_mode):  # not a whiteout, a file or a link
                attributes = Attributes(stat.S_IMODE(st.st_mode), st.st_uid, st.st_gid)
            break
        found.append(attributes)
    return tuple(found)


def layer_name(covered: tuple[Attributes, ...]) -> str:
    """A name for the ``above`` made for ``covered``: "fs" for the usual attributes, else
    each spelt out as mode (octal).uid.gid."""
    if all(attributes == DEFAULT for attributes in covered):
        return "fs"
    return "-".join(["fs", *(f"{a.mode:o}.{a.uid}.{a.gid}" for a in covered)])


def covered_by(name: str) -> tuple[Attributes, ...]:
    """The attributes a ``layer_name`` spells."""
    found = []
    for part in name.split("-")[1:]:
        mode, uid, gid = part.split(".")
        found.append(Attributes(int(mode, 8), int(uid), int(gid)))
    return tuple(found)


def populate_above(above: str, covered: tuple[Attributes, ...] = ()) -> None:
    """Write the files of the init layer, which cover the image's, into the new directory
    ``above``; its COVERED directories get ``covered``'s attributes (DEFAULT without)."""
    _populate(above, [(path, kind) for path, kind in ENTRIES if kind != _DIR])
    for name, attributes in zip(COVERED, covered, strict=False):
        os.chown(os.path.join(above, name), attributes.uid, attributes.gid)
        os.chmod(os.path.join(above, name), attributes.mode)


def populate_below(below: str) -> None:
    """Write the directories of the init layer, which the image's cover, into the new
    directory ``below``."""
    _populate(below, [(path, kind) for path, kind in ENTRIES if kind == _DIR])


def _populate(root: str, entries: list[tuple[str, str]]) -> None:
    os.mkdir(root, 0o755)
    for path, kind in entries:
        full = root + path
        os.makedirs(os.path.dirname(full), mode=0o755, exist_ok=True)
        if kind == _DIR:
            os.mkdir(full, 0o755)
        elif kind == _FILE:
            os.close(os.open(full, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o755))
            os.chmod(full, 0o755)  # whatever the umask took
        else:
            os.symlink(kind, full)
    for directory, _, _ in os.walk(root):  # links are not followed
        os.chmod(directory, 0o755)
