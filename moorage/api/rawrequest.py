"""Request bodies read straight from the socket by a worker thread (docker cp into a
container), past aiohttp's parser; rawbody.py does the same for response bodies.

aiohttp gives a handler the body as its parser decoded it: the docker CLI sends 32 KiB
chunks, ~6400 for 200 MB, each copied twice and passed through several layers of
Python on the event loop, then handed to the thread that writes the files. That was
half the engine's CPU of a copy. For the requests a route names, the connection keeps
the raw bytes that came with and after the request's head (`Runner`), so that the
handler can take the body over (`claim`): the transport stops reading, and the thread
that writes the files reads the socket itself into one reused buffer and decodes the
chunked coding there (moorage.protocol.chunked).

aiohttp's parser has to agree with what was done in its place:
- what it had decoded before the claim is found again by decoding the recorded bytes,
  and must match what it gave (else there is no claim and the body comes the usual
  way; so too over TLS, for a Content-Length body, or one already whole);
- at the body's end it is handed bytes that end the body from where it stopped
  (`ChunkedDecoder.completion`: the data it never saw as zeros, at most
  _COMPLETION_LIMIT of them), then what came after the body, and the connection goes
  on as if it had read everything;
- a body left unread gives the connection back untouched, so aiohttp reads it as
  usual; one read part way (a bad tar, a cancelled request) closes the connection
  after the answer, though not the socket while the client still sends the rest
  (`_linger`).

This relies on aiohttp's internals (pinned in pyproject): the handler's message queue,
request count and constructor arguments, and the StreamReader's buffer.
"""

from __future__ import annotations

import functools
import os
import select
import threading
import time
from collections.abc import Callable
from typing import Any

from aiohttp import web
from aiohttp.http_parser import RawRequestMessage
from aiohttp.streams import StreamReader
from aiohttp.web_protocol import RequestHandler

from moorage.errors import InvalidParameter
from moorage.protocol.chunked import ChunkedDecoder, ChunkedError

# Raw bytes kept after a wanted request's head until its handler claims the body:
# more than aiohttp buffers before pausing the connection (2 x 256 KiB), after which
# a claim could not be checked anyway.
_RECORD_LIMIT = 1 << 20
# Zeros handed to the parser for the chunk it was in at the claim: aiohttp's StreamReader
# pauses the connection past 512 KiB, which would stop its parser inside them.
_COMPLETION_LIMIT = 256 << 10
_BUFFER = 256 << 10
# aiohttp's lingering close reads an unread body for as long (its lingering_time).
_LINGER_SECONDS = 10.0

Wanted = Callable[[RawRequestMessage], bool]


class Runner(web.AppRunner):
    """An AppRunner whose connections record the raw bytes of the requests `wanted`
    names, for their handlers to claim."""

    def __init__(self, app: web.Application, *, wanted: Wanted, **kwargs: Any) -> None:
        super().__init__(app, **kwargs)
        self._wanted = wanted

    @property
    def server(self) -> Any:
        """The protocol factory the sites listen with."""
        server = super().server
        if server is None:
            return None
        return functools.partial(_Handler, server, self._wanted, loop=server._loop,
                                 **server._kwargs)


class _Recording:
    def __init__(self, message: RawRequestMessage, payload: StreamReader, data: bytes):
        self.message, self.payload = message, payload
        self.chunks = [data]
        self.size = len(data)

    def add(self, data: bytes) -> bool:
        self.size += len(data)
        self.chunks.append(data)
        return self.size <= _RECORD_LIMIT


class _Handler(RequestHandler):
    __slots__ = ("_wanted", "recording")

    def __init__(self, server: web.Server, wanted: Wanted, **kwargs: Any) -> None:
        super().__init__(server, **kwargs)
        self._wanted = wanted
        self.recording: _Recording | None = None

    def data_received(self, data: bytes) -> None:
        if self.recording is not None and not self.recording.add(data):
            self.recording = None
        count = self._request_count
        super().data_received(data)
        if self._request_count != count and self._messages:
            message, payload = self._messages[-1]
            wanted = isinstance(message, RawRequestMessage) and message.chunked \
                and self._wanted(message)
            self.recording = _Recording(message, payload, data) if wanted else None


def claim(request: web.BaseRequest) -> ClaimedBody | None:
    """The rest of the request's body, to be read by a worker thread, or None when it
    comes the usual way (request.content). The caller releases a claimed body."""
    protocol = request.protocol
    recording = getattr(protocol, "recording", None)
    if recording is None or recording.payload is not request.content:
        return None
    protocol.recording = None  # type: ignore[attr-defined]
    transport = request.transport
    if transport is None or transport.get_extra_info("sslcontext") is not None:
        return None
    sock = transport.get_extra_info("socket")
    if sock is None:
        return None
    found = _decode_recorded(recording)
    if found is None:
        return None
    decoder, pieces = found
    content = request.content
    completion = decoder.completion(_COMPLETION_LIMIT)
    # The parser gave exactly these bytes, and has nothing more held back.
    if completion is None or content._cursor or content._buffer_offset \
            or content.total_bytes != sum(map(len, pieces)) \
            or b"".join(pieces) != b"".join(content._buffer):
        return None
    try:
        claimed = ClaimedBody(protocol, transport, content, sock.fileno(), decoder, pieces,
                              completion)
    except OSError:  # out of file descriptors: the usual way it is
        return None
    transport.pause_reading()
    return claimed


def _decode_recorded(recording: _Recording
                     ) -> tuple[ChunkedDecoder, list[memoryview]] | None:
    message = recording.message
    head = (f"{message.method} {message.path} HTTP/{message.version.major}."
            f"{message.version.minor}\r\n").encode("utf-8", "surrogateescape")
    first = recording.chunks[0]
    start = first.find(head)
    end = first.find(b"\r\n\r\n", start) if start >= 0 else -1
    if end < 0:
        return None  # the head came in pieces: rare enough to go the usual way
    decoder = ChunkedDecoder()
    try:
        pieces = decoder.feed(memoryview(first)[end + 4:])
        for data in recording.chunks[1:]:
            pieces += decoder.feed(memoryview(data))
    except ChunkedError:
        return None
    return decoder, pieces


class ClaimedBody:
    """A claimed body: `read` in one worker thread, `release` on the loop once done."""

    def __init__(self, protocol: Any, transport: Any, content: StreamReader, fd: int,
                 decoder: ChunkedDecoder, pieces: list[memoryview], completion: bytes):
        self._protocol, self._transport, self._content = protocol, transport, content
        self._wake = os.eventfd(0, os.EFD_CLOEXEC | os.EFD_NONBLOCK)
        try:
            # Its own fd: one the transport closes could be handed out again meanwhile.
            self._fd = os.dup(fd)
        except OSError:
            os.close(self._wake)
            raise
        self._decoder = decoder
        self._first: list[memoryview] | None = pieces
        self._completion = completion
        self._buffer = bytearray(_BUFFER)
        self._poll = select.poll()
        self._poll.register(self._fd, select.POLLIN)
        self._poll.register(self._wake, select.POLLIN)
        self._lock = threading.Lock()
        self._reading = False
        self._started = False
        self._released = False

    def read(self) -> list[memoryview] | None:
        """The body's next bytes, as views valid until the next call; None at its end.
        Blocks."""
        with self._lock:
            if self._released:
                raise ConnectionAbortedError("the request is over")
            self._reading = self._started = True
        try:
            return self._next()
        except ChunkedError as err:
            raise InvalidParameter(str(err)) from None
        finally:
            with self._lock:
                self._reading = False
                if self._released:
                    self._close()

    def _next(self) -> list[memoryview] | None:
        if self._first is not None:
            first, self._first = self._first, None
            if first:
                return first
        buffer = memoryview(self._buffer)
        while not self._decoder.done:
            count = self._receive(buffer, None)
            if not count:
                raise InvalidParameter("unexpected EOF")
            pieces = self._decoder.feed(buffer[:count])
            if pieces:
                return pieces
        return None

    def release(self) -> None:
        """Hand the connection back to aiohttp (on the loop, once the request is
        handled or given up)."""
        with self._lock:
            self._released = True
            reading = self._reading
            if reading:  # given up while the consumer reads: its read() closes the fds
                os.eventfd_write(self._wake, 1)
        if not self._started:
            self._close()
            self._transport.resume_reading()  # aiohttp reads the body as if never claimed
        elif not reading and self._decoder.done and self._content.exception() is None:
            self._close()
            self._content.read_nowait()  # what the parser decoded before the claim
            self._protocol.data_received(self._completion + bytes(self._decoder.rest))
            if not self._transport.is_closing() and not self._transport.is_reading():
                self._transport.resume_reading()
        else:
            # The parser stopped part way through a body that was read on, never to be
            # ended: the connection closes after the answer.
            self._protocol.close()
            self._content.feed_eof()
            if not reading:
                # The consumer stopped before the body's end (a tar refused, a full disk).
                # The socket stays open through this fd while what the client still sends
                # is read and dropped, as aiohttp's or Go's lingering close would: a
                # client still sending gets the answer, not a broken pipe.
                threading.Thread(target=self._linger, name="request body",
                                 daemon=True).start()

    def _receive(self, buffer: memoryview, deadline: float | None) -> int | None:
        """Bytes read into `buffer`, 0 at the client's end, None once `deadline` (a
        monotonic time; None: no end) has passed; ConnectionAbortedError when release()
        wakes it."""
        while True:
            try:
                return os.readv(self._fd, [buffer])
            except BlockingIOError:
                left = None if deadline is None else deadline - time.monotonic()
                if left is not None and left <= 0:
                    return None
                if self._wake in dict(self._poll.poll(None if left is None else left * 1000)):
                    raise ConnectionAbortedError("the request is over") from None

    def _linger(self) -> None:
        deadline = time.monotonic() + _LINGER_SECONDS
        buffer = memoryview(self._buffer)
        try:
            while not self._decoder.done:
                count = self._receive(buffer, deadline)
                if not count:
                    return
                self._decoder.feed(buffer[:count])
        except (OSError, ChunkedError):
            return
        finally:
            self._close()

    def _close(self) -> None:
        if self._fd >= 0:
            os.close(self._fd)
            os.close(self._wake)
            self._fd = -1
