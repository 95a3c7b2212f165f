"""What every handler shares: the registry's services and the parsed route."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field

from aiohttp import web

from moorage.registry.auth import Auth
from moorage.registry.observe import Metrics
from moorage.registry.proxy import Upstream
from moorage.registry.storage import Storage
from moorage.registry.uploads import Uploads


@dataclass(frozen=True, slots=True)
class Registry:
    storage: Storage
    uploads: Uploads
    metrics: Metrics
    auth: Auth | None
    upstream: Upstream | None
    gc_lock: asyncio.Lock = field(default_factory=asyncio.Lock)


@dataclass(frozen=True, slots=True)
class Route:
    """A /v2 request: which resource, of which repository; ``ref`` is a tag, digest or uuid."""

    kind: str
    name: str
    ref: str


REGISTRY = web.AppKey("registry", Registry)
