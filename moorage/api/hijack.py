"""Docker's hijacked connections (attach, exec start): `101 UPGRADED`, then raw bytes.

After the 101 the connection is no longer HTTP: the client's bytes are the
process's stdin and ours its output. aiohttp hands post-upgrade bytes to a
payload parser (as for WebSockets), so RawInput plays that part. A client
half-closes for stdin EOF (docker CLI: CloseWrite), which asyncio would turn
into a full close unless the protocol's eof_received keeps the transport open.

Stdin is bounded: past _STDIN_HIGH_WATER queued bytes the client's socket is not
read until the process takes them, so a fast client is slowed, never buffered
without end. On a terminal, the detach keys (moorage.protocol.detachkeys) end
the stream and leave the container running, as dockerd does.

Output must not reach a client before it has read the 101: docker-py reads the
headers through a buffered file and then the bare socket, so bytes that arrived
with the headers are lost. dockerd only makes this unlikely (its process starts
well after its 101); on a unix socket we wait until the client has read it.
"""

from __future__ import annotations

import asyncio
import fcntl
import socket
import struct
import termios
from collections import deque

from aiohttp import web

from moorage.api.server import start_stream
from moorage.errors import InvalidParameter
from moorage.protocol import detachkeys

RAW_STREAM = "application/vnd.docker.raw-stream"
MULTIPLEXED_STREAM = "application/vnd.docker.multiplexed-stream"
_HIGH_WATER = 1 << 20
_STDIN_HIGH_WATER = 256 * 1024
_READ_101_SECONDS = 1.0  # a client that never reads gets its output after this anyway


class RawInput:
    """aiohttp's payload-parser interface, queuing what the client sends (bounded)."""

    def __init__(self, transport: asyncio.BaseTransport | None) -> None:
        # By what it can do: uvloop's transports are no asyncio.ReadTransport subclasses.
        self.transport: asyncio.ReadTransport | None = \
            transport if hasattr(transport, "pause_reading") else None  # type: ignore[assignment]
        self.chunks: deque[bytes] = deque()
        self.size = 0
        self.eof = False
        self.ready = asyncio.Event()
        self.paused = False

    def feed_data(self, data: bytes) -> tuple[bool, bytes]:
        self.chunks.append(bytes(data))
        self.size += len(data)
        self.ready.set()
        if self.size > _STDIN_HIGH_WATER and not self.paused and self.transport is not None:
            self.transport.pause_reading()
            self.paused = True
        return False, b""

    def feed_eof(self) -> None:
        self.eof = True
        self.ready.set()

    async def get(self) -> bytes | None:
        """The next chunk; None at EOF."""
        while not self.chunks:
            if self.eof:
                return None
            self.ready.clear()
            await self.ready.wait()
        data = self.chunks.popleft()
        self.size -= len(data)
        if self.paused and self.size <= _STDIN_HIGH_WATER // 2:
            self.paused = False
            assert self.transport is not None
            if not self.transport.is_closing():
                self.transport.resume_reading()
        return data


class _HalfClose(asyncio.Protocol):
    """Stands in front of aiohttp's protocol so that the client's EOF is stdin's EOF."""

    def __init__(self, inner: asyncio.Protocol, raw: RawInput, keep_open: bool) -> None:
        self.inner = inner
        self.raw = raw
        self.keep_open = keep_open

    def data_received(self, data: bytes) -> None:
        self.inner.data_received(data)

    def eof_received(self) -> bool:
        self.raw.feed_eof()
        # Keeps the transport open for our output. Over TLS asyncio ignores the answer
        # (and warns about True): _keep_tls_open_after_eof does it there.
        return self.keep_open

    def connection_lost(self, exc: Exception | None) -> None:
        self.inner.connection_lost(exc)

    def pause_writing(self) -> None:
        self.inner.pause_writing()

    def resume_writing(self) -> None:
        self.inner.resume_writing()


def _keep_tls_open_after_eof(transport: asyncio.BaseTransport) -> bool:
    """asyncio's TLS shuts the connection down as soon as the client's close_notify
    arrives (eof_received's "keep open" has no effect there), but the docker CLI sends
    close_notify for stdin's EOF (CloseWrite) and reads our output after it, as Go's
    TLS allows. So the shutdown waits until our side closes the transport. Returns
    whether the transport is TLS."""
    ssl_protocol = getattr(transport, "_ssl_protocol", None)
    if ssl_protocol is None:
        return False
    shutdown = ssl_protocol._start_shutdown

    def when_we_close() -> None:
        if getattr(transport, "_closed", True):
            shutdown()

    ssl_protocol._start_shutdown = when_we_close
    return True


class _Stdin:
    """A client's stdin, cut at the detach keys."""

    def __init__(self, detach_keys: bytes) -> None:
        self.scanner = detachkeys.DetachScanner(detach_keys)
        self.detached = False

    async def _next(self) -> bytes | None:
        raise NotImplementedError

    async def read(self) -> bytes | None:
        """The next bytes of the client's stdin; None at its EOF or once the client typed
        the detach keys (`detached` says which)."""
        while not self.detached:
            data = await self._next()
            if data is None:
                return None
            data, self.detached = self.scanner.feed(data)
            if data:
                return data
        return None


class Hijacked(_Stdin):
    """The client's connection once hijacked: read its stdin, write our output."""

    def __init__(self, request: web.Request, response: web.StreamResponse,
                 upgraded: bool, detach_keys: bytes = b"") -> None:
        super().__init__(detach_keys)
        self.request = request
        self.response = response
        self.upgraded = upgraded
        self.input = RawInput(request.transport)
        if upgraded:
            request.protocol.set_parser(self.input)  # type: ignore[arg-type]
            transport = request.transport
            assert transport is not None
            tls = _keep_tls_open_after_eof(transport)
            transport.set_protocol(_HalfClose(request.protocol, self.input, keep_open=not tls))

    async def _next(self) -> bytes | None:
        if self.upgraded:
            return await self.input.get()
        return await self.request.content.read(65536) or None

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


class WebSocketStream(_Stdin):
    """An attach over a WebSocket (GET /containers/{id}/attach/ws), read and written as a
    Hijacked is: the client's messages, text or binary, are stdin; the output goes as
    binary messages (API 1.28 on), raw, since a WebSocket has no room for stdcopy's
    stream headers."""

    def __init__(self, ws: web.WebSocketResponse, detach_keys: bytes = b"") -> None:
        super().__init__(detach_keys)
        self.response = ws

    async def _next(self) -> bytes | None:
        message = await self.response.receive()
        if message.type == web.WSMsgType.BINARY:
            return bytes(message.data)
        if message.type == web.WSMsgType.TEXT:
            return str(message.data).encode()
        return None  # closed, or an error: stdin's end

    async def write(self, data: bytes) -> None:
        if self.response.closed:
            raise ConnectionResetError("client went away")
        await self.response.send_bytes(data)

    @property
    def closed(self) -> bool:
        return self.response.closed


def detach_keys(keys: str, message: str) -> bytes:
    """Docker's detach keys as bytes ("" for ctrl-p,ctrl-q); a bad spelling is refused
    in dockerd's words, `message` with the keys in its {}."""
    try:
        return detachkeys.parse(keys)
    except detachkeys.InvalidDetachKeys:
        raise InvalidParameter(message.format(keys)) from None


async def hijack(request: web.Request, content_type: str,
                 detach_keys: bytes = b"") -> Hijacked:
    """Answer 101 UPGRADED (or 200 for a client that did not ask to upgrade).

    `detach_keys` (moorage.protocol.detachkeys.parse) are looked for in stdin; dockerd
    does so on a terminal only, so its callers pass them for a tty."""
    upgraded = "upgrade" in request.headers.get("Connection", "").lower()
    if upgraded:
        response = web.StreamResponse(status=101, reason="UPGRADED", headers={
            "Content-Type": content_type, "Connection": "Upgrade", "Upgrade": "tcp"})
    else:
        response = web.StreamResponse(status=200, headers={"Content-Type": content_type})
    response.force_close()
    await start_stream(request, response)
    hijacked = Hijacked(request, response, upgraded, detach_keys)  # takes stdin from here
    await _until_read(request.transport)
    return hijacked


async def _until_read(transport: asyncio.BaseTransport | None) -> None:
    """Until the client has read what was sent (a unix socket's SIOCOUTQ counts the
    bytes its peer has not read yet), at most _READ_101_SECONDS."""
    sock = transport.get_extra_info("socket") if transport is not None else None
    if sock is None or sock.family != socket.AF_UNIX:
        return
    loop = asyncio.get_running_loop()
    deadline = loop.time() + _READ_101_SECONDS
    while loop.time() < deadline and not transport.is_closing():
        unread = struct.unpack("i", fcntl.ioctl(sock.fileno(), termios.TIOCOUTQ, b"\0" * 4))[0]
        if not unread and not transport.get_write_buffer_size():
            return
        await asyncio.sleep(0.0005)
