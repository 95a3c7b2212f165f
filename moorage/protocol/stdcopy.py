"""Docker's stdout/stderr multiplexing (Engine API, "Attach to a container", stream format).

Each frame is an 8-byte header — stream id (0 stdin, 1 stdout, 2 stderr, 3
system error), three zero bytes, the payload length as big-endian uint32 —
followed by the payload. Used on the wire when the container has no TTY.
"""

from __future__ import annotations

import struct

STDIN, STDOUT, STDERR, SYSTEMERR = 0, 1, 2, 3
HEADER_SIZE = 8
_HEADER = struct.Struct(">BxxxI")


def frame(stream: int, payload: bytes) -> bytes:
    return _HEADER.pack(stream, len(payload)) + payload


def parse_header(header: bytes) -> tuple[int, int]:
    """(stream, payload size) of an 8-byte header."""
    stream, size = _HEADER.unpack(header)
    return stream, size


class Decoder:
    """Feed bytes in any chunking; get (stream, payload) frames back whole."""

    def __init__(self) -> None:
        self._buffer = bytearray()

    def feed(self, data: bytes) -> list[tuple[int, bytes]]:
        self._buffer += data
        frames = []
        while len(self._buffer) >= HEADER_SIZE:
            stream, size = _HEADER.unpack_from(self._buffer)
            if len(self._buffer) < HEADER_SIZE + size:
                break
            frames.append((stream, bytes(self._buffer[HEADER_SIZE:HEADER_SIZE + size])))
            del self._buffer[:HEADER_SIZE + size]
        return frames

    @property
    def pending(self) -> int:
        """Bytes held back waiting for the rest of a frame."""
        return len(self._buffer)
