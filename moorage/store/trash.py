"""Trees deleted in two steps: out of sight at once, their contents later.

A rename into tmp/ is one atomic step, after which nothing can take a half-deleted
tree for a live one; the deletion itself (every unlink, and on a busy disk the
journal's waits) may then happen off the path of the request that asked for it:
`run --rm` answers once its container is gone, not once its files are. What a
crash leaves under tmp/ with the prefix is removed at the next start (images.check
reconcile), like every other staging leftover there.
"""

from __future__ import annotations

import os
import shutil
import tempfile
import threading

PREFIX = "remove-"


class Trash:
    def __init__(self, tmp_dir: str) -> None:
        self.tmp_dir = tmp_dir
        self._lock = threading.Lock()
        self._queued: list[str] = []      # discarded, nobody deleting them yet
        self._pending: set[str] = set()   # discarded, not deleted yet

    def discard(self, path: str) -> str | None:
        """Rename `path` out of sight; the folder under tmp/ that now holds it (None
        when there was nothing), deleted by `empty`."""
        doomed = self._hide(path)
        if doomed is not None:
            # Queued only once it holds the tree: an `empty` in another thread would
            # otherwise delete the folder under the rename (ENOENT, seen under load).
            with self._lock:
                self._queued.append(doomed)
        return doomed

    def remove(self, path: str) -> None:
        """Delete `path` now (out of sight first). Blocking."""
        doomed = self._hide(path)
        if doomed is not None:
            self._delete(doomed)

    def _hide(self, path: str) -> str | None:
        if not os.path.lexists(path):
            return None
        doomed = tempfile.mkdtemp(prefix=PREFIX, dir=self.tmp_dir)
        with self._lock:
            self._pending.add(doomed)
        try:
            os.rename(path, os.path.join(doomed, "s"))
        except BaseException:
            self._delete(doomed)
            raise
        return doomed

    def empty(self) -> None:
        """Delete everything discarded so far. Blocking."""
        with self._lock:
            doomed, self._queued = self._queued, []
        for folder in doomed:
            self._delete(folder)

    def _delete(self, folder: str) -> None:
        shutil.rmtree(folder, ignore_errors=True)
        with self._lock:
            self._pending.discard(folder)

    def pending(self) -> set[str]:
        """The names under tmp/ still to delete: in flight, not leftovers."""
        with self._lock:
            return {os.path.basename(folder) for folder in self._pending}
