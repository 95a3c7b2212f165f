"""Image routes: placeholder until the image store lands."""

from __future__ import annotations

from aiohttp import web


def add_routes(app: web.Application, backend: object) -> None:
    """Register the image routes on `app`, served by `backend`."""
