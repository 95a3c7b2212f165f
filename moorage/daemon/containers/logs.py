"""Reading a container's json-file log: since, until, tail, follow.

The file is read in batches off the event loop: a log of any size streams out and
never stalls other requests.
"""

from __future__ import annotations

import asyncio
import json
from collections import deque
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass

from moorage.model.times import parse_rfc3339_ns

_BATCH = 1 << 20  # bytes of lines read per thread hop


@dataclass(frozen=True, slots=True)
class LogEntry:
    stream: str      # "stdout" or "stderr"
    time: str        # RFC 3339 with nanoseconds, as written
    line: bytes


def _entry(raw: bytes) -> LogEntry | None:
    try:
        doc = json.loads(raw)
        return LogEntry(doc["stream"], doc["time"], doc["log"].encode())
    except (ValueError, KeyError, TypeError, AttributeError):
        return None  # a line torn by a crash


def _stamp(entry: LogEntry) -> int:
    try:
        return parse_rfc3339_ns(entry.time)
    except ValueError:
        return 0


async def read_log(path: str, *, since: float, until: float, tail: int | None,
                   follow: bool, running: Callable[[], bool]) -> AsyncIterator[LogEntry]:
    """Entries in [since, until) (seconds since the epoch, 0 = unbounded), the last `tail`
    of them, then new ones."""
    since_ns, until_ns = int(since * 1e9), int(until * 1e9)

    def in_range(entry: LogEntry) -> bool:
        if not since_ns and not until_ns:
            return True
        stamp = _stamp(entry)
        return (not since_ns or stamp >= since_ns) and (not until_ns or stamp < until_ns)

    try:
        f = await asyncio.to_thread(open, path, "rb")
    except FileNotFoundError:
        return
    with f:
        last: deque[LogEntry] | None = deque(maxlen=tail) if tail is not None else None
        while lines := await asyncio.to_thread(f.readlines, _BATCH):
            partial = b"" if lines[-1].endswith(b"\n") else lines.pop()
            if partial:  # the writer is mid-line: read it again with the next batch
                f.seek(-len(partial), 1)
                if not lines:
                    break
            for raw in lines:
                entry = _entry(raw)
                if entry is None or not in_range(entry):
                    continue
                if last is not None:
                    last.append(entry)
                else:
                    yield entry
        for entry in last or ():
            yield entry
        partial = b""
        while follow:
            chunk = f.readline()
            if not chunk:
                if not running():
                    chunk = f.readline()
                    if not chunk:
                        return
                else:
                    await asyncio.sleep(0.05)
                    continue
            partial += chunk
            if not partial.endswith(b"\n"):
                continue
            entry = _entry(partial)
            partial = b""
            if entry is not None and (not since_ns or _stamp(entry) >= since_ns):
                if until_ns and _stamp(entry) >= until_ns:
                    return
                yield entry
