"""A response body written by a worker thread straight to the client's socket.

docker cp out of a container and export send hundreds of megabytes of files. Through
aiohttp each byte is read into Python, queued, and copied again into the transport's
buffer, which moves what is left after each partial send; here a file's bytes go from
its page cache to the socket with sendfile(2) and never enter Python. The response's
headers go through aiohttp first (its buffer is empty before the thread starts); the
body is framed as aiohttp would have framed it (chunked for HTTP/1.1), and aiohttp
ends it with write_eof. The event loop only reads the socket meanwhile; the thread
only writes.
"""

from __future__ import annotations

import asyncio
import os
import select
import socket
from collections.abc import Awaitable, Callable

from aiohttp import web
from aiohttp.abc import AbstractStreamWriter
from aiohttp.http_writer import StreamWriter

_GATHER = 64 << 10   # small writes (tar headers, padding) leave together up to this size


class SocketBody:
    """write() and sendfile() of a body in one thread; flush(), then close().

    It writes to a duplicate of the socket's fd: when the client goes away the
    transport closes its own, and a number the kernel hands out again must never
    receive the rest of this body."""

    def __init__(self, fd: int, chunked: bool) -> None:
        self.fd, self.chunked = os.dup(fd), chunked
        self.pending: list[bytes] = []
        self.pending_size = 0
        self.poll = select.poll()
        self.poll.register(fd, select.POLLOUT)

    def write(self, data: bytes) -> int:
        self.pending.append(bytes(data))
        self.pending_size += len(data)
        if self.pending_size >= _GATHER:
            self.flush()
        return len(data)

    def flush(self) -> None:
        if not self.pending_size:
            return
        pieces, size = self.pending, self.pending_size
        self.pending, self.pending_size = [], 0
        if self.chunked:
            pieces = [f"{size:x}\r\n".encode(), *pieces, b"\r\n"]
        self._send_all(b"".join(pieces) if len(pieces) > 1 else pieces[0])

    def sendfile(self, fd: int, size: int) -> int:
        """Up to `size` bytes of the file at its offset; fewer when it ends first."""
        self.flush()
        sent = 0
        offset = os.lseek(fd, 0, os.SEEK_CUR)
        if self.chunked:
            self._send_all(f"{size:x}\r\n".encode())
        while sent < size:
            try:
                moved = os.sendfile(self.fd, fd, offset + sent, size - sent)
            except BlockingIOError:
                self._wait()
                continue
            if not moved:
                break
            sent += moved
        os.lseek(fd, offset + sent, os.SEEK_SET)
        if sent < size:  # the file shrank: the chunk announced `size`, zeros fill it
            self._send_all(bytes(size - sent))
        if self.chunked:
            self._send_all(b"\r\n")
        return sent

    def close(self) -> None:
        os.close(self.fd)

    def _send_all(self, data: bytes) -> None:
        view = memoryview(data)
        while view:
            try:
                view = view[os.write(self.fd, view):]
            except BlockingIOError:
                self._wait()

    def _wait(self) -> None:
        for _, events in self.poll.poll():
            if events & (select.POLLERR | select.POLLHUP):
                raise ConnectionResetError("the client went away")


def send(body: SocketBody, write: Callable[[SocketBody], Awaitable[None]]) -> asyncio.Future:
    """`write(body)` (which runs its writes in a worker thread), the rest flushed, and
    the body closed once all that is over, whoever waits for it or not."""
    async def run() -> None:
        await write(body)
        await asyncio.to_thread(body.flush)

    def done(future: asyncio.Future) -> None:
        body.close()
        if not future.cancelled():
            future.exception()  # retrieved: a client gone is no error of ours

    sending = asyncio.ensure_future(run())
    sending.add_done_callback(done)
    return sending


async def direct_body(request: web.Request, writer: AbstractStreamWriter) -> SocketBody | None:
    """After prepare (`writer` is what it returned): a SocketBody on the request's
    socket with aiohttp's buffer empty, or None where bytes cannot go to the socket as
    they are (TLS)."""
    transport = request.transport
    sock = transport.get_extra_info("socket") if transport is not None else None
    if transport is None or sock is None or transport.get_extra_info("sslcontext") is not None \
            or sock.family not in (socket.AF_UNIX, socket.AF_INET, socket.AF_INET6) \
            or not isinstance(writer, StreamWriter):
        return None
    writer.send_headers()
    while transport.get_write_buffer_size():
        await asyncio.sleep(0.001)
    return SocketBody(sock.fileno(), writer.chunked)
