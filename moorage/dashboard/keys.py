"""The application's shared objects, keyed for aiohttp (typed, no string keys)."""

from __future__ import annotations

from aiohttp import web

from moorage.dashboard.engine import Engine
from moorage.dashboard.live import Hub

ENGINE = web.AppKey("engine", Engine)
HUB = web.AppKey("hub", Hub)
# registry address → X-Registry-Auth of a login made in this dashboard (kept in memory only)
REGISTRY_AUTH = web.AppKey("registry_auth", dict)
