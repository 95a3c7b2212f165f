"""Docker's JSON-message streams (pull, push, load on a terminal): messages from the
engine sent as they come, one write for what piled up.

An error found before anything was streamed gets a plain error status (dockerd's
WriteFlusher has not flushed yet), a later one a final ``errorDetail`` line after the
200.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable

from aiohttp import web

from moorage.api.server import failure, start_stream
from moorage.protocol.jsonmessage import Emit, JSONMessage, encode


async def stream_progress(request: web.Request,
                          run: Callable[[Emit], Awaitable[None]]) -> web.StreamResponse:
    """Stream what `run` emits (on the loop) until it returns."""
    queue: asyncio.Queue[JSONMessage | None] = asyncio.Queue()
    task = asyncio.create_task(run(queue.put_nowait))
    task.add_done_callback(lambda _task: queue.put_nowait(None))
    response: web.StreamResponse | None = None
    try:
        while (message := await queue.get()) is not None:
            if response is None:
                response = await _started(request)
            chunk, ended = encode(message), False
            while not queue.empty():  # send what piled up in one write
                more = queue.get_nowait()
                if more is None:
                    ended = True
                    break
                chunk += encode(more)
            await response.write(chunk)
            if ended:
                break
        try:
            await task
        except Exception as err:
            if response is None:
                raise
            await response.write(encode(JSONMessage(error=failure(request, err)[1])))
    finally:
        if not task.done():
            # The client went away: stop the transfer (it cleans up after itself).
            task.cancel()
            await asyncio.gather(task, return_exceptions=True)
    if response is None:  # nothing to say: an empty stream
        response = await _started(request)
    await response.write_eof()
    return response


async def _started(request: web.Request) -> web.StreamResponse:
    # Exactly "application/json": the docker CLI draws progress only then.
    response = web.StreamResponse(headers={"Content-Type": "application/json"})
    await start_stream(request, response)
    return response
