"""Reading a container's log (json-file or local): since, until, tail, follow, across
the rotated files (PATH.N[.gz] … PATH.1[.gz], then PATH).

All file work runs off the event loop, and never reads more than it needs: `tail`
reads the files backwards from their end, `since` finds its first entry by a
binary search on the entries' times (a log is written in time order), `until`
stops at the first entry past it. A 1 GB log answers `--tail 10` or a recent
`--since` after reading a few blocks.
"""

from __future__ import annotations

import asyncio
import gzip
import json
import os
import re
from collections.abc import AsyncIterator, Callable, Iterator
from dataclasses import dataclass
from typing import BinaryIO

from moorage.model.times import parse_rfc3339_ns

_BATCH = 1 << 20  # bytes of lines read per thread hop
_BLOCK = 64 << 10  # bytes read per step backwards (tail) and where a search stops
_ROTATED = re.compile(r"\.(\d+)(\.gz)?$")


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


_SECONDS: dict[str, int] = {}  # "YYYY-MM-DDTHH:MM:SS" → ns: a second's entries share it


def _stamp(entry: LogEntry) -> int:
    """The entry's time in ns; the UTC times the log holds are parsed once a second."""
    text = entry.time
    try:
        if len(text) >= 20 and text[-1] == "Z" and text[19] in ".Z":
            prefix = text[:19]
            base = _SECONDS.get(prefix)
            if base is None:
                if len(_SECONDS) > 4096:
                    _SECONDS.clear()
                base = _SECONDS[prefix] = parse_rfc3339_ns(prefix + "Z")
            fraction = text[20:-1]
            return base + (int(fraction.ljust(9, "0")[:9]) if fraction else 0)
        return parse_rfc3339_ns(text)
    except ValueError:
        return 0


def log_files(path: str) -> list[str]:
    """The log's files, oldest first: rotated ones by number (a PATH.N left while
    its .gz was being written counts until the .gz is whole), then PATH."""
    directory, base = os.path.split(path)
    try:
        names = os.listdir(directory)
    except FileNotFoundError:
        return []
    numbered: dict[int, str] = {}
    for name in names:
        match = _ROTATED.match(name[len(base):]) if name.startswith(base) else None
        if match is not None:
            number = int(match.group(1))
            if match.group(2) or number not in numbered:
                numbered[number] = os.path.join(directory, name)
    return [numbered[n] for n in sorted(numbered, reverse=True)] + [path]


def _open(path: str) -> BinaryIO | None:
    try:
        return gzip.open(path, "rb") if path.endswith(".gz") else open(path, "rb")
    except FileNotFoundError:
        return None


def _lines_backwards(f: BinaryIO) -> Iterator[bytes]:
    """Blocking: the file's complete lines, last first, read in blocks from its end."""
    end = f.seek(0, os.SEEK_END)
    rest = b""
    while end > 0:
        start = max(0, end - _BLOCK)
        f.seek(start)
        block = f.read(end - start) + rest
        end = start
        lines = block.split(b"\n")
        rest = lines.pop(0)  # maybe cut: completed by the block before
        for line in reversed(lines):
            if line:
                yield line
    if rest:
        yield rest


def _tail(path: str, count: int, in_range: Callable[[LogEntry], bool]) -> list[LogEntry]:
    """Blocking: the last `count` entries in range, oldest first."""
    found: list[LogEntry] = []
    for name in reversed(log_files(path)):
        f = _open(name)
        if f is None:
            continue
        with f:
            # A gzipped file cannot seek backwards cheaply; it is at most max-size.
            lines = reversed(f.read().split(b"\n")) if name.endswith(".gz") \
                else _lines_backwards(f)
            for raw in lines:
                entry = _entry(raw) if raw else None
                if entry is not None and in_range(entry):
                    found.append(entry)
                    if len(found) >= count:
                        return found[::-1]
    return found[::-1]


def _first_stamp_after(f: BinaryIO, offset: int) -> int | None:
    f.seek(offset)
    if offset:
        f.readline()  # the line the offset cut
    for _ in range(16):  # past a torn line or two
        raw = f.readline()
        if not raw:
            return None
        entry = _entry(raw)
        if entry is not None:
            return _stamp(entry)
    return None


def _seek_since(f: BinaryIO, since_ns: int) -> None:
    """Blocking: leave `f` at a line start at or before its first entry at `since_ns`
    or later, within a block of it."""
    low, high = 0, f.seek(0, os.SEEK_END)
    while high - low > _BLOCK:
        middle = (low + high) // 2
        stamp = _first_stamp_after(f, middle)
        if stamp is not None and stamp < since_ns:
            low = middle
        else:
            high = middle
    f.seek(low)
    if low:
        f.readline()


def _last_stamp(name: str) -> int | None:
    f = _open(name)
    if f is None:
        return None
    with f:
        lines = reversed(f.read().split(b"\n")) if name.endswith(".gz") \
            else _lines_backwards(f)
        for raw in lines:
            entry = _entry(raw) if raw else None
            if entry is not None:
                return _stamp(entry)
    return None


async def read_log(path: str, *, since_ns: int, until_ns: int, tail: int | None,
                   follow: bool, running: Callable[[], bool]) -> AsyncIterator[list[LogEntry]]:
    """Entries in [since, until] (ns since the epoch, 0 = unbounded; both ends
    included, as dockerd's), the last `tail` of them, then new ones; in batches as
    they are read (one write each for the API), one entry a batch when following."""

    def in_range(entry: LogEntry) -> bool:
        if not since_ns and not until_ns:
            return True
        stamp = _stamp(entry)
        return (not since_ns or stamp >= since_ns) and (not until_ns or stamp <= until_ns)

    def before_since(entry: LogEntry) -> bool:
        return bool(since_ns) and _stamp(entry) < since_ns

    if tail is not None:
        last = await asyncio.to_thread(_tail, path, tail, in_range) if tail else []
        if last:
            yield last
        if not follow:
            return
        f = await asyncio.to_thread(_open, path)
        if f is None:
            return
        f.seek(0, os.SEEK_END)
    else:
        f = None
        for name in await asyncio.to_thread(log_files, path):
            if since_ns and name != path:
                last = await asyncio.to_thread(_last_stamp, name)
                if last is not None and last < since_ns:
                    continue  # a whole rotated file before since
            f = await asyncio.to_thread(_open, name)
            if f is None:
                continue
            if since_ns and not name.endswith(".gz"):
                await asyncio.to_thread(_seek_since, f, since_ns)
            past_until = False
            async for batch, past_until in _entries(f, before_since, until_ns):
                if batch:
                    yield batch
                if past_until:
                    break
            if name != path or past_until:
                f.close()
                f = None
            if past_until:
                return
        if f is None:
            return
    with f:
        async for entry in _follow(f, path, since_ns, until_ns, follow, running):
            yield [entry]


async def _entries(f: BinaryIO, before_since: Callable[[LogEntry], bool],
                   until_ns: int) -> AsyncIterator[tuple[list[LogEntry], bool]]:
    """The file's entries from where it stands, a batch at a time, and whether the
    batch ended past `until`."""
    while lines := await asyncio.to_thread(f.readlines, _BATCH):
        partial = b"" if lines[-1].endswith(b"\n") else lines.pop()
        if partial:  # the writer is mid-line: read it again with the next batch
            f.seek(-len(partial), 1)
            if not lines:
                break
        batch = []
        for raw in lines:
            entry = _entry(raw)
            if entry is None:
                continue
            if until_ns and _stamp(entry) > until_ns:
                yield batch, True
                return
            if not before_since(entry):
                batch.append(entry)
        yield batch, False


async def _follow(f: BinaryIO, path: str, since_ns: int, until_ns: int, follow: bool,
                  running: Callable[[], bool]) -> AsyncIterator[LogEntry]:
    """New entries as they are written, through rotations (the file read so far is
    finished, then the new PATH opened)."""
    partial = b""
    while follow:
        chunk = f.readline()
        if not chunk:
            if _rotated(f, path):
                f.close()
                reopened = await asyncio.to_thread(_open, path)
                if reopened is None:
                    return
                f = reopened
                continue
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
            if until_ns and _stamp(entry) > until_ns:
                return
            yield entry


def _rotated(f: BinaryIO, path: str) -> bool:
    """PATH is now another file than the one `f` reads (or emptied under it)."""
    try:
        now = os.stat(path)
    except FileNotFoundError:
        return False  # between the rename and the new file
    mine = os.fstat(f.fileno())
    return now.st_ino != mine.st_ino or now.st_size < f.tell()
