"""One process's stdio inside a shim: pipes or a pty master, its clients, its log.

A Process is the container's init or one exec; the shim reads its outputs,
fans them out to attached clients as stdcopy frames and, for the init, into
the json-file log. Nothing here blocks: every fd is non-blocking and every
buffer has a bound (DESIGN.md: a shim never blocks on one peer).

- Output to a client is queued on its Conn. A client holding more than
  CLIENT_HIGH_WATER pauses the reading of its process's outputs, as a pipe
  would, so a client that keeps up loses nothing; one that stays above it for
  STALL_SECONDS is dropped, so it never holds the container for longer.
- Stdin is queued on the Process up to STDIN_LIMIT; past it the shim stops
  reading the clients' stdin, which pushes back to the daemon and on to the
  client. Nothing written to stdin is dropped, on a pipe or a pty.
"""

from __future__ import annotations

import os
import time
from _socket import MSG_NOSIGNAL
from _socket import socket as Socket

from moorage import json_codec, timefmt
from moorage.protocol import stdcopy
from moorage.shim.wire import EXIT_STREAM, ExitRecord, Message

# Not typing.TYPE_CHECKING, nor collections.abc at run time: the zygote imports
# this module, and collections with its imports would be mapped in every shim.
TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Callable

_MAX_LOG_LINE = 16 * 1024  # Docker's json-file splits longer lines into partial entries
CLIENT_HIGH_WATER = 256 * 1024
STALL_SECONDS = 1.0
STDIN_LIMIT = 256 * 1024
CHUNK = 65536  # one read or write: a pipe's capacity


class JsonLog:
    """Docker's json-file format: {"log", "stream", "time"} per line, rotated as the
    json-file driver does: once the file holds `max_size` bytes it becomes PATH.1
    (gzipped to PATH.1.gz with `compress`), the older ones move up to PATH.<max_files
    - 1>; with one file it is emptied instead."""

    split_lines = False  # whole lines longer than the limit stay one entry

    def __init__(self, path: str, rotation: tuple[int, int, bool] = (0, 1, False)) -> None:
        self.path = path
        self.max_size, self.max_files, self.compress = rotation
        self.file = open(path, "ab", buffering=0)  # noqa: SIM115 - lives as long as the shim
        self.size = os.fstat(self.file.fileno()).st_size
        self.partial: dict[str, bytes] = {}

    def _write(self, entries: list[bytes]) -> None:
        """One write per file: the entries up to the size limit, then a rotation."""
        batch: list[bytes] = []
        for entry in entries:
            if self.max_size and self.size >= self.max_size:
                if batch:
                    self.file.write(b"".join(batch))
                    batch = []
                self._rotate()
            batch.append(entry)
            self.size += len(entry)
        if batch:
            self.file.write(b"".join(batch))

    def reopen(self) -> None:
        """The file at the path anew: whoever rotates the log (kubelet) has renamed it."""
        self.file.close()
        self.file = open(self.path, "ab", buffering=0)  # noqa: SIM115
        self.size = os.fstat(self.file.fileno()).st_size

    def _rotate(self) -> None:
        self.size = 0
        if self.max_files < 2:
            self.file.truncate(0)  # O_APPEND: the next write lands at the new end
            return
        extension = ".gz" if self.compress else ""
        for number in range(self.max_files - 1, 1, -1):
            try:
                os.replace(f"{self.path}.{number - 1}{extension}",
                           f"{self.path}.{number}{extension}")
            except FileNotFoundError:
                pass
        self.file.close()
        os.replace(self.path, self.path + ".1")
        self.file = open(self.path, "ab", buffering=0)  # noqa: SIM115
        if self.compress:
            _gzip(self.path + ".1")

    def write(self, stream: str, data: bytes) -> None:
        buffer = self.partial.get(stream, b"") + data
        lines = buffer.split(b"\n")
        rest = lines.pop()
        out = []
        for line in lines:
            while self.split_lines and len(line) > _MAX_LOG_LINE:
                out.append(self._entry(stream, line[:_MAX_LOG_LINE]))
                line = line[_MAX_LOG_LINE:]
            out.append(self._entry(stream, line + b"\n"))
        while len(rest) >= _MAX_LOG_LINE:
            out.append(self._entry(stream, rest[:_MAX_LOG_LINE]))
            rest = rest[_MAX_LOG_LINE:]
        self.partial[stream] = rest
        if out:
            self._write(out)

    def flush(self) -> None:
        for stream, rest in self.partial.items():
            if rest:
                self._write([self._entry(stream, rest)])
        self.partial.clear()

    def close(self) -> None:
        self.flush()
        self.file.close()

    @staticmethod
    def _entry(stream: str, line: bytes) -> bytes:
        return json_codec.dumps({"log": line.decode("utf-8", "replace"), "stream": stream,
                                 "time": timefmt.now()}, compact=True).encode() + b"\n"


class CriLog(JsonLog):
    """The CRI's log format, which kubelet reads at the path it gives: one
    `<RFC3339Nano> <stream> <F|P> <text>` line per line of output, `P` for a piece of a
    line longer than the limit or the end of output without a newline (containerd's
    tags, compared in tests/cri); never rotated here (kubelet rotates)."""

    split_lines = True  # containerd's max_container_log_line_size, 16 KiB

    @staticmethod
    def _entry(stream: str, line: bytes) -> bytes:
        if line.endswith(b"\n"):
            return b"%s %s F %s" % (timefmt.now().encode(), stream.encode(), line)
        return b"%s %s P %s\n" % (timefmt.now().encode(), stream.encode(), line)


def _gzip(path: str) -> None:
    """PATH → PATH.gz, whole or not at all (a reader takes PATH while PATH.gz is missing).
    zlib alone, not gzip: the shim maps every module it imports."""
    import zlib

    with open(path, "rb") as source, open(path + ".gz.tmp", "wb") as target:
        packer = zlib.compressobj(6, zlib.DEFLATED, 31)  # 31: the gzip container
        while chunk := source.read(1 << 20):
            target.write(packer.compress(chunk))
        target.write(packer.flush())
    os.replace(path + ".gz.tmp", path + ".gz")
    os.unlink(path)


class Conn:
    """A daemon connection: one request line in, then replies or frames out (and, for
    an attached client, stdin in). Its output waits in `pending`, never in a send."""

    __slots__ = ("closed", "closing", "forget", "full_since", "pending", "process", "reading",
                 "request", "sock", "stdin", "streams")

    def __init__(self, sock: Socket, forget: Callable[[int], None]) -> None:
        sock.setblocking(False)
        self.sock = sock
        self.forget = forget                # the shim stops polling an fd before it closes
        self.request = b""                  # the request line as it arrives
        self.pending = bytearray()          # output not yet taken by the socket
        self.closing = False                # close once `pending` is sent
        self.closed = False
        self.reading = True                 # still reading: the request, or stdin until EOF
        self.process: Process | None = None
        self.streams: tuple[int, ...] = ()
        self.stdin = False
        self.full_since: float | None = None

    def fileno(self) -> int:
        return self.sock.fileno()

    def send(self, data: bytes) -> None:
        if self.closed:
            return
        self.pending += data
        self.flush()

    def reply(self, message: Message, *, last: bool = True) -> None:
        self.send(message.encode())
        if last:
            self.closing = True
            self.flush()

    def flush(self) -> None:
        """Send what the socket takes now; close a failed or finished connection."""
        while self.pending and not self.closed:
            try:
                sent = self.sock.send(self.pending[:1 << 20], MSG_NOSIGNAL)
            except BlockingIOError:
                break
            except OSError:
                self.close()
                return
            del self.pending[:sent]
        if self.full():
            if self.full_since is None:
                self.full_since = time.monotonic()
        else:
            self.full_since = None
        if self.closing and not self.pending:
            self.close()

    def full(self) -> bool:
        return len(self.pending) > CLIENT_HIGH_WATER

    def stalled(self, now: float) -> bool:
        return self.full_since is not None and now - self.full_since > STALL_SECONDS

    def close(self) -> None:
        if not self.closed:
            self.closed = True
            self.pending.clear()
            self.forget(self.sock.fileno())
            self.sock.close()
            if self.process is not None:
                self.process.detach(self)


class Process:
    """The init or an exec: output fds, stdin, exit status, attached clients."""

    def __init__(self, key: str, tty: bool, stdin_once: bool, log: JsonLog | None,
                 forget: Callable[[int], None]) -> None:
        self.key = key
        self.forget = forget
        self.tty = tty
        self.stdin_once = stdin_once
        self.log = log
        self.pid = 0
        self.outputs: dict[int, int] = {}   # fd → stdcopy stream id
        self.stdin_fd: int | None = None     # the pipe's write end (a tty writes to the master)
        self.stdin_pending = bytearray()
        self.stdin_eof = False               # close the pipe once stdin_pending is written
        self.master: int | None = None
        self.clients: list[Conn] = []
        self.status: int | None = None       # waitpid status once reaped
        self.exit: ExitRecord | None = None  # once finished

    # ---------------------------------------------------------------- output

    def output(self, fd: int, data: bytes) -> None:
        stream = self.outputs[fd]
        if self.log is not None:
            self.log.write("stdout" if stream == stdcopy.STDOUT else "stderr", data)
        framed = b""
        for client in list(self.clients):
            if stream in client.streams:
                framed = framed or stdcopy.frame(stream, data)
                client.send(framed)

    def output_paused(self) -> bool:
        """A client is behind: outputs wait (for at most STALL_SECONDS, see Shim)."""
        return any(client.full() for client in self.clients)

    # ---------------------------------------------------------------- stdin

    def stdin_target(self) -> int | None:
        return self.master if self.tty else self.stdin_fd

    def stdin_full(self) -> bool:
        return len(self.stdin_pending) >= STDIN_LIMIT

    def write_stdin(self, data: bytes) -> None:
        if self.stdin_target() is None or self.stdin_eof:
            return
        self.stdin_pending += data
        self.flush_stdin()

    def flush_stdin(self) -> None:
        fd = self.stdin_target()
        while self.stdin_pending and fd is not None:
            try:
                written = os.write(fd, self.stdin_pending[:CHUNK])
            except BlockingIOError:
                return
            except OSError:  # the container closed its stdin (EPIPE) or the tty is gone
                self.stdin_pending.clear()
                self.close_stdin()
                return
            del self.stdin_pending[:written]
        if self.stdin_eof:
            self.close_stdin()

    def close_stdin(self) -> None:
        """Stdin's EOF, once what is queued has been written (a terminal has none)."""
        if self.stdin_fd is None:
            return
        self.stdin_eof = True
        if not self.stdin_pending:
            self.forget(self.stdin_fd)
            os.close(self.stdin_fd)
            self.stdin_fd = None

    def stdin_done(self, client: Conn) -> None:
        """The client's stdin reached EOF or the client left."""
        if client.stdin and self.stdin_once:
            self.close_stdin()
        client.stdin = False

    # ---------------------------------------------------------------- clients

    def attach(self, client: Conn, stdout: bool, stderr: bool, stdin: bool) -> None:
        client.process = self
        client.streams = tuple(s for s, on in ((stdcopy.STDOUT, stdout),
                                               (stdcopy.STDERR, stderr)) if on)
        client.stdin = stdin
        self.clients.append(client)

    def detach(self, client: Conn) -> None:
        if client in self.clients:
            self.clients.remove(client)
            self.stdin_done(client)

    def finish(self, record: ExitRecord) -> None:
        self.exit = record
        if self.log is not None:
            self.log.close()
            self.log = None
        frame = stdcopy.frame(EXIT_STREAM, json_codec.dumps(record.to_dict()).encode())
        for client in list(self.clients):
            client.reading = False
            client.send(frame)
            client.closing = True
            client.flush()
        self.stdin_pending.clear()
        self.close_stdin()
        if self.master is not None:
            self.forget(self.master)
            self.outputs.pop(self.master, None)
            os.close(self.master)
            self.master = None
