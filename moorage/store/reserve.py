"""Room kept aside on the data-root's disk so that state changes can still be recorded
when the disk fills up.

dockerd records a container's stop or removal in files it can do without; moord
records them in moor.db, and SQLite needs new pages for any write, even a deletion.
So a file of `size` bytes is allocated next to the database while there is room;
when a write finds less than that free, the file is given back first, and the
writes that follow (a stop, a removal that makes room) have it. It is allocated
again once the disk has twice its size free, so a disk hovering at the edge does
not take and give it on every write.

A crash between giving the file back and allocating it again leaves no file,
which the next start allocates when there is room.
"""

from __future__ import annotations

import logging
import os
import threading

log = logging.getLogger("moord.store")

SIZE = 4 << 20


class Reserve:
    def __init__(self, path: str, size: int = SIZE) -> None:
        self.path, self.size = path, size
        self._lock = threading.Lock()
        self._held = _allocated(path) >= size

    def before_write(self) -> None:
        """Give the room back when the disk is nearly full; take it again once there
        is plenty. Never fails: without the room the write simply meets the full disk."""
        try:
            stat = os.statvfs(os.path.dirname(self.path))
        except OSError:
            return
        free = stat.f_bavail * stat.f_frsize
        if self._held and free < self.size:
            with self._lock:
                self._release(free)
        elif not self._held and free >= 2 * self.size:
            with self._lock:
                self._take()

    def _release(self, free: int) -> None:
        if not self._held:
            return
        try:
            os.unlink(self.path)
        except FileNotFoundError:
            pass
        except OSError as err:
            log.warning("%s: %s", self.path, err)
            return
        self._held = False
        log.warning("%s: %d bytes left on the disk: the %d bytes kept for recording state "
                    "are given back", self.path, free, self.size)

    def _take(self) -> None:
        if self._held:
            return
        try:
            fd = os.open(self.path, os.O_WRONLY | os.O_CREAT | os.O_CLOEXEC, 0o600)
            try:
                os.posix_fallocate(fd, 0, self.size)
            finally:
                os.close(fd)
        except OSError as err:  # taken by something else since the look at the disk
            log.info("%s: not kept yet: %s", self.path, err)
            return
        self._held = True


def _allocated(path: str) -> int:
    try:
        return os.stat(path).st_blocks * 512
    except FileNotFoundError:
        return 0
