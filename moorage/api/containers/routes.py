"""Container routes: placeholder until the container service lands."""

from __future__ import annotations

from aiohttp import web


def add_routes(app: web.Application, backend: object) -> None:
    """Register the container routes on `app`, served by `backend`."""
