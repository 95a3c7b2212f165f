"""GET /events (Engine API: System, "Monitor events"): the past from the journal, then
the live stream, each event one JSON document followed by a newline, as dockerd's."""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Callable, Mapping
from typing import Protocol

from aiohttp import web

from moorage.api.server import add_route, query_filters, start_stream
from moorage.api.streams import tracked
from moorage.errors import InvalidParameter


class EventLike(Protocol):
    type: str
    action: str
    actor_id: str
    attributes: Mapping[str, str]
    time_ns: int
    scope: str


class EventsBackend(Protocol):
    def subscribe(self, filters: dict[str, list[str]], since_ns: int, until_ns: int
                  ) -> tuple[list[EventLike], asyncio.Queue, Callable[[], None]]:
        """The past events to replay, the queue of later ones and the unsubscribe call;
        InvalidParameter for an unknown filter."""

    def matches(self, filters: dict[str, list[str]], event: EventLike) -> bool: ...


def document(event: EventLike) -> dict:
    doc: dict = {}
    # The deprecated top-level fields, which dockerd still fills for containers and images.
    if event.type in ("container", "image"):
        doc["status"], doc["id"] = event.action, event.actor_id
        if event.type == "container" and "image" in event.attributes:
            doc["from"] = event.attributes["image"]
    doc.update({"Type": event.type, "Action": event.action,
                "Actor": {"ID": event.actor_id, "Attributes": dict(event.attributes)},
                "scope": event.scope, "time": event.time_ns // 1_000_000_000,
                "timeNano": event.time_ns})
    return doc


def _timestamp(request: web.Request, name: str) -> int:
    """Docker's timestamp parameter ("seconds[.fraction]") in nanoseconds; 0 when absent."""
    value = request.query.get(name, "")
    if not value:
        return 0
    seconds, _, fraction = value.partition(".")
    try:
        return int(seconds) * 1_000_000_000 + int((fraction + "000000000")[:9] or 0)
    except ValueError:
        raise InvalidParameter(f"invalid value for {name}: {value!r}") from None


def add_routes(app: web.Application, backend: EventsBackend) -> None:
    async def get_events(request: web.Request) -> web.StreamResponse:
        filters = query_filters(request)
        since, until = _timestamp(request, "since"), _timestamp(request, "until")
        if since and until and since > until:
            raise InvalidParameter(f"`since` time ({request.query['since']}) cannot be after "
                                   f"`until` time ({request.query['until']})")
        past, queue, stop = backend.subscribe(filters, since, until)
        response = web.StreamResponse(headers={"Content-Type": "application/json"})
        try:
            await start_stream(request, response)
            for event in past:
                await response.write(json.dumps(document(event)).encode() + b"\n")
            while not until or time.time_ns() < until:
                timeout = (until - time.time_ns()) / 1e9 if until else None
                try:
                    event = await asyncio.wait_for(queue.get(), timeout)
                except TimeoutError:
                    break
                if until and event.time_ns > until:
                    break
                if backend.matches(filters, event):
                    await response.write(json.dumps(document(event)).encode() + b"\n")
            await response.write_eof()
        except ConnectionError:
            pass
        finally:
            stop()
        return response

    add_route(app, "GET", "/events", tracked(app, get_events))
