"""The events journal: the recent events on disk, so `since` replays them after a restart.

Two files of at most `limit` lines each (the current one and the one before): once the
current file is full it becomes the previous one, so the journal stays bounded without
ever rewriting a file. A torn last line (a crash mid-write) is skipped on reading.
"""

from __future__ import annotations

import json
import os
import threading
from collections.abc import Iterator

from moorage.daemon.events.bus import Event

_LIMIT = 2000


class Journal:
    def __init__(self, path: str, limit: int = _LIMIT) -> None:
        self.path, self.previous, self.limit = path, path + ".1", limit
        self._lock = threading.Lock()
        self._lines = sum(1 for _ in self._read(path))
        self._file = open(path, "ab")  # noqa: SIM115 - held for the daemon's life
        if self._file.tell() and not _ends_line(path):
            self._file.write(b"\n")  # a torn last line stays alone, skipped on reading

    def append(self, event: Event) -> None:
        line = json.dumps([event.type, event.action, event.actor_id, dict(event.attributes),
                           event.time_ns, event.scope]).encode() + b"\n"
        with self._lock:
            if self._lines >= self.limit:
                self._file.close()
                os.replace(self.path, self.previous)
                self._file = open(self.path, "ab")  # noqa: SIM115
                self._lines = 0
            self._file.write(line)
            self._file.flush()
            self._lines += 1

    def replay(self, since_ns: int, until_ns: int = 0) -> list[Event]:
        """The journal's events from `since_ns` (inclusive) to `until_ns` (0: now)."""
        with self._lock:
            found = [*self._read(self.previous), *self._read(self.path)]
        return [e for e in found if e.time_ns >= since_ns and (not until_ns
                                                               or e.time_ns <= until_ns)]

    def close(self) -> None:
        with self._lock:
            self._file.close()

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


def _ends_line(path: str) -> bool:
    with open(path, "rb") as f:
        f.seek(-1, os.SEEK_END)
        return f.read(1) == b"\n"
