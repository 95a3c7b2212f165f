"""A minimal HTTP/1.1 client over an already-connected socket.

Why not http.client: importing it pulls in the email package (~20 ms measured with
`python -X importtime`), more than the rest of `moor version` together, and it
makes hijacking (attach, exec) awkward. The Engine API needs little of HTTP:
Content-Length and chunked bodies, keep-alive, and an upgrade to a raw stream.
"""

from __future__ import annotations

import _socket

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Iterator

    from moorage.client.tarbody import Part

_CHUNK = 65536
_GATHER = 1 << 20


class ProtocolError(Exception):
    """The peer did not speak HTTP/1.1 as expected."""


class Response:
    """One response; the body is read lazily from the socket, once."""

    def __init__(self, sock: _socket.socket, buf: bytes, method: str) -> None:
        self._sock = sock
        self._buf = buf
        head = self._read_head()
        status_line, *header_lines = head.split(b"\r\n")
        parts = status_line.split(b" ", 2)
        if len(parts) < 2 or not parts[0].startswith(b"HTTP/1."):
            raise ProtocolError(f"malformed status line {status_line[:80]!r}")
        self.status = int(parts[1])
        self.reason = parts[2].decode("latin-1") if len(parts) > 2 else ""
        self.headers: dict[str, str] = {}
        for line in header_lines:
            name, _, value = line.decode("latin-1").partition(":")
            self.headers[name.strip().lower()] = value.strip()
        self._chunked = self.headers.get("transfer-encoding", "").lower() == "chunked"
        length = self.headers.get("content-length")
        bodiless = method == "HEAD" or self.status in (101, 204, 304)
        self._remaining: int | None = 0 if bodiless else (
            int(length) if length is not None and not self._chunked else None)
        self.keep_alive = (self.headers.get("connection", "").lower() != "close"
                           and (self._remaining is not None or self._chunked))
        self.complete = False

    def _recv(self) -> bytes:
        data = self._sock.recv(_CHUNK)
        if not data:
            raise ProtocolError("connection closed by the daemon")
        return data

    def _read_head(self) -> bytes:
        while (end := self._buf.find(b"\r\n\r\n")) < 0:
            self._buf += self._recv()
        head, self._buf = self._buf[:end], self._buf[end + 4:]
        return head

    def _read_line(self) -> bytes:
        while (end := self._buf.find(b"\r\n")) < 0:
            self._buf += self._recv()
        line, self._buf = self._buf[:end], self._buf[end + 2:]
        return line

    def _read_exact(self, n: int) -> bytes:
        while len(self._buf) < n:
            self._buf += self._recv()
        data, self._buf = self._buf[:n], self._buf[n:]
        return data

    def iter_raw(self) -> Iterator[bytes]:
        """The body as it arrives, in pieces of any size."""
        if self._chunked:
            while True:
                size = int(self._read_line().split(b";", 1)[0], 16)
                if size == 0:
                    while self._read_line():  # trailers end with an empty line
                        pass
                    break
                yield self._read_exact(size)
                self._read_line()
        elif self._remaining is not None:
            while self._remaining > 0:
                data = self._buf or self._recv()
                data, self._buf = data[:self._remaining], data[self._remaining:]
                self._remaining -= len(data)
                yield data
        else:
            if self._buf:
                yield self._buf
                self._buf = b""
            while data := self._sock.recv(_CHUNK):
                yield data
        self.complete = True

    def read(self) -> bytes:
        return b"".join(self.iter_raw())

    def iter_lines(self) -> Iterator[bytes]:
        """Newline-delimited records (JSON-lines streams: events, pull, stats)."""
        pending = b""
        for data in self.iter_raw():
            pending += data
            *lines, pending = pending.split(b"\n")
            yield from (line for line in lines if line.strip())
        if pending.strip():
            yield pending

    def detach(self) -> tuple[_socket.socket, bytes]:
        """The socket after an upgrade, and the bytes already read past the headers."""
        buf, self._buf = self._buf, b""
        return self._sock, buf


def send_request(sock: _socket.socket, method: str, target: str, host: str,
                 headers: dict[str, str], body: bytes | None) -> None:
    lines = [f"{method} {target} HTTP/1.1", f"Host: {host}", "User-Agent: moor-client"]
    lines += [f"{name}: {value}" for name, value in headers.items()]
    if body is not None:
        lines.append(f"Content-Length: {len(body)}")
    elif method in ("POST", "PUT"):
        lines.append("Content-Length: 0")
    request = ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1")
    sock.sendall(request + body if body else request)


def send_chunked(sock: _socket.socket, method: str, target: str, host: str,
                 headers: dict[str, str], parts: Iterator[Part]) -> None:
    """A request whose body is streamed (image load/import, build contexts, cp): bytes
    are gathered into chunks of about a megabyte; a `tarbody.FileRange` goes as a chunk
    of its own, from the file to the socket by the kernel."""
    lines = [f"{method} {target} HTTP/1.1", f"Host: {host}", "User-Agent: moor-client",
             "Transfer-Encoding: chunked"]
    lines += [f"{name}: {value}" for name, value in headers.items()]
    # Bytes not yet written; they always end where a chunk may begin.
    out = [("\r\n".join(lines) + "\r\n\r\n").encode("latin-1")]
    gathered: list[bytes] = []
    size = 0
    for part in parts:
        if isinstance(part, bytes):
            gathered.append(part)
            size += len(part)
            if size >= _GATHER:
                sock.sendall(b"".join((*out, b"%x\r\n" % size, *gathered, b"\r\n")))
                out, gathered, size = [], [], 0
            continue
        if size:
            out += (b"%x\r\n" % size, *gathered, b"\r\n")
            gathered, size = [], 0
        out.append(b"%x\r\n" % part.size)
        sock.sendall(b"".join(out))
        _send_file(sock, part.path, part.size)
        out = [b"\r\n"]
    if size:
        out += (b"%x\r\n" % size, *gathered, b"\r\n")
    sock.sendall(b"".join((*out, b"0\r\n\r\n")))


def _send_file(sock: _socket.socket, path: str, size: int) -> None:
    import os

    from moorage.client.tarbody import ContextError

    try:
        fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC)
    except OSError as err:
        raise ContextError(f"error checking context: {err}") from None
    with os.fdopen(fd, "rb") as f:
        send = getattr(sock, "sendfile", None)  # socket.socket's, TLS included
        if send is not None:
            sent = send(f, 0, size)
        else:
            sent = 0
            while sent < size and (n := os.sendfile(sock.fileno(), f.fileno(), sent,
                                                    size - sent)):
                sent += n
    if sent < size:
        raise ContextError(f"{path}: file changed as it was sent")
