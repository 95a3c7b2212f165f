"""Writes on an asyncio stream whose peer may be gone, alike on every event loop.

asyncio's own loop drops a write to a lost connection (the next drain raises
ConnectionResetError); uvloop's, moord's loop, raises RuntimeError at the write. Both
become ConnectionResetError here, which the stream handlers already expect.
"""

from __future__ import annotations

import asyncio


def write(writer: asyncio.StreamWriter, data: bytes) -> None:
    _check(writer)
    writer.write(data)


def write_eof(writer: asyncio.StreamWriter) -> None:
    _check(writer)
    writer.write_eof()


def _check(writer: asyncio.StreamWriter) -> None:
    if writer.transport.is_closing():
        raise ConnectionResetError("the connection is closed")
