"""Server-side templates (Jinja2, autoescaped) streamed to the browser.

A page is written as the template produces it, in pieces of CHUNK bytes, not joined into
one string first: a containers view of 200 rows is ~300 kB of text made of thousands of
small strings, and joining them left ~1 MiB of fragmented heap behind each time
(measured), which an idle dashboard would carry for the rest of its life.
"""

from __future__ import annotations

import functools
import os
from collections.abc import Awaitable, Callable
from typing import Any

import jinja2
from aiohttp import web

from moorage.dashboard import rows

TEMPLATES = web.AppKey("templates", jinja2.Environment)
CHUNK = 16384

Handler = Callable[[web.Request], Awaitable[dict[str, Any]]]


def environment(static_url: Callable[[str], str]) -> jinja2.Environment:
    env = jinja2.Environment(
        loader=jinja2.FileSystemLoader(os.path.join(os.path.dirname(__file__), "templates")),
        autoescape=True, undefined=jinja2.ChainableUndefined)
    env.filters["size"] = rows.size
    env.filters["ago"] = rows.ago
    env.globals["static"] = static_url
    return env


async def page(request: web.Request, name: str, context: dict[str, Any]) -> web.StreamResponse:
    template = request.app[TEMPLATES].get_template(name)
    response = web.StreamResponse(headers={"Content-Type": "text/html; charset=utf-8"})
    await response.prepare(request)
    pending: list[str] = []
    size = 0
    for piece in template.generate({"csrf": request.get("csrf", ""), "path": request.path,
                                    **context}):
        pending.append(piece)
        size += len(piece)
        if size >= CHUNK:
            await response.write("".join(pending).encode())
            pending, size = [], 0
    await response.write_eof("".join(pending).encode())
    return response


def template(name: str) -> Callable[[Handler], Callable[[web.Request],
                                                           Awaitable[web.StreamResponse]]]:
    """A handler returning a template's context becomes one answering with the page."""
    def wrap(handler: Handler) -> Callable[[web.Request], Awaitable[web.StreamResponse]]:
        @functools.wraps(handler)
        async def answer(request: web.Request) -> web.StreamResponse:
            return await page(request, name, await handler(request))
        return answer
    return wrap
