"""The engine's event bus: every service publishes here, and `/events` reads here.

Publishing never blocks and never fails the operation that publishes: a subscriber
that cannot keep up loses its queue's oldest events, as a slow `docker events`
client would rather than slowing the engine.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field

_QUEUE_LIMIT = 1024


@dataclass(frozen=True, slots=True)
class Event:
    type: str                       # container, image, volume, network, daemon, plugin
    action: str                     # create, start, die, health_status: healthy, ...
    actor_id: str
    attributes: Mapping[str, str] = field(default_factory=dict)
    time_ns: int = 0
    scope: str = "local"


Subscriber = Callable[[Event], None]


class EventBus:
    def __init__(self) -> None:
        self._subscribers: list[Subscriber] = []

    def publish(self, type: str, action: str, actor_id: str,
                attributes: Mapping[str, str] | None = None) -> Event:
        event = Event(type, action, actor_id, dict(attributes or {}), time.time_ns())
        for subscriber in list(self._subscribers):
            subscriber(event)
        return event

    def subscribe(self, subscriber: Subscriber) -> Callable[[], None]:
        """Calls subscriber for each later event; returns the function that stops it."""
        self._subscribers.append(subscriber)
        return lambda: self._subscribers.remove(subscriber)

    def queue(self) -> tuple[asyncio.Queue[Event], Callable[[], None]]:
        """A bounded queue of later events, for one streaming client."""
        queue: asyncio.Queue[Event] = asyncio.Queue(_QUEUE_LIMIT)
        loop = asyncio.get_running_loop()

        def put(event: Event) -> None:
            if queue.full():
                queue.get_nowait()
            queue.put_nowait(event)

        def deliver(event: Event) -> None:
            # Image operations publish from worker threads: the queue is the loop's.
            try:
                here = asyncio.get_running_loop()
            except RuntimeError:
                here = None
            if here is loop:
                put(event)
            else:
                loop.call_soon_threadsafe(put, event)

        return queue, self.subscribe(deliver)
