"""Blocking file objects over an aiohttp request body and response, for worker threads.

Loading, importing and saving run in a thread (tarfile and hashing block), yet
their bytes come from and go to the event loop's connection. These adapters
carry them across in large chunks, so an archive never sits whole in memory and
the loop stays free; each call waits for the loop, which gives back-pressure.
"""

from __future__ import annotations

import asyncio
import io

from aiohttp import StreamReader, web

CHUNK = 1 << 20


class BodyReader(io.RawIOBase):
    """The request body as a readable binary file, for use off the event loop."""

    def __init__(self, content: StreamReader, loop: asyncio.AbstractEventLoop) -> None:
        self._content = content
        self._loop = loop
        self._buffer = b""
        self._pos = 0
        self._eof = False

    def readable(self) -> bool:
        return True

    def _fill(self) -> None:
        if self._pos == len(self._buffer) and not self._eof:
            chunk = asyncio.run_coroutine_threadsafe(
                self._content.read(CHUNK), self._loop).result()
            self._buffer, self._pos, self._eof = chunk, 0, not chunk

    def read(self, size: int = -1) -> bytes:
        if size is None or size < 0:
            return self.readall()
        self._fill()
        # An offset rather than re-slicing: tarfile asks for 10 KiB at a time.
        start, self._pos = self._pos, min(self._pos + size, len(self._buffer))
        return self._buffer[start:self._pos]

    def readinto(self, target: memoryview) -> int:  # type: ignore[override]
        data = self.read(len(target))
        target[:len(data)] = data
        return len(data)


class ResponseWriter(io.RawIOBase):
    """A prepared streaming response as a writable binary file, for use off the loop."""

    def __init__(self, response: web.StreamResponse, loop: asyncio.AbstractEventLoop) -> None:
        self._response = response
        self._loop = loop
        self._pending = bytearray()

    def writable(self) -> bool:
        return True

    def write(self, data: bytes) -> int:  # type: ignore[override]
        self._pending += data
        if len(self._pending) >= CHUNK:
            self.flush()
        return len(data)

    def flush(self) -> None:
        if self._pending:
            chunk, self._pending = bytes(self._pending), bytearray()
            asyncio.run_coroutine_threadsafe(self._response.write(chunk), self._loop).result()
