"""The engine as the dashboard sees it: the project's Engine API client, driven from asyncio.

The client (moorage.client) is blocking and stdlib-only, and it already knows every
transport a context can name (unix, tcp + TLS, ssh), version negotiation and Docker's
error documents. Rather than a second, asynchronous client, requests run on a small
thread pool (one pooled connection per thread) and streams (events, logs, stats, pull,
an exec's terminal) each get a thread that feeds an asyncio queue.
"""

from __future__ import annotations

import _socket
import asyncio
import contextlib
import threading
from collections.abc import AsyncIterator, Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from moorage.client.api import Client, demux
from moorage.client.endpoint import Endpoint
from moorage.client.errors import APIError, ConnectionFailed
from moorage.client.http import ProtocolError

__all__ = ["APIError", "ConnectionFailed", "Engine", "Stream"]

_END = object()


class _StreamClient(Client):
    """A client that keeps the socket it opens, so that the loop can cut a stream short."""

    socket: _socket.socket | None = None

    def _connect(self) -> _socket.socket:
        self.socket = super()._connect()
        return self.socket


class Stream:
    """Items produced by a blocking iterator in a thread, read with `async for`.

    `close()` shuts the connection down, which ends the thread's blocking read."""

    def __init__(self, engine: Engine, produce: Callable[[_StreamClient], Iterator[Any]],
                 bound: int = 1000) -> None:
        self._loop = asyncio.get_running_loop()
        self._queue: asyncio.Queue[Any] = asyncio.Queue(bound)
        self._client = engine.stream_client()
        self._closed = False
        self._produce = produce
        threading.Thread(target=self._run, daemon=True, name="dashboard-stream").start()

    def _put(self, item: Any) -> None:
        if self._queue.full():  # a slow page loses old items, never stalls the engine
            self._queue.get_nowait()
        self._queue.put_nowait(item)

    def _run(self) -> None:
        try:
            for item in self._produce(self._client):
                if self._closed:
                    break
                self._loop.call_soon_threadsafe(self._put, item)
            self._loop.call_soon_threadsafe(self._put, _END)
        except BaseException as err:  # handed to the reader, which raises it
            if not self._closed:
                with contextlib.suppress(RuntimeError):  # the loop is gone
                    self._loop.call_soon_threadsafe(self._put, err)
        finally:
            self._client.close()

    def __aiter__(self) -> AsyncIterator[Any]:
        return self._items()

    async def _items(self) -> AsyncIterator[Any]:
        try:
            while (item := await self._queue.get()) is not _END:
                if isinstance(item, BaseException):
                    raise item
                yield item
        finally:
            self.close()

    def close(self) -> None:
        if not self._closed:
            self._closed = True
            sock = self._client.socket
            if sock is not None:
                with contextlib.suppress(OSError):
                    sock.shutdown(_socket.SHUT_RDWR)


class Engine:
    """The engine of the dashboard's context; every method is a plain Engine API call."""

    def __init__(self, endpoint: Endpoint) -> None:
        self.endpoint = endpoint
        self._idle: list[Client] = []
        self._lock = threading.Lock()
        self._version: str | None = None
        self._pool = ThreadPoolExecutor(4, thread_name_prefix="dashboard-api")

    def _client(self) -> Client:
        with self._lock:
            if self._idle:
                return self._idle.pop()
        client = Client(self.endpoint)
        if self._version is None:
            self._version = client.version
        client._version = self._version
        return client

    def stream_client(self) -> _StreamClient:
        client = _StreamClient(self.endpoint)
        client._version = self._version
        return client

    def _with_client(self, work: Callable[[Client], Any]) -> Any:
        client = self._client()
        try:
            result = work(client)
        except BaseException:
            client.close()
            raise
        with self._lock:
            self._idle.append(client)
        return result

    async def run(self, work: Callable[[Client], Any]) -> Any:
        return await asyncio.get_running_loop().run_in_executor(
            self._pool, self._with_client, work)

    async def offload(self, work: Callable[..., Any], *args: Any) -> Any:
        """Other blocking work (a registry's catalog) on the same pool."""
        return await asyncio.get_running_loop().run_in_executor(self._pool, work, *args)

    async def call(self, method: str, path: str, params: dict[str, Any] | None = None,
                   body: Any = None, headers: dict[str, str] | None = None) -> Any:
        return await self.run(lambda c: c.call(method, path, params, body=body,
                                               headers=headers))

    async def get(self, path: str, params: dict[str, Any] | None = None) -> Any:
        return await self.call("GET", path, params)

    async def post(self, path: str, params: dict[str, Any] | None = None,
                   body: Any = None) -> Any:
        return await self.call("POST", path, params, body)

    async def delete(self, path: str, params: dict[str, Any] | None = None) -> Any:
        return await self.call("DELETE", path, params)

    async def raw(self, path: str, params: dict[str, Any] | None = None) -> bytes:
        """A whole binary answer (a log download, an archive)."""
        try:
            return await self.run(lambda c: b"".join(c.stream_raw("GET", path, params)))
        except (ProtocolError, ValueError) as err:  # a stream the engine broke off
            raise APIError(502, f"the engine's answer broke off: {err}") from None

    async def version(self) -> str:
        if self._version is None:
            self._version = await self.run(lambda c: c.version)
        return self._version

    def json_stream(self, method: str, path: str, params: dict[str, Any] | None = None,
                    body: Any = None, headers: dict[str, str] | None = None) -> Stream:
        """JSON-lines streams: /events, stats, a pull's progress."""
        return Stream(self, lambda c: c.stream_json(method, path, params, body=body,
                                                    headers=headers))

    def log_stream(self, container: str, params: dict[str, Any], tty: bool) -> Stream:
        """(stream, bytes) pieces of a container's log; a TTY's log is not multiplexed."""
        def produce(c: _StreamClient) -> Iterator[tuple[int, bytes]]:
            chunks = c.stream_raw("GET", f"/containers/{container}/logs", params)
            return ((1, piece) for piece in chunks) if tty else demux(chunks)
        return Stream(self, produce)

    async def hijack_exec(self, exec_id: str) -> tuple[_socket.socket, bytes]:
        """A started TTY exec: the raw socket and what was read past the answer's head."""
        client = await asyncio.get_running_loop().run_in_executor(self._pool, self._client)
        return await asyncio.get_running_loop().run_in_executor(
            self._pool, lambda: client.hijack("POST", f"/exec/{exec_id}/start",
                                              body={"Detach": False, "Tty": True}))

    def close(self) -> None:
        with self._lock:
            for client in self._idle:
                client.close()
            self._idle.clear()
        self._pool.shutdown(wait=False, cancel_futures=True)

