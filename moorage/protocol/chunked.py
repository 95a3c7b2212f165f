"""HTTP/1.1's chunked transfer coding, decoded without copying the data and without I/O.

`ChunkedDecoder.feed` takes the bytes as they come, in any pieces, and gives back views
of the chunks' data in them. `completion` says, for a parser that has read exactly
what the decoder has, which bytes would bring it to the end of the body: moord hands
such a parser (aiohttp's, which it reads past for docker cp) that ending instead of
the body it read itself.
"""

from __future__ import annotations

_SIZE, _DATA, _DATA_END, _TRAILER, _DONE = range(5)
_MAX_LINE = 4096  # a size line or a trailer field; Go's net/http allows the same
_HEX = frozenset(b"0123456789abcdefABCDEF")


class ChunkedError(ValueError):
    """Not the chunked coding; the message is Go's (net/http/internal)."""


class ChunkedDecoder:
    def __init__(self) -> None:
        self._state = _SIZE
        self._line = bytearray()
        self._left = 0  # data bytes still to come in the current chunk
        self._crlf = 0  # bytes of the CRLF after a chunk's data already seen
        self.rest = memoryview(b"")  # what came after the body's end

    @property
    def done(self) -> bool:
        return self._state == _DONE

    def feed(self, data: memoryview) -> list[memoryview]:
        """The chunk data in `data`, as views of it; what follows the body's end is
        kept in `rest`."""
        pieces = []
        at, end = 0, len(data)
        while at < end:
            state = self._state
            if state == _DATA:
                take = min(self._left, end - at)
                pieces.append(data[at:at + take])
                at += take
                self._left -= take
                if not self._left:
                    self._state = _DATA_END
            elif state == _DATA_END:
                if data[at] != b"\r\n"[self._crlf]:
                    raise ChunkedError("malformed chunked encoding")
                at += 1
                self._crlf += 1
                if self._crlf == 2:
                    self._crlf, self._state = 0, _SIZE
            elif state == _DONE:
                self.rest = data[at:]
                break
            else:
                at = self._read_line(data, at, end)
        return pieces

    def _read_line(self, data: memoryview, at: int, end: int) -> int:
        window = bytes(data[at:min(end, at + 64)])
        newline = window.find(b"\n")
        self._line += window if newline < 0 else window[:newline]
        if len(self._line) > _MAX_LINE:
            raise ChunkedError("header line too long")
        if newline < 0:
            return at + len(window)
        if not self._line.endswith(b"\r"):
            raise ChunkedError("malformed chunked encoding")
        line = bytes(self._line[:-1])
        self._line.clear()
        if self._state == _TRAILER:
            if not line:
                self._state = _DONE
        else:
            size = _size(line)
            self._state, self._left = (_DATA, size) if size else (_TRAILER, 0)
        return at + newline + 1

    def completion(self, limit: int) -> bytes | None:
        """Bytes that end the body for a parser that has read what this decoder has
        (data made up of zeros), or None when that would take more than `limit` of
        them or the body has ended already."""
        if self._state == _DATA:
            lead, size = b"", self._left
        elif self._state == _DATA_END:
            return b"\r\n"[self._crlf:] + b"0\r\n\r\n"
        elif self._state == _SIZE and self._line:
            # Ends the size line the parser is in: its chunk has the size read so far.
            lead = b"\n" if self._line.endswith(b"\r") else b"\r\n"
            try:
                size = _size(bytes(self._line).rstrip(b"\r"))
            except ChunkedError:
                return None
            if not size:
                return lead + b"\r\n"
        elif self._state == _SIZE:
            return b"0\r\n\r\n"
        else:
            return None
        if size > limit:
            return None
        return lead + bytes(size) + b"\r\n0\r\n\r\n"


def _size(line: bytes) -> int:
    digits = line.split(b";", 1)[0].rstrip(b" \t")
    if not digits or len(digits) > 16 or not _HEX.issuperset(digits):
        raise ChunkedError("invalid byte in chunk length")
    return int(digits, 16)
