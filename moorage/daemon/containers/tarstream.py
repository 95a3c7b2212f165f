"""A tar stream read without copying file data: the headers parsed here (ustar, GNU long
names, PAX), the bytes of each file written from the chunks as they came.

tarfile's stream mode copies every byte several times on its way through its buffers;
for docker cp into a container that copying was most of the time. Compressed streams
still go through tarfile (`is_plain` says which).
"""

from __future__ import annotations

import os
import queue
import tarfile
from collections import deque
from collections.abc import Callable, Iterator

from moorage.errors import InvalidParameter

_BLOCK = 512
_WRITEV_PIECES = 64
_COMPRESSED = (b"\x1f\x8b", b"BZh", b"\xfd7zXZ", b"\x28\xb5\x2f\xfd")
_TYPES = {b"0": tarfile.REGTYPE, b"\0": tarfile.REGTYPE, b"7": tarfile.REGTYPE,
          b"1": tarfile.LNKTYPE, b"2": tarfile.SYMTYPE, b"3": tarfile.CHRTYPE,
          b"4": tarfile.BLKTYPE, b"5": tarfile.DIRTYPE, b"6": tarfile.FIFOTYPE}


# What a Source takes: a chunk, or a batch of them handed over at once (from a queue: one
# queue operation and one thread wake-up per batch instead of per chunk); None ends it.
Item = bytes | list[bytes] | list[memoryview] | None


class Source:
    """Chunks from `take` (blocking; None ends them), read as a file or copied to an fd.
    What `take` gives need stay valid only until it is called again."""

    def __init__(self, take: Callable[[], Item]) -> None:
        self.take = take
        self.pieces: deque[memoryview] = deque()
        self.done = False

    def _add(self, item: Item) -> None:
        if item is None:
            self.done = True
        elif isinstance(item, list):
            self.pieces.extend(memoryview(piece) for piece in item if piece)
        elif item:
            self.pieces.append(memoryview(item))

    def _fill(self) -> bool:
        if self.done:
            return False
        self._add(self.take())
        return not self.done

    def peek(self, size: int) -> bytes:
        while sum(len(p) for p in self.pieces) < size and not self.done:
            # Kept, not read: copied before `take` may reuse what they are views of.
            self.pieces = deque(memoryview(bytes(p)) for p in self.pieces)
            self._fill()
        return b"".join(bytes(p) for p in self.pieces)[:size]

    def read(self, size: int = -1) -> bytes:
        out = bytearray()
        while size < 0 or len(out) < size:
            if not self.pieces and not self._fill():
                break
            if not self.pieces:
                continue
            head = self.pieces[0]
            take = len(head) if size < 0 else min(len(head), size - len(out))
            out += head[:take]
            if take == len(head):
                self.pieces.popleft()
            else:
                self.pieces[0] = head[take:]
        return bytes(out)

    def copy_to(self, fd: int, size: int) -> None:
        """The next `size` bytes into the file `fd`, or skipped when fd is -1; the pieces
        already received go in one writev."""
        while size:
            if not self.pieces and not self._fill():
                raise InvalidParameter("Error processing tar file: unexpected EOF")
            self._take_waiting()
            views, total = [], 0
            for head in self.pieces:
                if total >= size or len(views) == _WRITEV_PIECES:
                    break
                views.append(head[:size - total])
                total += len(views[-1])
            done = os.writev(fd, views) if fd >= 0 else total
            size -= done
            while done:
                head = self.pieces[0]
                if done >= len(head):
                    done -= len(head)
                    self.pieces.popleft()
                else:
                    self.pieces[0] = head[done:]
                    done = 0

    def _take_waiting(self) -> None:
        """More pieces for one writev, where they can be had without waiting."""


class QueueSource(Source):
    """The chunks a queue gives, handed over by the event loop."""

    def __init__(self, chunks: queue.Queue[Item]) -> None:
        super().__init__(chunks.get)
        self.chunks = chunks

    def _take_waiting(self) -> None:
        while not self.done and len(self.pieces) < _WRITEV_PIECES:
            try:
                self._add(self.chunks.get_nowait())
            except queue.Empty:
                return


def is_plain(source: Source) -> bool:
    return not source.peek(6).startswith(_COMPRESSED)


def _number(field: bytes) -> int:
    if field[:1] and field[0] & 0x80:  # base-256, for values octal cannot hold
        return int.from_bytes(bytes([field[0] & 0x7F]) + field[1:], "big")
    text = field.strip(b" \0")
    try:
        return int(text or b"0", 8)
    except ValueError:
        raise InvalidParameter("Error processing tar file: invalid header") from None


def _text(field: bytes) -> str:
    return field.split(b"\0", 1)[0].decode("utf-8", "surrogateescape")


def _padded(source: Source, size: int) -> bytes:
    data = source.read(size)
    source.copy_to(-1, -size % _BLOCK)
    return data


def _pax(data: bytes) -> dict[str, str]:
    found = {}
    while data:
        length, _, rest = data.partition(b" ")
        try:
            n = int(length)
        except ValueError:
            raise InvalidParameter("Error processing tar file: invalid PAX header") from None
        record, data = rest[:n - len(length) - 1], data[n:]
        key, _, value = record.rstrip(b"\n").partition(b"=")
        found[key.decode()] = value.decode("utf-8", "surrogateescape")
    return found


class Data:
    """An entry's data, copied out once before the next entry is read."""

    def __init__(self, source: Source, size: int) -> None:
        self.source, self.size, self.left = source, size, size

    def write_to(self, fd: int) -> None:
        self.source.copy_to(fd, self.left)
        self.left = 0


def members(source: Source) -> Iterator[tuple[tarfile.TarInfo, Data]]:
    """Each entry's header and its data, to be copied before the next."""
    global_pax: dict[str, str] = {}
    pending: dict[str, str] = {}
    while True:
        block = source.read(_BLOCK)
        if not block.strip(b"\0"):
            return  # the end-of-archive blocks, or nothing at all
        if len(block) < _BLOCK:
            raise InvalidParameter("Error processing tar file: unexpected EOF")
        checksum = _number(block[148:156])
        if checksum != sum(block[:148]) + 256 + sum(block[156:]) and checksum != \
                sum(b - 256 if b > 127 else b for b in block[:148] + block[156:]) + 256:
            raise InvalidParameter("Error processing tar file: archive/tar: invalid tar "
                                   "header")
        kind, size = block[156:157], _number(block[124:136])
        if kind in (b"x", b"g"):
            (global_pax if kind == b"g" else pending).update(_pax(_padded(source, size)))
            continue
        if kind in (b"L", b"K"):
            key = "path" if kind == b"L" else "linkpath"
            pending[key] = _text(_padded(source, size))
            continue
        if kind not in _TYPES:
            raise InvalidParameter(f"Error processing tar file: unsupported entry type "
                                   f"{kind!r}")
        name = _text(block[0:100])
        if block[257:262] == b"ustar" and block[345:500].strip(b"\0"):
            name = _text(block[345:500]) + "/" + name
        fields = {**global_pax, **pending}
        pending = {}
        member = tarfile.TarInfo(fields.get("path", name))
        member.type = _TYPES[kind]
        member.mode = _number(block[100:108]) & 0o7777
        member.uid = int(fields.get("uid", _number(block[108:116])))
        member.gid = int(fields.get("gid", _number(block[116:124])))
        data = Data(source, int(fields.get("size", size)))
        member.size = data.left if member.type == tarfile.REGTYPE else 0
        member.mtime = float(fields.get("mtime", _number(block[136:148])))
        member.linkname = fields.get("linkpath", _text(block[157:257]))
        member.devmajor, member.devminor = _number(block[329:337]), _number(block[337:345])
        yield member, data
        # What the caller left of the data, then the block padding.
        source.copy_to(-1, data.left + (-data.size % _BLOCK))
