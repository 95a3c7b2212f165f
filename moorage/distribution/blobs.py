"""A layer blob streamed from a registry into the store in one pass.

The HTTP body (on the event loop) is read by a worker thread as a file: each
chunk is written to a content-store ingest (which hashes it) and handed to the
layer unpacker, which decompresses and extracts it and hashes the diff ID on
the way. Nothing is downloaded to a file first and read again. At the end of
the body the compressed digest and size are checked (distribution-spec
"Pulling blobs": the client verifies the content against the digest) before
the unpacker may finish, so a tampered blob fails the layer.

A body cut short is resumed with ``Range: bytes=<offset>-`` (the spec's range
GET on blobs), a bounded number of times.
"""

from __future__ import annotations

import asyncio
import io
import logging
import time
from collections.abc import Callable

import aiohttp

from moorage.distribution.client import Repository
from moorage.errors import InvalidParameter, SystemFailure
from moorage.image.manifest import Descriptor
from moorage.store.content import Ingest

log = logging.getLogger("moord.distribution")

MAX_RESUMES = 5
_CHUNK = 1 << 20
_PROGRESS_INTERVAL = 0.1


class Aborted(Exception):
    """The pull gave up on this layer because another one failed."""


class BlobSource:
    """The blob's bytes, fetched on the event loop; ``read_chunk`` runs there."""

    def __init__(self, repo: Repository, descriptor: Descriptor,
                 progress: Callable[[int], None]) -> None:
        self.repo = repo
        self.descriptor = descriptor
        self.offset = 0
        self.resumes = 0
        self.aborted = False
        self._progress = progress
        self._response: aiohttp.ClientResponse | None = None
        self._last_progress = 0.0

    async def read_chunk(self) -> bytes:
        """The next piece of the blob; b"" at its end (as many bytes as it declared)."""
        while True:
            if self.aborted:
                self.close()
                raise Aborted
            if self._response is None:
                if self.offset >= self.descriptor.size:
                    return b""
                await self._open()
            assert self._response is not None
            try:
                data = await self._response.content.read(_CHUNK)
            except (aiohttp.ClientError, TimeoutError, OSError) as e:
                await self._interrupted(e)
                continue
            if not data:
                if self.offset < self.descriptor.size:
                    await self._interrupted(EOFError("unexpected EOF"))
                    continue
                self.close()
                return b""
            self.offset += len(data)
            now = time.monotonic()
            if now - self._last_progress >= _PROGRESS_INTERVAL or \
                    self.offset >= self.descriptor.size:
                self._last_progress = now
                self._progress(self.offset)
            return data

    async def _open(self) -> None:
        headers = {"Range": f"bytes={self.offset}-"} if self.offset else {}
        url = self.repo.url(f"blobs/{self.descriptor.digest}")
        try:
            response = await self.repo.request("GET", url, headers=headers)
        except (aiohttp.ClientError, TimeoutError, OSError) as e:
            await self._interrupted(e)
            return
        if self.offset and response.status == 200:
            # The server ignored Range: skip what we already have.
            await _skip(response, self.offset)
        elif response.status not in (200, 206):
            await self.repo.check(response, 200)
        self._response = response

    async def _interrupted(self, error: BaseException) -> None:
        self.close()
        self.resumes += 1
        if self.resumes > MAX_RESUMES:
            raise SystemFailure(f"error pulling {self.descriptor.digest}: {error or 'EOF'} "
                              f"(gave up after {MAX_RESUMES} retries)")
        log.info("blob %s interrupted at %d bytes (%s): resuming", self.descriptor.digest,
                 self.offset, error)
        await asyncio.sleep(0.2 * self.resumes)

    def close(self) -> None:
        if self._response is not None:
            self._response.close()
            self._response = None


async def _skip(response: aiohttp.ClientResponse, count: int) -> None:
    while count > 0:
        data = await response.content.read(min(count, _CHUNK))
        if not data:
            raise SystemFailure("unexpected EOF skipping to the resume offset")
        count -= len(data)


class VerifyingReader(io.RawIOBase):
    """The blob as a blocking file for the unpacking thread: tees into ``ingest`` and
    refuses to end unless the bytes match the descriptor's digest and size."""

    def __init__(self, source: BlobSource, ingest: Ingest,
                 loop: asyncio.AbstractEventLoop) -> None:
        self._source = source
        self._ingest = ingest
        self._loop = loop
        self._buffer = b""
        self._pos = 0
        self._done = False

    def readable(self) -> bool:
        return True

    def read(self, size: int = -1) -> bytes:
        if self._pos == len(self._buffer):
            if self._done:
                return b""
            chunk = asyncio.run_coroutine_threadsafe(self._source.read_chunk(),
                                                     self._loop).result()
            if not chunk:
                self._done = True
                self._verify()
                return b""
            self._ingest.write(chunk)
            self._buffer, self._pos = chunk, 0
        if size is None or size < 0:
            size = len(self._buffer)
        start, self._pos = self._pos, min(self._pos + size, len(self._buffer))
        if start == 0 and self._pos == len(self._buffer):
            return self._buffer
        return self._buffer[start:self._pos]

    def readinto(self, target: memoryview) -> int:  # type: ignore[override]
        data = self.read(len(target))
        target[:len(data)] = data
        return len(data)

    def drain(self) -> None:
        """Read the rest of the blob; raises the verification error if it is not the
        descriptor's content."""
        while self.read(_CHUNK):
            pass

    def _verify(self) -> None:
        descriptor = self._source.descriptor
        # moby distribution/pull_v2.go: the verifier's message, word for word.
        if self._ingest.digest() != descriptor.digest or self._ingest.size != descriptor.size:
            raise InvalidParameter(
                f"filesystem layer verification failed for digest {descriptor.digest}")
