"""Requests that last as long as a container or the daemon does: attach, exec, wait,
logs --follow, stats, events.

aiohttp's shutdown waits for every running handler (60 s); a hung attach client, or an
events stream whose client went away while no event came to fail a write, would keep
the daemon's stop waiting. The daemon's stop ends these at once.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Awaitable, Callable, Iterator

from aiohttp import web


class LongRequests:
    def __init__(self) -> None:
        self._running: dict[asyncio.Task, web.Request] = {}

    @contextlib.contextmanager
    def track(self, request: web.Request) -> Iterator[None]:
        task = asyncio.current_task()
        if task is None:
            yield
            return
        self._running[task] = request
        try:
            yield
        finally:
            self._running.pop(task, None)

    async def end_all(self, _app: web.Application) -> None:
        running = list(self._running.items())
        self._running.clear()
        for task, request in running:
            task.cancel()
            if request.transport is not None:
                request.transport.close()
        for task, _ in running:
            with contextlib.suppress(BaseException):
                await asyncio.wait_for(task, 1)


_LONG_REQUESTS = web.AppKey("long_requests", LongRequests)


def long_requests(app: web.Application) -> LongRequests:
    """The app's registry of long requests, ended when the app shuts down."""
    if _LONG_REQUESTS not in app:
        app[_LONG_REQUESTS] = LongRequests()
        app.on_shutdown.append(app[_LONG_REQUESTS].end_all)
    return app[_LONG_REQUESTS]


Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


def tracked(app: web.Application, handler: Handler) -> Handler:
    """`handler`, ended by the daemon's stop while it runs."""
    registry = long_requests(app)

    async def run(request: web.Request) -> web.StreamResponse:
        with registry.track(request):
            return await handler(request)

    return run
