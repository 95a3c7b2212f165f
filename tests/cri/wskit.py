"""A websocket client of a CRI streaming URL (aiohttp's), speaking Kubernetes' channel
framing as kubelet's clients do: a binary message's first byte is its channel, a
base64 protocol's text message starts with the channel's digit."""

from __future__ import annotations

import asyncio
import base64
from collections.abc import Callable
from dataclasses import dataclass, field

import aiohttp


@dataclass
class Channels:
    protocol: str = ""                                   # what the server chose
    data: dict[int, bytes] = field(default_factory=dict)  # each channel's bytes, joined
    first: list[tuple[int, bytes]] = field(default_factory=list)  # messages in order


def stream(url: str, protocol: str, sends: list[tuple[int, bytes]], *,
           until: Callable[[Channels], bool] | None = None,
           seconds: float = 15) -> Channels:
    """Connect offering `protocol`, send each (channel, data), then read until the
    server closes (or `until` holds: then the client closes)."""
    return asyncio.run(asyncio.wait_for(_stream(url, protocol, sends, until), seconds))


async def _stream(url: str, protocol: str, sends: list[tuple[int, bytes]],
                  until: Callable[[Channels], bool] | None) -> Channels:
    encoded = protocol.startswith(("base64.", "v4.base64."))
    got = Channels()
    async with aiohttp.ClientSession() as session, \
            session.ws_connect(url, protocols=(protocol,), autoping=True) as ws:
        got.protocol = ws.protocol or ""
        for channel, data in sends:
            if encoded:
                await ws.send_str(str(channel) + base64.b64encode(data).decode())
            else:
                await ws.send_bytes(bytes((channel,)) + data)
        async for message in ws:
            if message.type == aiohttp.WSMsgType.BINARY:
                channel, data = message.data[0], message.data[1:]
            elif message.type == aiohttp.WSMsgType.TEXT:
                channel, data = int(message.data[0]), base64.b64decode(message.data[1:])
            else:
                break
            got.first.append((channel, data))
            got.data[channel] = got.data.get(channel, b"") + data
            if until is not None and until(got):
                break
    return got
