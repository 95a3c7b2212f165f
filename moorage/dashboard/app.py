"""The dashboard's aiohttp application: pages, actions, live streams and the guard.

Handlers are thin: one or a few Engine API calls, then a template. Engine errors reach the
page with the engine's own message (an alert for actions, the page's error box for views);
an engine that cannot be reached answers 503 and the page shows its banner.
"""

from __future__ import annotations

import os
from collections.abc import Awaitable, Callable

from aiohttp import web

from moorage.dashboard import pages, streams, terminal
from moorage.dashboard.engine import APIError, ConnectionFailed, Engine
from moorage.dashboard.keys import ENGINE, HUB, REGISTRY_AUTH
from moorage.dashboard.live import Hub
from moorage.dashboard.render import TEMPLATES, environment
from moorage.dashboard.security import Listen, middleware

HERE = os.path.dirname(__file__)


@web.middleware
async def engine_errors(request: web.Request,
                        handler: Callable[[web.Request], Awaitable[web.StreamResponse]]
                        ) -> web.StreamResponse:
    """Docker's message, as text: the page puts it in an alert (escaped, as text)."""
    try:
        return await handler(request)
    except APIError as err:
        status = err.status if 400 <= err.status < 600 else 500
        return web.Response(status=status, text=err.message)
    except ConnectionFailed as err:
        return web.Response(status=503, text=f"cannot reach the engine: {err}")


def make_app(engine: Engine, listen: Listen, token: str | None = None,
             secure: bool = False) -> web.Application:
    guard, headers = middleware(listen, token, secure)
    app = web.Application(middlewares=[guard, engine_errors])
    app.on_response_prepare.append(headers)
    app.on_response_prepare.append(_cache_static)
    static = app.router.add_static("/static", os.path.join(HERE, "static"),
                                   append_version=True)
    env = environment(lambda path: str(static.url_for(filename=path)))
    app[TEMPLATES] = env
    app[ENGINE] = engine
    app[REGISTRY_AUTH] = {}
    row_template = env.get_template("container_row.html")
    app[HUB] = Hub(engine, lambda row: row_template.render(c=row), listen.host)
    app.on_startup.append(_start)
    app.on_cleanup.append(_stop)
    app.router.add_get("/live", streams.live)
    pages.add_routes(app.router)
    streams.add_routes(app.router)
    app.router.add_get("/containers/{id}/terminal", terminal.websocket)
    return app


async def _cache_static(request: web.Request, response: web.StreamResponse) -> None:
    """Pages name the static files with their content's hash (?v=): a browser can keep
    them without asking again, and a page it comes back to paints without those requests."""
    if request.path.startswith("/static/") and "v" in request.query and response.status == 200:
        response.headers["Cache-Control"] = "public, max-age=31536000, immutable"


async def _start(app: web.Application) -> None:
    app[HUB].start()


async def _stop(app: web.Application) -> None:
    await app[HUB].stop()
    app[ENGINE].close()
