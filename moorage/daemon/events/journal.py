"""The events journal: the recent events on disk, so `since` replays them after a restart.

Two files of at most `limit` lines each (the current one and the one before): once the
current file is full it becomes the previous one, so the journal stays bounded without
ever rewriting a file. A torn line (a crash or a full disk mid-write) is skipped on
reading.
"""

from __future__ import annotations

import json
import logging
import os
import threading
from collections.abc import Iterator

from moorage.daemon.events.bus import Event

_LIMIT = 2000
log = logging.getLogger("moord.events")


class Journal:
    def __init__(self, path: str, limit: int = _LIMIT) -> None:
        self.path, self.previous, self.limit = path, path + ".1", limit
        self._lock = threading.Lock()
        self._lines = sum(1 for _ in self._read(path))
        self._fd = _open(path)
        # A torn last line (a crash, a full disk) is ended before the next one.
        self._torn = bool(os.fstat(self._fd).st_size) and not _ends_line(path)
        self._failing = False

    def append(self, event: Event) -> None:
        """Never fails the operation that published the event: on a full disk the
        event still reaches live subscribers and only the journal misses it."""
        line = json.dumps([event.type, event.action, event.actor_id, dict(event.attributes),
                           event.time_ns, event.scope]).encode() + b"\n"
        with self._lock:
            try:
                if self._lines >= self.limit:
                    self._rotate()
                if self._torn:
                    line = b"\n" + line
                self._torn = True  # until the whole line is known to be written
                written = os.write(self._fd, line)
                self._torn = written < len(line)
            except OSError as err:
                if not self._failing:
                    log.warning("events journal %s: %s; events are not kept until it "
                                "can be written again", self.path, err)
                self._failing = True
                return
            if self._failing:
                log.warning("events journal %s: written again", self.path)
            self._failing = False
            self._lines += not self._torn

    def _rotate(self) -> None:
        # The new file is made first: when that fails (a full disk), nothing has
        # changed and the next append tries again.
        fresh = _open(self.path + ".new")
        try:
            os.replace(self.path, self.previous)
            os.replace(self.path + ".new", self.path)
        except OSError:
            os.close(fresh)
            raise
        os.close(self._fd)
        self._fd, self._lines, self._torn = fresh, 0, False

    def replay(self, since_ns: int, until_ns: int = 0) -> list[Event]:
        """The journal's events from `since_ns` (inclusive) to `until_ns` (0: now)."""
        with self._lock:
            found = [*self._read(self.previous), *self._read(self.path)]
        return [e for e in found if e.time_ns >= since_ns and (not until_ns
                                                               or e.time_ns <= until_ns)]

    def close(self) -> None:
        with self._lock:
            os.close(self._fd)

    @staticmethod
    def _read(path: str) -> Iterator[Event]:
        try:
            with open(path, "rb") as f:
                for line in f:
                    try:
                        kind, action, actor, attributes, time_ns, scope = json.loads(line)
                    except ValueError:
                        continue
                    yield Event(kind, action, actor, attributes, time_ns, scope)
        except FileNotFoundError:
            return


def _open(path: str) -> int:
    return os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT | os.O_CLOEXEC, 0o600)


def _ends_line(path: str) -> bool:
    with open(path, "rb") as f:
        f.seek(-1, os.SEEK_END)
        return f.read(1) == b"\n"
