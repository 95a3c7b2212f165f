"""The daemon's side of the shims: the zygote process and per-shim connections."""

from __future__ import annotations

import asyncio
import socket
import subprocess
import sys
import threading
from collections.abc import Awaitable, Callable
from typing import TypeVar

from moorage import json_codec, streamwrite
from moorage.errors import MoorError, NotFound, SystemFailure
from moorage.protocol import stdcopy
from moorage.shim.wire import (
    EXIT_STREAM,
    CreateOutcome,
    CreateResult,
    ExitRecord,
    Failure,
    Forked,
    Message,
    ShimConfig,
    StreamOpened,
    Wait,
    decode_reply,
)

# Deadlines of the daemon's requests to a shim: a hung shim is an error, never a hung
# API call. A create or an exec runs the runtime (and its hooks); the rest is the
# shim's own work. `wait` has none: it lasts as long as the container.
CREATE_SECONDS = 60.0
SPAWN_SECONDS = 30.0
REQUEST_SECONDS = 5.0
# A reply line is a small JSON document; the stream readers' limit, as before.
_REPLY_LIMIT = 1 << 20


T = TypeVar("T")
M = TypeVar("M", bound=Message)


class ShimError(MoorError):
    """The shim or the runtime refused a request; the message is theirs."""


class Zygote:
    """`python -m moorage.shim.zygote`, exec'd once; forks every shim."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._process: subprocess.Popen | None = None

    def start(self) -> None:
        # close_fds: the zygote must not hold the daemon's sockets, shims inherit its fds.
        # -P: `-m` would put the daemon's working directory first on sys.path, and a
        # `moorage` folder there would be the code every shim runs as root.
        self._process = subprocess.Popen(
            [sys.executable, "-P", "-m", "moorage.shim.zygote"], stdin=subprocess.PIPE,
            stdout=subprocess.PIPE, close_fds=True)

    def fork(self, config: ShimConfig) -> Forked | Failure:
        """Blocking: fork a shim that creates the container; ask it for the outcome with
        `created`. The zygote is held only for the fork, so creates run side by side."""
        with self._lock:
            if self._process is None or self._process.poll() is not None:
                self.start()
            assert self._process and self._process.stdin and self._process.stdout
            try:
                self._process.stdin.write(config.encode())
                self._process.stdin.flush()
                line = self._process.stdout.readline()
            except OSError as err:
                raise SystemFailure(f"zygote: {err}") from None
            if not line:
                raise SystemFailure("zygote: exited unexpectedly")
            return decode_reply(line, Forked)

    def stop(self) -> None:
        if self._process is not None:
            assert self._process.stdin
            self._process.stdin.close()
            self._process.wait()
            self._process = None


async def created(config: ShimConfig) -> CreateResult | Failure:
    """The create's outcome, from the shim `Zygote.fork` made: its pids or the runtime's
    error. Asked on the event loop, not from a worker thread: the answer wakes the start
    at once instead of through a thread's hand-back, and a hung create holds only its
    caller (for at most CREATE_SECONDS)."""
    try:
        async with asyncio.timeout(CREATE_SECONDS):
            reply = await _exchange(await _connected(config.socket_path),
                                    CreateOutcome().encode())
    except TimeoutError:
        return Failure(f"shim: the runtime did not create the container within "
                       f"{CREATE_SECONDS:g}s")
    except (OSError, ValueError) as err:
        return Failure(f"shim: {err}")
    if not reply:
        return Failure("shim: exited before creating the container")
    return decode_reply(reply, CreateResult)


async def request(socket_path: str, message: Message, answer: type[M]) -> M:
    """One request to a shim and its one-line reply, an `answer`; NotFound when the
    shim is gone, ShimError when it answers with a Failure."""
    if isinstance(message, Wait):
        return await _request(socket_path, message, answer)
    deadline = SPAWN_SECONDS if message.op in ("exec", "attach") else REQUEST_SECONDS
    return await _within(deadline, message.op, _request(socket_path, message, answer))


async def _request(socket_path: str, message: Message, answer: type[M]) -> M:
    return _reply(await _exchange(await _reach(socket_path), message.encode()), answer)


async def _reach(socket_path: str) -> socket.socket:
    """A connection to a running container's shim; NotFound when it is gone."""
    try:
        return await _connected(socket_path)
    except (FileNotFoundError, ConnectionRefusedError):
        raise NotFound("container is not running") from None


async def _connected(socket_path: str) -> socket.socket:
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    try:
        sock.setblocking(False)
        await asyncio.get_running_loop().sock_connect(sock, socket_path)
    except BaseException:
        sock.close()
        raise
    return sock


async def _exchange(sock: socket.socket, request: bytes) -> bytes:
    """`request` out on the connected `sock`, then the reply line back (b"" when the
    shim closed first); the socket is closed after. The loop's socket calls, not a
    stream pair: a transport, protocol and reader cost ~0.1 ms more a request (measured),
    and a start makes two (`created`, `start`)."""
    loop = asyncio.get_running_loop()
    try:
        await loop.sock_sendall(sock, request)
        reply = b""
        while b"\n" not in reply:
            chunk = await loop.sock_recv(sock, 65536)
            if not chunk:
                return reply
            reply += chunk
            if len(reply) > _REPLY_LIMIT:
                raise ValueError(f"shim: a reply longer than {_REPLY_LIMIT} bytes")
        return reply[:reply.index(b"\n") + 1]
    finally:
        sock.close()


async def _within(seconds: float, op: object, awaitable: Awaitable[T]) -> T:
    try:
        return await asyncio.wait_for(awaitable, seconds)
    except TimeoutError:
        raise SystemFailure(f"shim: no answer to {op} within {seconds:g}s") from None


def _reply(line: bytes, answer: type[M]) -> M:
    if not line:
        raise NotFound("container is not running")
    reply = decode_reply(line, answer)
    if isinstance(reply, Failure):
        raise ShimError(reply.error)
    return reply


class ShimStream:
    """An attach or exec connection: frames out of the container, stdin into it."""

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter,
                 pid: int) -> None:
        self._reader = reader
        self._writer = writer
        self.pid = pid
        self.exit: ExitRecord | None = None
        self.on_exit: Callable[[ExitRecord], None] | None = None
        self.on_detach: Callable[[], None] | None = None

    @classmethod
    async def open(cls, socket_path: str, message: Message) -> ShimStream:
        """Attach or exec; the stream carries the process's output from this moment on."""
        sock = await _within(SPAWN_SECONDS, message.op, _reach(socket_path))
        try:
            reader, writer = await asyncio.open_unix_connection(sock=sock, limit=_REPLY_LIMIT)
        except BaseException:
            sock.close()
            raise
        try:
            streamwrite.write(writer, message.encode())
            await writer.drain()
            reply = _reply(await _within(SPAWN_SECONDS, message.op, reader.readline()),
                           StreamOpened)
        except BaseException:
            writer.close()
            raise
        return cls(reader, writer, int(reply.pid or 0))

    async def read(self) -> tuple[int, bytes] | None:
        """The next (stream, payload) frame, or None at the end (self.exit is then set)."""
        try:
            stream, size = stdcopy.parse_header(
                await self._reader.readexactly(stdcopy.HEADER_SIZE))
            payload = await self._reader.readexactly(size)
        except (asyncio.IncompleteReadError, ConnectionError):
            return None
        if stream == EXIT_STREAM:
            self.exit = ExitRecord.from_dict(json_codec.loads(payload))
            if self.on_exit is not None:
                self.on_exit(self.exit)
            return None
        return stream, payload

    async def write(self, data: bytes) -> None:
        streamwrite.write(self._writer, data)
        await self._writer.drain()

    def close_stdin(self) -> None:
        if self._writer.can_write_eof() and not self._writer.is_closing():
            self._writer.write_eof()

    def close(self) -> None:
        self._writer.close()

    def detach(self) -> None:
        """The client typed its detach keys: the stream ends, the process runs on."""
        if self.on_detach is not None:
            self.on_detach()
        self.close()
