"""The events service behind `/events`: the bus's live events and the journal's past."""

from __future__ import annotations

import asyncio
import os
import time
from collections.abc import Callable

from moorage.daemon.events import filters as event_filters
from moorage.daemon.events.bus import Event, EventBus
from moorage.daemon.events.journal import Journal


class EventService:
    def __init__(self, bus: EventBus, data_root: str) -> None:
        self.bus = bus
        self.journal = Journal(os.path.join(data_root, "events.log"))
        bus.subscribe(self.journal.append)
        self.listeners = 0  # the streams following the live events (Info's NEventsListener)

    def subscribe(self, filters: dict[str, list[str]], since_ns: int, until_ns: int
                  ) -> tuple[list[Event], asyncio.Queue[Event], Callable[[], None]]:
        event_filters.validate(filters)
        past = [e for e in self.journal.replay(since_ns, until_ns)
                if event_filters.matches(filters, e)] if since_ns or until_ns else []
        if until_ns and until_ns <= time.time_ns():
            return past, asyncio.Queue(), lambda: None
        # Read and subscribed in one step of the loop, which publishes: no event falls
        # between the replay and the live stream, and none comes twice.
        queue, stop = self.bus.queue()
        self.listeners += 1

        def unsubscribe() -> None:
            self.listeners -= 1
            stop()
        return past, queue, unsubscribe

    def matches(self, filters: dict[str, list[str]], event: Event) -> bool:
        return event_filters.matches(filters, event)

    def close(self) -> None:
        self.journal.close()

