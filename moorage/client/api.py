"""The Engine API client: requests, version negotiation, errors, streams, hijacking."""

from __future__ import annotations

import _socket
import os

from moorage import json_codec
from moorage.client.endpoint import Endpoint
from moorage.client.errors import APIError, ConnectionFailed
from moorage.client.http import ProtocolError, Response, send_chunked, send_request

TYPE_CHECKING = False
if TYPE_CHECKING:  # typing costs ~4 ms of start-up; annotations only
    from collections.abc import Callable, Iterator
    from typing import Any

    from moorage.client.tarbody import Part

# The newest Engine API this client understands (docker CLI 28.2 speaks 1.50); the
# oldest is the engine's floor, which also covers Debian's dockerd 20.10 (1.41).
MAX_API_VERSION = "1.50"
MIN_API_VERSION = "1.41"

_SAFE = frozenset(b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789_.-~")


def quote(value: str) -> str:
    """Percent-encoding for query values (urllib.parse costs an import we do not need)."""
    raw = value.encode()
    return "".join(chr(b) if b in _SAFE else f"%{b:02X}" for b in raw)


def query(params: dict[str, Any] | None) -> str:
    if not params:
        return ""
    parts = []
    for name, value in params.items():
        if value is None or value is False:
            continue
        if isinstance(value, list):  # repeated parameter (images/get?names=a&names=b)
            parts += [f"{name}={quote(str(item))}" for item in value]
            continue
        if value is True:
            value = "1"
        elif isinstance(value, dict):
            value = json_codec.dumps(value, compact=True)
        parts.append(f"{name}={quote(str(value))}")
    return "?" + "&".join(parts) if parts else ""


def _version_tuple(version: str) -> tuple[int, ...]:
    return tuple(int(p) for p in version.split("."))


class Client:
    def __init__(self, endpoint: Endpoint) -> None:
        self.endpoint = endpoint
        self._sock: _socket.socket | None = None
        self._pinned = os.environ.get("DOCKER_API_VERSION")
        self._version: str | None = self._pinned

    # ---------------------------------------------------------------- connection

    def _connect(self) -> _socket.socket:
        try:
            return self.endpoint.connect()
        except OSError as err:
            raise ConnectionFailed(self.endpoint.host, err) from None

    def clone(self) -> Client:
        """Another connection to the same daemon, with the version already negotiated (for
        a thread of its own: a Client holds one connection)."""
        other = Client(self.endpoint)
        other._version = self.version
        return other

    def close(self) -> None:
        if self._sock is not None:
            self._sock.close()
            self._sock = None

    def _send(self, method: str, target: str, headers: dict[str, str], body: bytes | None,
              chunks: Iterator[Part] | None) -> Response:
        return self._submit(method, target, headers, body, chunks)()

    def _submit(self, method: str, target: str, headers: dict[str, str], body: bytes | None,
                chunks: Iterator[Part] | None) -> Callable[[], Response]:
        """Send now; the returned call reads the answer's head."""
        reused = self._sock is not None
        sock = self._sock or self._connect()
        self._sock = None

        def failed(err: ProtocolError | OSError) -> Response:
            sock.close()
            if reused and chunks is None:  # the daemon closed an idle keep-alive connection
                return self._send(method, target, headers, body, None)
            if isinstance(err, OSError):
                raise ConnectionFailed(self.endpoint.host, err) from None
            raise err

        def answer() -> Response:
            try:
                return Response(sock, b"", method)
            except (ProtocolError, OSError) as err:
                return failed(err)
            except BaseException:
                sock.close()
                raise

        try:
            if chunks is not None:
                send_chunked(sock, method, target, self.endpoint.http_host, headers, chunks)
            else:
                send_request(sock, method, target, self.endpoint.http_host, headers, body)
        except (ProtocolError, OSError) as err:
            retried = failed(err)
            return lambda: retried
        except BaseException:  # the body's producer failed: the request is cut short
            sock.close()
            raise
        return answer

    def _release(self, response: Response) -> None:
        sock, _ = response.detach()
        if response.keep_alive and response.complete and self._sock is None:
            self._sock = sock
        else:
            sock.close()

    # ---------------------------------------------------------------- negotiation

    @property
    def version(self) -> str:
        if self._version is None:
            self._version = self._negotiate()
        return self._version

    def _negotiate(self) -> str:
        """min(ours, the daemon's), from /_ping's API-Version header (as docker does)."""
        return self._negotiated(self._send("HEAD", "/_ping", {}, None, None))

    def _negotiated(self, ping: Response) -> str:
        ping.read()
        self._release(ping)
        server = ping.headers.get("api-version")
        if not server:
            return MIN_API_VERSION
        return min(server, MAX_API_VERSION, key=_version_tuple)

    def ping(self) -> Response:
        response = self._send("GET", "/_ping", {}, None, None)
        response.read()
        self._release(response)
        return response

    # ---------------------------------------------------------------- requests

    def request(self, method: str, path: str, params: dict[str, Any] | None = None, *,
                body: Any = None, data: bytes | None = None,
                chunks: Iterator[Part] | None = None,
                headers: dict[str, str] | None = None) -> Response:
        """Send and check the status; the caller reads the body (or streams it)."""
        return self.submit(method, path, params, body=body, data=data, chunks=chunks,
                           headers=headers)()

    def submit(self, method: str, path: str, params: dict[str, Any] | None = None, *,
               body: Any = None, data: bytes | None = None,
               chunks: Iterator[Part] | None = None,
               headers: dict[str, str] | None = None) -> Callable[[], Response]:
        """`request` in two halves: send now, and a call that waits for the answer and
        checks its status. Requests on other connections can go out in between, so their
        round trips overlap."""
        headers = dict(headers or {})
        if body is not None:
            data = json_codec.dumps(body).encode()
            headers["Content-Type"] = "application/json"
        if self._version is None and chunks is None and self.endpoint.local:
            answer = self._beside_ping(method, path + query(params), headers, data)
        else:
            answer = self._submit(method, f"/v{self.version}{path}{query(params)}", headers,
                                  data, chunks)

        def checked() -> Response:
            response = answer()
            if response.status >= 400:
                raise self._error(response)
            return response
        return checked

    def _beside_ping(self, method: str, path: str, headers: dict[str, str],
                     data: bytes | None) -> Callable[[], Response]:
        """The first request, sent as our newest version on a connection of its own at the
        same time as the /_ping that negotiates: one round trip fewer when the daemon
        takes that version (moord does). Else it is sent again as the negotiated one: a
        daemon refuses a version above its own before it acts on the request. Over a unix
        socket only, where the second connection is cheap."""
        ping = self._submit("HEAD", "/_ping", {}, None, None)
        sent = self._submit(method, f"/v{MAX_API_VERSION}{path}", headers, data, None)

        def drop_sent() -> None:
            try:
                sent().detach()[0].close()
            except (APIError, ConnectionFailed, ProtocolError):
                pass

        try:
            self._version = self._negotiated(ping())
        except BaseException:
            drop_sent()
            raise
        if self._version == MAX_API_VERSION:
            return sent
        drop_sent()
        return self._submit(method, f"/v{self._version}{path}", headers, data, None)

    def _error(self, response: Response) -> APIError:
        raw = response.read()
        self._release(response)
        message = raw.decode(errors="replace").strip()
        if response.headers.get("content-type", "").startswith("application/json"):
            try:
                message = json_codec.loads(raw).get("message", message)
            except (ValueError, AttributeError):
                pass
        return APIError(response.status, message or f"{response.status} {response.reason}")

    def call(self, method: str, path: str, params: dict[str, Any] | None = None, *,
             body: Any = None, data: bytes | None = None, chunks: Iterator[Part] | None = None,
             headers: dict[str, str] | None = None) -> Any:
        """A request whose whole answer is read: the decoded JSON, or None when empty."""
        response = self.request(method, path, params, body=body, data=data, chunks=chunks,
                                headers=headers)
        raw = response.read()
        self._release(response)
        return json_codec.loads(raw) if raw.strip() else None

    def head(self, path: str, params: dict[str, Any] | None = None) -> dict[str, str]:
        """The headers of a HEAD request (container archive stat)."""
        response = self.request("HEAD", path, params)
        response.read()
        self._release(response)
        return response.headers

    def get(self, path: str, params: dict[str, Any] | None = None) -> Any:
        return self.call("GET", path, params)

    def post(self, path: str, params: dict[str, Any] | None = None, body: Any = None) -> Any:
        return self.call("POST", path, params, body=body)

    def delete(self, path: str, params: dict[str, Any] | None = None) -> Any:
        return self.call("DELETE", path, params)

    def stream_json(self, method: str, path: str, params: dict[str, Any] | None = None, *,
                    body: Any = None, chunks: Iterator[Part] | None = None,
                    headers: dict[str, str] | None = None) -> Iterator[dict[str, Any]]:
        """JSON-lines streams (events, pull, push, load, stats)."""
        response = self.request(method, path, params, body=body, chunks=chunks, headers=headers)
        for line in response.iter_lines():
            yield json_codec.loads(line)
        self._release(response)

    def stream_raw(self, method: str, path: str,
                   params: dict[str, Any] | None = None) -> Iterator[bytes]:
        response = self.request(method, path, params)
        yield from response.iter_raw()
        self._release(response)

    def hijack(self, method: str, path: str, params: dict[str, Any] | None = None, *,
               body: Any = None) -> tuple[_socket.socket, bytes]:
        """attach/exec start: after `101 UPGRADED` (or 200) the socket is a raw stream."""
        headers = {"Upgrade": "tcp", "Connection": "Upgrade"}
        response = self.request(method, path, params, body=body, headers=headers)
        if response.status not in (101, 200):
            raise APIError(response.status, f"unexpected status {response.status} on hijack")
        return response.detach()


def demux(chunks: Iterator[bytes]) -> Iterator[tuple[int, bytes]]:
    """Split the multiplexed stream (attach/logs without a TTY) into (fd, payload).

    Each frame is an 8-byte header [stream, 0, 0, 0, size:uint32 big-endian] and
    its payload; stream 0 is stdin, 1 stdout, 2 stderr (Engine API, "Attach").
    """
    pending = b""
    for data in chunks:
        pending += data
        while len(pending) >= 8:
            size = int.from_bytes(pending[4:8], "big")
            if len(pending) < 8 + size:
                break
            yield pending[0] or 1, pending[8:8 + size]
            pending = pending[8 + size:]
    if pending:
        yield 1, pending
