"""Decompressing a stream of unknown compression: gzip, zstd, xz, bzip2 or none.

Incremental and bounded: every decoder call yields at most ``CHUNK`` bytes, so a
small "bomb" cannot balloon memory, and a stream that ends inside a frame is an
error rather than a short result.
"""

from __future__ import annotations

import bz2
import lzma
import zlib
from collections.abc import Callable, Iterator
from typing import BinaryIO, Protocol

from moorage.errors import InvalidParameter

# Big reads: a layer can be gigabytes, and per-call overhead is Python's.
CHUNK = 1 << 20
_MAGIC_LEN = 6


class _Decompressor(Protocol):
    """The incremental API shared by bz2, lzma and (PEP 784) zstd decompressors."""

    @property
    def eof(self) -> bool: ...
    @property
    def needs_input(self) -> bool: ...
    @property
    def unused_data(self) -> bytes: ...
    def decompress(self, data: bytes, max_length: int = -1) -> bytes: ...


def decompressed(stream: BinaryIO, what: str) -> Iterator[bytes]:
    """The bytes of ``stream`` decompressed, in chunks (some possibly empty).

    The format is told by magic bytes, as moby's DecompressStream does. Errors are
    ``InvalidParameter("<what>: <format> stream is truncated|corrupt…")``.
    """
    head = _read_head(stream)
    if head.startswith(b"\x1f\x8b\x08"):
        return _gunzip(stream, head, what)
    if head.startswith(b"\x28\xb5\x2f\xfd"):
        # The backport of Python 3.14's compression.zstd (PEP 784); imported only
        # when a zstd layer shows up.
        from backports import zstd

        return _frames(stream, head, zstd.ZstdDecompressor, "zstd", zstd.ZstdError, what)
    if head.startswith(b"\xfd7zXZ\x00"):
        return _frames(stream, head, lzma.LZMADecompressor, "xz", lzma.LZMAError, what)
    if head.startswith(b"BZh"):
        return _frames(stream, head, bz2.BZ2Decompressor, "bzip2", OSError, what)
    return _plain(stream, head)


def _read_head(stream: BinaryIO) -> bytes:
    head = stream.read(CHUNK)
    while head and len(head) < _MAGIC_LEN:
        more = stream.read(CHUNK)
        if not more:
            break
        head += more
    return head


def _plain(stream: BinaryIO, data: bytes) -> Iterator[bytes]:
    while data:
        yield data
        data = stream.read(CHUNK)


def _gunzip(stream: BinaryIO, data: bytes, what: str) -> Iterator[bytes]:
    """Inflate gzip members one after another (RFC 1952 allows several, Go reads them all)."""
    while data:
        inflater = zlib.decompressobj(wbits=16 + zlib.MAX_WBITS)
        while not inflater.eof:
            data = data or stream.read(CHUNK)
            # With no input left, this only drains what zlib still holds.
            out = _decode(inflater.decompress, data, f"{what}: gzip", zlib.error, CHUNK)
            if not data and not out and not inflater.eof:
                raise InvalidParameter(f"{what}: gzip stream is truncated")
            data = inflater.unconsumed_tail
            yield out
        data = inflater.unused_data or stream.read(CHUNK)


def _frames(
    stream: BinaryIO,
    data: bytes,
    new: Callable[[], _Decompressor],
    kind: str,
    error: type[Exception],
    what: str,
) -> Iterator[bytes]:
    """Decode consecutive frames (or streams) until the input ends, output capped per call."""
    while data:
        decoder = new()
        while not decoder.eof:
            if decoder.needs_input:
                if not data:
                    data = stream.read(CHUNK)
                if not data:
                    raise InvalidParameter(f"{what}: {kind} stream is truncated")
                chunk, data = data, b""
            else:
                chunk = b""
            yield _decode(decoder.decompress, chunk, f"{what}: {kind}", error, CHUNK)
        data = decoder.unused_data or stream.read(CHUNK)


def _decode(
    decode: Callable[..., bytes], data: bytes, label: str, error: type[Exception], *args: int
) -> bytes:
    try:
        return decode(data, *args)
    except (error, EOFError) as e:
        raise InvalidParameter(f"{label} stream is corrupt: {e}") from None
