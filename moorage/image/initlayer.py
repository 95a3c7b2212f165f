"""What every Docker container finds between its image and its writable layer (moby
daemon/initlayer): the mount points the engine and the runtime need, /.dockerenv, by
which software tells it runs in a Docker container, and /etc/mtab as a link to
/proc/mounts. The same for every container, so one copy serves them all.
"""

from __future__ import annotations

import os

# moby's initlayer.Setup: a directory, an empty file (mode 0755, as moby makes them),
# or a symbolic link to the target given.
_DIR, _FILE = "dir", "file"
ENTRIES = (("/dev/pts", _DIR), ("/dev/shm", _DIR), ("/proc", _DIR), ("/sys", _DIR),
           ("/.dockerenv", _FILE), ("/etc/resolv.conf", _FILE), ("/etc/hosts", _FILE),
           ("/etc/hostname", _FILE), ("/dev/console", _FILE), ("/etc/mtab", "/proc/mounts"))


def populate(root: str) -> None:
    """Write the init layer's entries into the empty directory ``root``."""
    for path, kind in ENTRIES:
        full = root + path
        os.makedirs(os.path.dirname(full), mode=0o755, exist_ok=True)
        if kind == _DIR:
            os.mkdir(full, 0o755)
        elif kind == _FILE:
            os.close(os.open(full, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o755))
            os.chmod(full, 0o755)  # whatever the umask took
        else:
            os.symlink(kind, full)
    for directory in ("/dev", "/etc", *(p for p, k in ENTRIES if k == _DIR)):
        os.chmod(root + directory, 0o755)
