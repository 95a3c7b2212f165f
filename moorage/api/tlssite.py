"""The API's TLS listener, on asyncio's own TLS protocol whatever the event loop.

The docker CLI sends close_notify for an attached stream's stdin EOF and reads the
output after it; hijack.py keeps such a connection open through the internals of
asyncio's TLS protocol (`_keep_tls_open_after_eof`). moord runs on uvloop, whose TLS
is compiled and cannot be held so: this site wraps each accepted connection in
asyncio.sslproto.SSLProtocol itself instead of asking the loop for TLS.
"""

from __future__ import annotations

import asyncio
from asyncio import sslproto

from aiohttp import web


class TLSSite(web.TCPSite):
    async def start(self) -> None:
        await web.BaseSite.start(self)  # registered with the runner, as TCPSite
        loop = asyncio.get_running_loop()
        server = self._runner.server
        context = self._ssl_context
        assert server is not None and context is not None

        def protocol() -> asyncio.BaseProtocol:
            return sslproto.SSLProtocol(loop, server(), context, None, server_side=True)

        self._server = await loop.create_server(
            protocol, self._host, self._port, backlog=self._backlog,
            reuse_address=self._reuse_address, reuse_port=self._reuse_port)
