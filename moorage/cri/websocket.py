"""Server websockets on the streaming server's asyncio streams, through the
`websockets` library's sans-I/O protocol (handshake checks, framing, masking, ping and
close are its job), and Kubernetes' channel framing on top (k8s.io/apiserver's wsstream):
each message is one channel's data, its first byte the channel's number (binary
protocols) or that number as an ASCII digit before base64 text (`base64.` protocols).
Imported only when a websocket comes, so moord's memory at rest does not carry it."""

from __future__ import annotations

import asyncio
import base64
import binascii
import logging
from collections.abc import AsyncIterator, Sequence

from websockets.exceptions import NegotiationError
from websockets.frames import Opcode
from websockets.http11 import Request
from websockets.protocol import State
from websockets.server import ServerProtocol

from moorage.streamwrite import write

_DATA = (Opcode.TEXT, Opcode.BINARY, Opcode.CONT)
# The library tells of every connection's opening at INFO; kubelet's server says
# nothing of them, and moord logs at INFO by default.
_log = logging.getLogger("moord.cri.websocket")
_log.setLevel(logging.WARNING)


class Channels:
    """One accepted websocket speaking `protocol` ("" when the client offered none:
    binary, as wsstream answers it)."""

    def __init__(self, connection: ServerProtocol, reader: asyncio.StreamReader,
                 writer: asyncio.StreamWriter) -> None:
        self.connection = connection
        self.reader = reader
        self.writer = writer
        self.protocol = connection.subprotocol or ""
        self.base64 = "base64." in self.protocol

    async def send(self, channel: int, data: bytes) -> None:
        if self.connection.state is not State.OPEN:
            return  # the client has gone: what it no longer reads is dropped
        if self.base64:
            self.connection.send_text(b"%d" % channel + base64.b64encode(data))
        else:
            self.connection.send_binary(bytes((channel,)) + data)
        await self._flush()

    async def receive(self) -> AsyncIterator[tuple[int, bytes]]:
        """(channel, data) per message until the client closes; empty and undecodable
        messages skipped, as wsstream skips them."""
        parts: list[bytes] = []
        while self.connection.state is State.OPEN and (chunk := await self.reader.read(65536)):
            self.connection.receive_data(chunk)
            for frame in self.connection.events_received():
                if frame.opcode not in _DATA:
                    continue
                parts.append(frame.data)
                if not frame.fin:
                    continue
                message = b"".join(parts)
                parts.clear()
                if decoded := self._decode(message):
                    yield decoded
            await self._flush()  # pongs and the reply to a close

    def _decode(self, message: bytes) -> tuple[int, bytes] | None:
        if not message:
            return None
        if not self.base64:
            return message[0], message[1:]
        try:
            return message[0] - ord("0"), base64.b64decode(message[1:], validate=True)
        except (binascii.Error, ValueError):
            return None

    async def close(self) -> None:
        if self.connection.state is State.OPEN:
            self.connection.send_close(1000)
        await self._flush()

    async def _flush(self) -> None:
        data = b"".join(self.connection.data_to_send())
        if data and not self.writer.is_closing():
            write(self.writer, data)
            await self.writer.drain()


async def accept(head: bytes, protocols: Sequence[str], reader: asyncio.StreamReader,
                 writer: asyncio.StreamWriter) -> Channels | None:
    """The handshake's answer to the request's `head` (already read) written: the
    Channels when it is 101, None when refused (no subprotocol in common, a bad key or
    version)."""

    def choose(_: ServerProtocol, offered: Sequence[str]) -> str | None:
        # The client's order decides, and an offer with none of ours is refused
        # (wsstream's handshake); no offer at all is the binary protocol.
        if not offered:
            return None
        chosen = next((p for p in offered if p in protocols), None)
        if chosen is None:
            raise NegotiationError(f"requested protocol(s) are not supported: "
                                   f"{list(offered)}; supports {list(protocols)}")
        return chosen

    connection = ServerProtocol(select_subprotocol=choose, max_size=None,  # type: ignore[arg-type]
                                logger=_log)
    connection.receive_data(head)
    request = next((e for e in connection.events_received() if isinstance(e, Request)), None)
    if request is None:
        write(writer, b"HTTP/1.1 400 Bad Request\r\nContent-Length: 0\r\n\r\n")
        await writer.drain()
        return None
    response = connection.accept(request)
    connection.send_response(response)
    write(writer, b"".join(connection.data_to_send()))
    await writer.drain()
    return Channels(connection, reader, writer) if response.status_code == 101 else None
