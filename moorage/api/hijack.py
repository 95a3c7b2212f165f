"""Docker's hijacked connections (attach, exec start): `101 UPGRADED`, then raw bytes.

After the 101 the connection is no longer HTTP: the client's bytes are the
process's stdin and ours its output. aiohttp hands post-upgrade bytes to a
payload parser (as for WebSockets), so RawInput plays that part. A client
half-closes for stdin EOF (docker CLI: CloseWrite), which asyncio would turn
into a full close unless the protocol's eof_received keeps the transport open.
"""

from __future__ import annotations

import asyncio

from aiohttp import web

RAW_STREAM = "application/vnd.docker.raw-stream"
MULTIPLEXED_STREAM = "application/vnd.docker.multiplexed-stream"
_HIGH_WATER = 1 << 20


class RawInput:
    """aiohttp's payload-parser interface, queuing what the client sends."""

    def __init__(self) -> None:
        self.queue: asyncio.Queue[bytes | None] = asyncio.Queue()

    def feed_data(self, data: bytes) -> tuple[bool, bytes]:
        self.queue.put_nowait(bytes(data))
        return False, b""

    def feed_eof(self) -> None:
        self.queue.put_nowait(None)


class _HalfClose(asyncio.Protocol):
    """Stands in front of aiohttp's protocol so that the client's EOF is stdin's EOF."""

    def __init__(self, inner: asyncio.Protocol, raw: RawInput) -> None:
        self.inner = inner
        self.raw = raw

    def data_received(self, data: bytes) -> None:
        self.inner.data_received(data)

    def eof_received(self) -> bool:
        self.raw.feed_eof()
        return True  # keep the transport open for our output

    def connection_lost(self, exc: Exception | None) -> None:
        self.inner.connection_lost(exc)

    def pause_writing(self) -> None:
        self.inner.pause_writing()

    def resume_writing(self) -> None:
        self.inner.resume_writing()


class Hijacked:
    """The client's connection once hijacked: read its stdin, write our output."""

    def __init__(self, request: web.Request, response: web.StreamResponse,
                 upgraded: bool) -> None:
        self.request = request
        self.response = response
        self.upgraded = upgraded
        self.input = RawInput()
        if upgraded:
            request.protocol.set_parser(self.input)  # type: ignore[arg-type]
            transport = request.transport
            assert transport is not None
            transport.set_protocol(_HalfClose(request.protocol, self.input))

    async def read(self) -> bytes | None:
        """The next bytes of the client's stdin; None at its EOF."""
        if self.upgraded:
            return await self.input.queue.get()
        data = await self.request.content.read(65536)
        return data or None

    async def write(self, data: bytes) -> None:
        if not self.upgraded:
            await self.response.write(data)
            return
        transport = self.request.transport
        if transport is None or transport.is_closing():
            raise ConnectionResetError("client went away")
        transport.write(data)
        while transport.get_write_buffer_size() > _HIGH_WATER:
            if transport.is_closing():
                raise ConnectionResetError("client went away")
            await asyncio.sleep(0.01)

    @property
    def closed(self) -> bool:
        transport = self.request.transport
        return transport is None or transport.is_closing()


async def hijack(request: web.Request, content_type: str) -> Hijacked:
    """Answer 101 UPGRADED (or 200 for a client that did not ask to upgrade)."""
    upgraded = "upgrade" in request.headers.get("Connection", "").lower()
    if upgraded:
        response = web.StreamResponse(status=101, reason="UPGRADED", headers={
            "Content-Type": content_type, "Connection": "Upgrade", "Upgrade": "tcp"})
    else:
        response = web.StreamResponse(status=200, headers={"Content-Type": content_type})
    response.force_close()
    await response.prepare(request)
    return Hijacked(request, response, upgraded)
