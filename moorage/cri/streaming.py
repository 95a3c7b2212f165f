"""The CRI's streaming server: Exec's and Attach's URLs on 127.0.0.1, served over
SPDY/3.1 with kubelet's remotecommand protocols (v4.channel.k8s.io and its
predecessors): one SPDY stream per channel (error, stdin, stdout, stderr, resize), an
exec's exit reported on the error stream as a Kubernetes Status. An attach ends with
its client's stdin (the container runs on) or with the container. PortForward's URL
speaks portforward.k8s.io over the same SPDY: each forwarded connection is a pair of
streams (error, data) sharing a requestID, spliced to 127.0.0.1:<port> in the pod's
network namespace."""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import os
import secrets
import socket
import time
from collections.abc import Callable
from dataclasses import dataclass

from moorage.cri import spdy
from moorage.cri.backends import Containers
from moorage.errors import MoorError
from moorage.model.config import ExecConfig
from moorage.protocol import stdcopy

log = logging.getLogger("moord.cri")
_PROTOCOLS = ("v4.channel.k8s.io", "v3.channel.k8s.io", "v2.channel.k8s.io",
              "channel.k8s.io")
_FORWARD_PROTOCOLS = ("portforward.k8s.io",)
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


# A TCP socket opened in the network namespace at a path ("" the daemon's own); the
# CRI enters no namespace itself, the engine hands it this.
SocketIn = Callable[[str], socket.socket]


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
            path = lines[0].split(" ")[1] if len(lines[0].split(" ")) > 1 else ""
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
            if request is None or upgrade != "spdy/3.1" or not protocol:
                writer.write(b"HTTP/1.1 404 Not Found\r\nContent-Length: 0\r\n\r\n"
                             if request is None else
                             b"HTTP/1.1 400 Bad Request\r\nContent-Length: 0\r\n\r\n")
                await writer.drain()
                return
            writer.write(("HTTP/1.1 101 Switching Protocols\r\nConnection: Upgrade\r\n"
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


class _Session:
    """One exec over one SPDY connection."""

    def __init__(self, containers: Containers, request: ExecRequest, protocol: str,
                 reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.containers = containers
        self.request = request
        self.protocol = protocol
        self.reader = reader
        self.writer = writer
        self.codec = spdy.Codec()
        self.channels: dict[str, int] = {}   # stream type → SPDY stream id
        self.stdin: asyncio.Queue[bytes | None] = asyncio.Queue()
        self.exec_id = ""

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
            await self._exec()
        finally:
            reading.cancel()

    async def _read(self) -> None:
        while chunk := await self.reader.read(65536):
            for frame in self.codec.feed(chunk):
                if frame.control and frame.kind == spdy.SYN_STREAM:
                    self.channels[frame.headers.get("streamtype", "")] = frame.stream_id
                    self.writer.write(self.codec.syn_reply(frame.stream_id))
                elif frame.control and frame.kind == spdy.PING:
                    self.writer.write(spdy.Codec.echo(frame))
                elif not frame.control:
                    await self._data(frame)
            await self.writer.drain()
        await self.stdin.put(None)

    async def _data(self, frame: spdy.Frame) -> None:
        kind = next((k for k, v in self.channels.items() if v == frame.stream_id), "")
        if kind == "stdin":
            if frame.data:
                await self.stdin.put(frame.data)
            if frame.flags & spdy.FLAG_FIN:
                await self.stdin.put(None)
        elif kind == "resize" and (self.exec_id or self.request.attach):
            for line in frame.data.decode(errors="replace").splitlines():
                try:
                    size = json.loads(line)
                    await self.containers.container_resize(
                        self.request.container_id, int(size["Height"]), int(size["Width"]),
                        self.exec_id)
                except (ValueError, KeyError, TypeError, MoorError):
                    continue

    async def _exec(self) -> None:
        request = self.request
        status: dict = {"metadata": {}, "status": "Success"}
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
                self.exec_id = record.id
                stream = await self.containers.execs.exec_start(record.id, detach=False)
        except MoorError as err:
            status = {"metadata": {}, "status": "Failure", "message": str(err)}
        else:
            pump = asyncio.get_running_loop().create_task(self._pump_stdin(stream))
            try:
                while (frame := await stream.read()) is not None:
                    kind, payload = frame
                    name = "stderr" if kind == stdcopy.STDERR and not request.tty \
                        else "stdout"
                    if name in self.channels:
                        self.writer.write(spdy.Codec.data(self.channels[name], payload))
                        await self.writer.drain()
            finally:
                pump.cancel()
                stream.close()
            code = stream.exit.exit_code \
                if not request.attach and stream.exit is not None else 0
            if code:
                status = {"metadata": {}, "status": "Failure",
                          "message": f"command terminated with non-zero exit code: "
                                     f"error executing command {list(request.cmd)}, "
                                     f"exit code {code}",
                          "reason": "NonZeroExitCode",
                          "details": {"causes": [{"reason": "ExitCode",
                                                  "message": str(code)}]}}
        for name in ("stdout", "stderr"):
            if name in self.channels:
                self.writer.write(spdy.Codec.data(self.channels[name], b"", fin=True))
        error = self.channels["error"]
        if status["status"] != "Success":
            message = json.dumps(status).encode() if self.protocol.startswith(("v4", "v5")) \
                else status["message"].encode()
            self.writer.write(spdy.Codec.data(error, message))
        self.writer.write(spdy.Codec.data(error, b"", fin=True))
        await self.writer.drain()

    async def _pump_stdin(self, stream: object) -> None:
        while (data := await self.stdin.get()) is not None:
            await stream.write(data)  # type: ignore[attr-defined]
        if self.request.attach:
            # containerd's attach: the client's stdin ended, so does the attach; the
            # container keeps its own stdin.
            stream.close()  # type: ignore[attr-defined]
        else:
            stream.close_stdin()  # type: ignore[attr-defined]


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
                        self.writer.write(spdy.Codec.echo(frame))
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
            self.writer.write(spdy.Codec.rst(frame.stream_id))
            return
        self.writer.write(self.codec.syn_reply(frame.stream_id))
        pair = self.pairs.setdefault(request_id, {})
        pair[kind] = frame.stream_id
        if kind == "data":
            self.inbound[frame.stream_id] = asyncio.Queue()
        if len(pair) == 2:
            del self.pairs[request_id]
            task = asyncio.get_running_loop().create_task(
                self._forward(port, pair["error"], pair["data"]))
            self.tasks.add(task)
            task.add_done_callback(self.tasks.discard)

    async def _forward(self, port: int, error: int, data: int) -> None:
        inbound = self.inbound[data]
        try:
            try:
                conn = await asyncio.to_thread(self.socket_in, self.request.netns)
                conn.setblocking(False)
                try:
                    await asyncio.get_running_loop().sock_connect(conn, ("127.0.0.1", port))
                except OSError:
                    conn.close()
                    raise
            except OSError as err:
                # kubelet's words around containerd's (which then tries IPv6 too).
                reason = (os.strerror(err.errno) if err.errno else str(err)).lower()
                message = (f"error forwarding port {port} to pod {self.request.pod_id}, uid : "
                           f"failed to execute portforward in network namespace "
                           f"\"{self.request.netns}\": failed to connect to localhost:{port} "
                           f"inside namespace \"{self.request.pod_id}\", IPv4: dial tcp4 "
                           f"127.0.0.1:{port}: connect: {reason}")
                self.writer.write(spdy.Codec.data(error, message.encode()))
                return
            reader, writer = await asyncio.open_connection(sock=conn)
            try:
                await _first_done(self._to_port(inbound, writer), self._from_port(reader, data))
            finally:
                writer.close()
        finally:
            del self.inbound[data]
            self.writer.write(spdy.Codec.data(data, b"", fin=True))
            self.writer.write(spdy.Codec.data(error, b"", fin=True))
            with contextlib.suppress(OSError):  # the client may have gone first
                await self.writer.drain()

    @staticmethod
    async def _to_port(inbound: asyncio.Queue[bytes | None],
                       writer: asyncio.StreamWriter) -> None:
        while (data := await inbound.get()) is not None:
            writer.write(data)
            await writer.drain()
        if writer.can_write_eof():
            writer.write_eof()
        await asyncio.Event().wait()  # the reply still flows back until the port ends

    async def _from_port(self, reader: asyncio.StreamReader, data: int) -> None:
        while chunk := await reader.read(65536):
            self.writer.write(spdy.Codec.data(data, chunk))
            await self.writer.drain()


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
