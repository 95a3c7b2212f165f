"""What every Docker container finds between its image and its writable layer (moby
daemon/initlayer): the mount points the engine and the runtime need, /.dockerenv, by
which software tells it runs in a Docker container, and /etc/mtab as a link to
/proc/mounts. The same for every container, so one copy serves them all.

moby's Setup replaces the image's files there but leaves its directories alone, which
keep their own mode, owner and time. One copy for every image cannot know them, so it
comes in two: the files above the image's layers (``populate``'s ``above``), and the
directories that are only mount points below them (``below``), where the image's own
directory, when it has one, is the one a container sees.
"""

from __future__ import annotations

import os

# moby's initlayer.Setup: a directory, an empty file (mode 0755, as moby makes them),
# or a symbolic link to the target given.
_DIR, _FILE = "dir", "file"
ENTRIES = (("/dev/pts", _DIR), ("/dev/shm", _DIR), ("/proc", _DIR), ("/sys", _DIR),
           ("/.dockerenv", _FILE), ("/etc/resolv.conf", _FILE), ("/etc/hosts", _FILE),
           ("/etc/hostname", _FILE), ("/dev/console", _FILE), ("/etc/mtab", "/proc/mounts"))


def populate(above: str, below: str) -> None:
    """Write the init layer's entries into the new directories ``above`` (the files,
    which cover the image's) and ``below`` (the directories, which the image's cover)."""
    for path, kind in ENTRIES:
        full = (below if kind == _DIR else above) + path
        os.makedirs(os.path.dirname(full), mode=0o755, exist_ok=True)
        if kind == _DIR:
            os.mkdir(full, 0o755)
        elif kind == _FILE:
            os.close(os.open(full, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o755))
            os.chmod(full, 0o755)  # whatever the umask took
        else:
            os.symlink(kind, full)
    for root in (above, below):
        for directory, _, _ in os.walk(root):  # links are not followed
            os.chmod(directory, 0o755)
