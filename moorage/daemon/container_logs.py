"""Reading a container's json-file log: since, until, tail, follow."""

from __future__ import annotations

import asyncio
import datetime
import json
from collections import deque
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class LogEntry:
    stream: str      # "stdout" or "stderr"
    time: str        # RFC 3339 with nanoseconds, as written
    line: bytes


def parse_time(value: str) -> float:
    """Seconds since the epoch of an RFC 3339 time (nanoseconds truncated to micro)."""
    text = value.rstrip("Z")
    whole, _, frac = text.partition(".")
    stamp = datetime.datetime.fromisoformat(whole).replace(tzinfo=datetime.UTC)
    return stamp.timestamp() + (float("0." + frac) if frac else 0.0)


def _entry(raw: bytes) -> LogEntry | None:
    try:
        doc = json.loads(raw)
        return LogEntry(doc["stream"], doc["time"], doc["log"].encode())
    except (ValueError, KeyError):
        return None  # a line torn by a crash


async def read_log(path: str, *, since: float, until: float, tail: int | None,
                   follow: bool, running: Callable[[], bool]) -> AsyncIterator[LogEntry]:
    """Entries in [since, until) (0 = unbounded), the last `tail` of them, then new ones."""
    try:
        f = open(path, "rb")  # noqa: SIM115 - held across awaits while following
    except FileNotFoundError:
        return
    with f:
        entries: deque[LogEntry] | list[LogEntry] = deque(maxlen=tail) if tail is not None \
            else []
        for raw in f:
            entry = _entry(raw)
            if entry is not None and _in_range(entry, since, until):
                entries.append(entry)
        for entry in entries:
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
            if entry is not None and _in_range(entry, since, 0):
                if until and parse_time(entry.time) >= until:
                    return
                yield entry


def _in_range(entry: LogEntry, since: float, until: float) -> bool:
    if not since and not until:
        return True
    stamp = parse_time(entry.time)
    return (not since or stamp >= since) and (not until or stamp < until)
