"""One process's stdio inside a shim: pipes or a pty master, its clients, its log.

A Process is the container's init or one exec; the shim reads its outputs,
fans them out to attached clients as stdcopy frames and, for the init, into
the json-file log.
"""

from __future__ import annotations

import os
import time
from _socket import MSG_NOSIGNAL
from _socket import socket as Socket

from moorage import json_codec
from moorage.protocol import stdcopy
from moorage.shim.wire import EXIT_STREAM

# Not typing.TYPE_CHECKING, nor collections.abc at run time: the zygote imports
# this module, and collections with its imports would be mapped in every shim.
TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Callable

_MAX_LOG_LINE = 16 * 1024  # Docker's json-file splits longer lines into partial entries


def now_rfc3339nano() -> str:
    """Go's RFC3339Nano in UTC: nanoseconds with trailing zeros trimmed."""
    seconds, ns = divmod(time.time_ns(), 1_000_000_000)
    frac = f"{ns:09d}".rstrip("0")
    return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(seconds)) + \
        (f".{frac}" if frac else "") + "Z"


class JsonLog:
    """Docker's json-file format: {"log", "stream", "time"} per line."""

    def __init__(self, path: str) -> None:
        self.file = open(path, "ab", buffering=0)  # noqa: SIM115 - lives as long as the shim
        self.partial: dict[str, bytes] = {}

    def write(self, stream: str, data: bytes) -> None:
        buffer = self.partial.get(stream, b"") + data
        lines = buffer.split(b"\n")
        rest = lines.pop()
        out = [self._entry(stream, line + b"\n") for line in lines]
        while len(rest) >= _MAX_LOG_LINE:
            out.append(self._entry(stream, rest[:_MAX_LOG_LINE]))
            rest = rest[_MAX_LOG_LINE:]
        self.partial[stream] = rest
        if out:
            self.file.write(b"".join(out))

    def flush(self) -> None:
        for stream, rest in self.partial.items():
            if rest:
                self.file.write(self._entry(stream, rest))
        self.partial.clear()

    def close(self) -> None:
        self.flush()
        self.file.close()

    @staticmethod
    def _entry(stream: str, line: bytes) -> bytes:
        return json_codec.dumps({"log": line.decode("utf-8", "replace"), "stream": stream,
                                 "time": now_rfc3339nano()}, compact=True).encode() + b"\n"


class Client:
    """A daemon connection attached to a process's streams."""

    def __init__(self, sock: Socket, stdout: bool, stderr: bool, stdin: bool) -> None:
        self.sock = sock
        self.streams = {stdcopy.STDOUT} if stdout else set()
        if stderr:
            self.streams.add(stdcopy.STDERR)
        self.stdin = stdin

    def send(self, stream: int, data: bytes) -> bool:
        try:
            self.sock.sendall(stdcopy.frame(stream, data), MSG_NOSIGNAL)
            return True
        except OSError:
            return False


class Process:
    """The init or an exec: output fds, stdin, exit status, attached clients."""

    def __init__(self, key: str, tty: bool, stdin_once: bool, log: JsonLog | None,
                 close_socket: Callable[[Socket], None]) -> None:
        self.key = key
        self.close_socket = close_socket
        self.tty = tty
        self.stdin_once = stdin_once
        self.log = log
        self.pid = 0
        self.outputs: dict[int, int] = {}   # fd → stdcopy stream id
        self.stdin_fd: int | None = None
        self.master: int | None = None
        self.clients: list[Client] = []
        self.status: int | None = None       # waitpid status once reaped
        self.exit: dict | None = None        # the exit record once finished

    def output(self, fd: int, data: bytes) -> None:
        stream = self.outputs[fd]
        if self.log is not None:
            self.log.write("stdout" if stream == stdcopy.STDOUT else "stderr", data)
        for client in list(self.clients):
            if stream in client.streams and not client.send(stream, data):
                self.drop(client)

    def write_stdin(self, data: bytes) -> None:
        fd = self.master if self.tty else self.stdin_fd
        if fd is None:
            return
        try:
            os.write(fd, data)
        except OSError:
            self.close_stdin()

    def close_stdin(self) -> None:
        if self.stdin_fd is not None:
            os.close(self.stdin_fd)
            self.stdin_fd = None

    def stdin_done(self, client: Client) -> None:
        """The client's stdin reached EOF or the client left."""
        if client.stdin and self.stdin_once:
            self.close_stdin()
        client.stdin = False

    def drop(self, client: Client) -> None:
        if client in self.clients:
            self.clients.remove(client)
            self.stdin_done(client)
            self.close_socket(client.sock)

    def finish(self, record: dict) -> None:
        self.exit = record
        if self.log is not None:
            self.log.close()
            self.log = None
        payload = json_codec.dumps(record).encode()
        for client in self.clients:
            client.send(EXIT_STREAM, payload)
            self.close_socket(client.sock)
        self.clients.clear()
        self.close_stdin()
        if self.master is not None:
            os.close(self.master)
            self.master = None
