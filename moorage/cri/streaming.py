"""The CRI's streaming server: Exec's, Attach's and PortForward's URLs on 127.0.0.1,
each served over SPDY/3.1 or a websocket as kubelet's streaming server serves them.

Exec and Attach speak the remotecommand protocols: over SPDY one stream per channel
(error, stdin, stdout, stderr, resize; v4.channel.k8s.io and its predecessors), over a
websocket channels 0-4 (stdin, stdout, stderr, error, resize; channel.k8s.io,
base64.channel.k8s.io and their v4 forms). An exec's end is told on the error channel:
a Kubernetes Status as JSON for v4, before v4 a failure's bare message. An attach ends
with its client's stdin (the container runs on) or with the container. PortForward
speaks portforward.k8s.io over SPDY (each forwarded connection a pair of streams, error
and data, sharing a requestID) and v4.channel.k8s.io over a websocket (channels 2n and
2n+1 for the request's n-th port, each opened with the port as two little-endian
bytes); connections are spliced to 127.0.0.1:<port> in the pod's network namespace."""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import os
import secrets
import socket
import struct
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING

from moorage.cri import spdy
from moorage.cri.backends import Containers
from moorage.errors import MoorError
from moorage.model.config import ExecConfig
from moorage.protocol import stdcopy
from moorage.streamwrite import write, write_eof

if TYPE_CHECKING:
    from moorage.cri import websocket

log = logging.getLogger("moord.cri")
_PROTOCOLS = ("v4.channel.k8s.io", "v3.channel.k8s.io", "v2.channel.k8s.io",
              "channel.k8s.io")
_FORWARD_PROTOCOLS = ("portforward.k8s.io",)
# kubelet's websocket protocols (the client's order of preference decides).
_WS_PROTOCOLS = ("v4.channel.k8s.io", "v4.base64.channel.k8s.io", "channel.k8s.io",
                 "base64.channel.k8s.io")
_WS_FORWARD_PROTOCOLS = ("v4.channel.k8s.io", "v4.base64.channel.k8s.io")
_WS_CHANNELS = {"stdin": 0, "stdout": 1, "stderr": 2, "error": 3, "resize": 4}
_TOKEN_SECONDS = 60  # kubelet's streaming server: a URL is good for a minute
_CHANNELS_SECONDS = 10


@dataclass(frozen=True, slots=True)
class ExecRequest:
    """An exec, or with `attach` an attach (`cmd` empty)."""

    container_id: str
    cmd: tuple[str, ...]
    tty: bool
    stdin: bool
    stdout: bool
    stderr: bool
    created: float
    attach: bool = False


@dataclass(frozen=True, slots=True)
class ForwardRequest:
    """A pod's ports: `netns` the namespace to connect in ("" the host's)."""

    pod_id: str
    netns: str
    created: float
    ports: tuple[int, ...] = ()  # a websocket's channels, as the request listed them


# A TCP socket opened in the network namespace at a path ("" the daemon's own); the
# CRI enters no namespace itself, the engine hands it this.
SocketIn = Callable[[str], socket.socket]
# Output for the client: a channel's name (stdout, stderr) and its data.
Send = Callable[[str, bytes], Awaitable[None]]


class StreamingServer:
    def __init__(self, containers: Containers, socket_in: SocketIn) -> None:
        self.containers = containers
        self.socket_in = socket_in
        self.pending: dict[str, ExecRequest | ForwardRequest] = {}
        self.port = 0
        self._server: asyncio.Server | None = None

    async def start(self) -> None:
        self._server = await asyncio.start_server(self._serve, "127.0.0.1", 0)
        self.port = self._server.sockets[0].getsockname()[1]

    async def stop(self) -> None:
        if self._server is not None:
            self._server.close()

    def exec_url(self, request: ExecRequest | ForwardRequest) -> str:
        now = time.monotonic()
        for token in [t for t, r in self.pending.items() if now - r.created > _TOKEN_SECONDS]:
            del self.pending[token]
        token = secrets.token_urlsafe(12)
        self.pending[token] = request
        kind = "portforward" if isinstance(request, ForwardRequest) \
            else "attach" if request.attach else "exec"
        return f"http://127.0.0.1:{self.port}/{kind}/{token}"

    async def _serve(self, reader: asyncio.StreamReader,
                     writer: asyncio.StreamWriter) -> None:
        try:
            head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), _CHANNELS_SECONDS)
            lines = head.decode("latin-1").split("\r\n")
            target = lines[0].split(" ")[1] if len(lines[0].split(" ")) > 1 else ""
            path = target.partition("?")[0]
            headers: dict[str, list[str]] = {}
            for line in lines[1:]:
                name, _, value = line.partition(":")
                headers.setdefault(name.strip().lower(), []).append(value.strip())
            request = self.pending.pop(path.rpartition("/")[2], None) \
                if path.startswith(("/exec/", "/attach/", "/portforward/")) else None
            offered = [p.strip() for v in headers.get("x-stream-protocol-version", [])
                       for p in v.split(",")]
            known = _FORWARD_PROTOCOLS if isinstance(request, ForwardRequest) else _PROTOCOLS
            protocol = next((p for p in known if p in offered), "")
            upgrade = headers.get("upgrade", [""])[0].lower()
            if request is not None and upgrade == "websocket":
                await self._websocket(request, head, reader, writer)
                return
            if request is None or upgrade != "spdy/3.1" or not protocol:
                write(writer, b"HTTP/1.1 404 Not Found\r\nContent-Length: 0\r\n\r\n"
                             if request is None else
                             b"HTTP/1.1 400 Bad Request\r\nContent-Length: 0\r\n\r\n")
                await writer.drain()
                return
            write(writer, ("HTTP/1.1 101 Switching Protocols\r\nConnection: Upgrade\r\n"
                          f"Upgrade: SPDY/3.1\r\nX-Stream-Protocol-Version: {protocol}\r\n"
                          "\r\n").encode())
            await writer.drain()
            if isinstance(request, ForwardRequest):
                await _Forward(request, self.socket_in, reader, writer).run()
            else:
                await _Session(self.containers, request, protocol, reader, writer).run()
        except (OSError, asyncio.IncompleteReadError, asyncio.LimitOverrunError,
                TimeoutError) as err:
            log.debug("CRI streaming connection ended: %s", err)
        finally:
            writer.close()

    async def _websocket(self, request: ExecRequest | ForwardRequest, head: bytes,
                         reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        from moorage.cri import websocket  # the library only once a websocket comes

        forward = isinstance(request, ForwardRequest)
        channels = await websocket.accept(
            head, _WS_FORWARD_PROTOCOLS if forward else _WS_PROTOCOLS, reader, writer)
        if channels is None:
            return
        try:
            if isinstance(request, ForwardRequest):
                await _websocket_forward(request, self.socket_in, channels)
            else:
                await _websocket_exec(self.containers, request, channels)
        finally:
            await channels.close()


class _Remote:
    """One exec or attach, whichever protocol carries it: the client's stdin comes on
    `stdin` (None its end), terminal sizes through `resize`, output leaves by `send`."""

    def __init__(self, containers: Containers, request: ExecRequest, send: Send) -> None:
        self.containers = containers
        self.request = request
        self.send = send
        self.stdin: asyncio.Queue[bytes | None] = asyncio.Queue()
        self.exec_id = ""
        # A size sent before the exec has started (clients send the first at once),
        # applied once it has.
        self.size: tuple[int, int] | None = None

    async def resize(self, data: bytes) -> None:
        for line in data.decode(errors="replace").splitlines():
            try:
                size = json.loads(line)
                self.size = int(size["Height"]), int(size["Width"])
            except (ValueError, KeyError, TypeError):
                continue
            if self.exec_id or self.request.attach:
                await self._resize()

    async def _resize(self) -> None:
        if self.size is not None:
            with contextlib.suppress(MoorError):
                if self.exec_id:
                    await self.containers.execs.exec_resize(self.exec_id, *self.size)
                else:
                    await self.containers.container_resize(self.request.container_id,
                                                           *self.size)

    async def run(self) -> dict:
        """The exec's or attach's Kubernetes Status once it has ended."""
        request = self.request
        try:
            if request.attach:
                _, future = await self.containers.container_attach(
                    request.container_id, stdin=request.stdin, stdout=request.stdout,
                    stderr=request.stderr)
                stream = await future
            else:
                record = await self.containers.execs.exec_create(
                    request.container_id, ExecConfig(
                        cmd=request.cmd, tty=request.tty, attach_stdin=request.stdin,
                        attach_stdout=request.stdout, attach_stderr=request.stderr))
                stream = await self.containers.execs.exec_start(record.id, detach=False)
                self.exec_id = record.id
                await self._resize()
        except MoorError as err:
            return {"metadata": {}, "status": "Failure", "message": str(err)}
        pump = asyncio.get_running_loop().create_task(self._pump_stdin(stream))
        try:
            while (frame := await stream.read()) is not None:
                kind, payload = frame
                await self.send("stderr" if kind == stdcopy.STDERR and not request.tty
                                else "stdout", payload)
        finally:
            pump.cancel()
            stream.close()
        code = stream.exit.exit_code if not request.attach and stream.exit is not None else 0
        if not code:
            return {"metadata": {}, "status": "Success"}
        return {"metadata": {}, "status": "Failure",
                # Go's %v of the command, as kubelet's server words it.
                "message": f"command terminated with non-zero exit code: error executing "
                           f"command [{' '.join(request.cmd)}], exit code {code}",
                "reason": "NonZeroExitCode",
                "details": {"causes": [{"reason": "ExitCode", "message": str(code)}]}}

    async def _pump_stdin(self, stream: object) -> None:
        while (data := await self.stdin.get()) is not None:
            await stream.write(data)  # type: ignore[attr-defined]
        if self.request.attach:
            # containerd's attach: the client's stdin ended, so does the attach; the
            # container keeps its own stdin.
            stream.close()  # type: ignore[attr-defined]
        else:
            stream.close_stdin()  # type: ignore[attr-defined]


def _status_message(status: dict, protocol: str) -> bytes:
    """What the error channel carries: v4's Status as JSON (Success too), before v4 a
    failure's message alone."""
    if protocol.startswith("v4."):
        return json.dumps(status, separators=(",", ":")).encode()
    return status["message"].encode() if status["status"] != "Success" else b""


class _Session:
    """One exec or attach over one SPDY connection."""

    def __init__(self, containers: Containers, request: ExecRequest, protocol: str,
                 reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.request = request
        self.protocol = protocol
        self.reader = reader
        self.writer = writer
        self.codec = spdy.Codec()
        self.channels: dict[str, int] = {}   # stream type → SPDY stream id
        self.remote = _Remote(containers, request, self._send)

    def _expected(self) -> set[str]:
        wanted = {"error"}
        request = self.request
        wanted |= {name for name, on in (("stdin", request.stdin), ("stdout", request.stdout),
                                         ("stderr", request.stderr and not request.tty))
                   if on}
        return wanted

    async def run(self) -> None:
        expected = self._expected()
        reading = asyncio.get_running_loop().create_task(self._read())
        try:
            deadline = time.monotonic() + _CHANNELS_SECONDS
            while not expected <= set(self.channels):
                if reading.done() or time.monotonic() > deadline:
                    if reading.done() and reading.exception() is not None:
                        log.warning("CRI exec stream: %s", reading.exception())
                    return
                await asyncio.sleep(0.005)
            status = await self.remote.run()
        finally:
            reading.cancel()
        for name in ("stdout", "stderr"):
            if name in self.channels:
                write(self.writer, spdy.Codec.data(self.channels[name], b"", fin=True))
        error = self.channels["error"]
        if message := _status_message(status, self.protocol):
            write(self.writer, spdy.Codec.data(error, message))
        write(self.writer, spdy.Codec.data(error, b"", fin=True))
        await self.writer.drain()

    async def _send(self, name: str, data: bytes) -> None:
        if name in self.channels:
            write(self.writer, spdy.Codec.data(self.channels[name], data))
            await self.writer.drain()

    async def _read(self) -> None:
        while chunk := await self.reader.read(65536):
            for frame in self.codec.feed(chunk):
                if frame.control and frame.kind == spdy.SYN_STREAM:
                    self.channels[frame.headers.get("streamtype", "")] = frame.stream_id
                    write(self.writer, self.codec.syn_reply(frame.stream_id))
                elif frame.control and frame.kind == spdy.PING:
                    write(self.writer, spdy.Codec.echo(frame))
                elif not frame.control:
                    await self._data(frame)
            await self.writer.drain()
        self.remote.stdin.put_nowait(None)

    async def _data(self, frame: spdy.Frame) -> None:
        kind = next((k for k, v in self.channels.items() if v == frame.stream_id), "")
        if kind == "stdin":
            if frame.data:
                self.remote.stdin.put_nowait(frame.data)
            if frame.flags & spdy.FLAG_FIN:
                self.remote.stdin.put_nowait(None)
        elif kind == "resize":
            await self.remote.resize(frame.data)


async def _websocket_exec(containers: Containers, request: ExecRequest,
                          channels: websocket.Channels) -> None:
    async def send(name: str, data: bytes) -> None:
        await channels.send(_WS_CHANNELS[name], data)

    remote = _Remote(containers, request, send)
    # wsstream's word that the streams are up: an empty message on the lowest
    # channel the client reads.
    await channels.send(1 if request.stdout else 2 if request.stderr else 3, b"")
    reading = asyncio.get_running_loop().create_task(_websocket_input(channels, remote))
    try:
        status = await remote.run()
    finally:
        reading.cancel()
    if message := _status_message(status, channels.protocol):
        await channels.send(_WS_CHANNELS["error"], message)


async def _websocket_input(channels: websocket.Channels, remote: _Remote) -> None:
    try:
        async for channel, data in channels.receive():
            if channel == _WS_CHANNELS["stdin"] and remote.request.stdin:
                remote.stdin.put_nowait(data)
            elif channel == _WS_CHANNELS["resize"]:
                await remote.resize(data)
    finally:
        # Before v5 a websocket has no end of stdin but its own end.
        remote.stdin.put_nowait(None)


async def _websocket_forward(request: ForwardRequest, socket_in: SocketIn,
                             channels: websocket.Channels) -> None:
    """One connection per port the request listed, all at once, until all have ended."""
    inbound: list[asyncio.Queue[bytes | None]] = [asyncio.Queue() for _ in request.ports]

    async def pair(number: int, port: int) -> None:
        async def send(data: bytes) -> None:
            await channels.send(2 * number, data)

        if message := await _forward(socket_in, request, port, inbound[number], send):
            await channels.send(2 * number + 1, message)

    async def read() -> None:
        try:
            async for channel, data in channels.receive():
                if channel % 2 == 0 and channel // 2 < len(inbound):
                    inbound[channel // 2].put_nowait(data)
        finally:
            for queue in inbound:
                queue.put_nowait(None)

    for number, port in enumerate(request.ports):
        for channel in (2 * number, 2 * number + 1):
            await channels.send(channel, struct.pack("<H", port))
    reading = asyncio.get_running_loop().create_task(read())
    try:
        await asyncio.gather(*(pair(n, port) for n, port in enumerate(request.ports)))
    finally:
        reading.cancel()


class _Forward:
    """One portforward.k8s.io connection: any number of forwarded connections, each
    started when both of its streams have come, as kubelet's server does."""

    def __init__(self, request: ForwardRequest, socket_in: SocketIn,
                 reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.request = request
        self.socket_in = socket_in
        self.reader = reader
        self.writer = writer
        self.codec = spdy.Codec()
        self.pairs: dict[str, dict[str, int]] = {}        # requestID → type → stream id
        self.inbound: dict[int, asyncio.Queue[bytes | None]] = {}  # data stream → queue
        self.tasks: set[asyncio.Task] = set()

    async def run(self) -> None:
        try:
            while chunk := await self.reader.read(65536):
                for frame in self.codec.feed(chunk):
                    if frame.control and frame.kind == spdy.SYN_STREAM:
                        self._stream(frame)
                    elif frame.control and frame.kind == spdy.PING:
                        write(self.writer, spdy.Codec.echo(frame))
                    elif not frame.control and frame.stream_id in self.inbound:
                        queue = self.inbound[frame.stream_id]
                        if frame.data:
                            queue.put_nowait(frame.data)
                        if frame.flags & spdy.FLAG_FIN:
                            queue.put_nowait(None)
                await self.writer.drain()
        finally:
            for task in self.tasks:
                task.cancel()

    def _stream(self, frame: spdy.Frame) -> None:
        kind = frame.headers.get("streamtype", "")
        request_id = frame.headers.get("requestid", "")
        if not request_id:
            # portforward.k8s.io clients older than requestID: kubelet pairs a data
            # stream with the error stream opened just before it.
            request_id = str(frame.stream_id - 2 if kind == "data" else frame.stream_id)
        try:
            port = int(frame.headers.get("port", ""))
        except ValueError:
            port = 0
        if kind not in ("error", "data") or not 0 < port < 65536:
            write(self.writer, spdy.Codec.rst(frame.stream_id))
            return
        write(self.writer, self.codec.syn_reply(frame.stream_id))
        pair = self.pairs.setdefault(request_id, {})
        pair[kind] = frame.stream_id
        if kind == "data":
            self.inbound[frame.stream_id] = asyncio.Queue()
        if len(pair) == 2:
            del self.pairs[request_id]
            task = asyncio.get_running_loop().create_task(
                self._pair(port, pair["error"], pair["data"]))
            self.tasks.add(task)
            task.add_done_callback(self.tasks.discard)

    async def _pair(self, port: int, error: int, data: int) -> None:
        async def send(chunk: bytes) -> None:
            write(self.writer, spdy.Codec.data(data, chunk))
            await self.writer.drain()

        try:
            if message := await _forward(self.socket_in, self.request, port,
                                         self.inbound[data], send):
                write(self.writer, spdy.Codec.data(error, message))
        finally:
            del self.inbound[data]
            write(self.writer, spdy.Codec.data(data, b"", fin=True))
            write(self.writer, spdy.Codec.data(error, b"", fin=True))
            with contextlib.suppress(OSError):  # the client may have gone first
                await self.writer.drain()


async def _forward(socket_in: SocketIn, request: ForwardRequest, port: int,
                   inbound: asyncio.Queue[bytes | None],
                   send: Callable[[bytes], Awaitable[None]]) -> bytes:
    """One forwarded connection: the client's bytes from `inbound` (None their end) to
    the pod's port, the port's to `send`, until either side ends. What to report on
    the error channel: b"" or why the port could not be reached."""
    try:
        conn = await asyncio.to_thread(socket_in, request.netns)
        conn.setblocking(False)
        try:
            await asyncio.get_running_loop().sock_connect(conn, ("127.0.0.1", port))
        except OSError:
            conn.close()
            raise
    except OSError as err:
        # kubelet's words around containerd's (which then tries IPv6 too).
        reason = (os.strerror(err.errno) if err.errno else str(err)).lower()
        return (f"error forwarding port {port} to pod {request.pod_id}, uid : failed to "
                f"execute portforward in network namespace \"{request.netns}\": failed to "
                f"connect to localhost:{port} inside namespace \"{request.pod_id}\", IPv4: "
                f"dial tcp4 127.0.0.1:{port}: connect: {reason}").encode()
    reader, writer = await asyncio.open_connection(sock=conn)
    try:
        await _first_done(_to_port(inbound, writer), _from_port(reader, send))
    finally:
        writer.close()
    return b""


async def _to_port(inbound: asyncio.Queue[bytes | None], writer: asyncio.StreamWriter) -> None:
    while (data := await inbound.get()) is not None:
        write(writer, data)
        await writer.drain()
    if writer.can_write_eof():
        write_eof(writer)
    await asyncio.Event().wait()  # the reply still flows back until the port ends


async def _from_port(reader: asyncio.StreamReader,
                     send: Callable[[bytes], Awaitable[None]]) -> None:
    while chunk := await reader.read(65536):
        await send(chunk)


async def _first_done(*steps: object) -> None:
    """Both directions until either ends (containerd's splice), the other cancelled."""
    tasks = [asyncio.ensure_future(step) for step in steps]  # type: ignore[arg-type]
    try:
        done, _ = await asyncio.wait(tasks, return_when=asyncio.FIRST_COMPLETED)
        for task in done:
            if not task.cancelled() and task.exception() is not None:
                log.debug("CRI port forward ended: %s", task.exception())
    finally:
        for task in tasks:
            task.cancel()
