"""What the pages see change without reloading: one /events stream from the engine, fanned
out to every open page as server-sent events, and the containers' CPU and memory, sampled
only while a page is watching.

A container event becomes its row, rendered here (escaped by the template) and sent
whole, so a page swaps it in without a second request. Other objects' events tell the
pages to refresh the list they show.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import time
from collections.abc import AsyncIterator, Callable
from typing import Any

from moorage.dashboard import rows
from moorage.dashboard.engine import APIError, ConnectionFailed, Engine

STATS_PERIOD = 2.0
# Half the engine pool: dockerd takes a second or two for a one-shot sample, and pages
# must still find a free thread for their own calls (the paint doubled without this).
STATS_CONCURRENCY = 2
RETRY_AFTER = 1.0
QUEUE_BOUND = 500
# How long after the last page closed the dashboard counts as at rest.
REST_AFTER = 2.0

Message = tuple[str, str]  # (SSE event name, JSON data)


class Hub:
    def __init__(self, engine: Engine, render_row: Callable[[rows.ContainerRow], str],
                 browser_host: str) -> None:
        self.engine = engine
        self.render_row = render_row
        self.browser_host = browser_host
        self.engine_up = True
        self._pages: set[asyncio.Queue[Message]] = set()
        self._previous: dict[str, dict[str, Any]] = {}
        self._tasks: list[asyncio.Task[None]] = []
        self._stats_wanted = asyncio.Event()
        self._at_rest: asyncio.TimerHandle | None = None

    def start(self) -> None:
        self._tasks = [asyncio.create_task(self._follow_events()),
                       asyncio.create_task(self._sample_stats())]

    async def stop(self) -> None:
        for task in self._tasks:
            task.cancel()
        for task in self._tasks:
            with contextlib.suppress(asyncio.CancelledError):
                await task

    def publish(self, event: str, data: Any) -> None:
        message = (event, json.dumps(data))
        for queue in self._pages:
            if queue.full():  # a stalled page misses updates; it gets a refresh instead
                queue.get_nowait()
                queue.put_nowait(("refresh", json.dumps({"type": "all"})))
            queue.put_nowait(message)

    async def subscribe(self) -> AsyncIterator[Message]:
        queue: asyncio.Queue[Message] = asyncio.Queue(QUEUE_BOUND)
        self._pages.add(queue)
        self._stats_wanted.set()
        if self._at_rest is not None:
            self._at_rest.cancel()
        try:
            yield ("engine", json.dumps({"up": self.engine_up}))
            while True:
                yield await queue.get()
        finally:
            self._pages.discard(queue)
            if not self._pages:
                self._stats_wanted.clear()
                self._at_rest = asyncio.get_running_loop().call_later(
                    REST_AFTER, release_free_memory)

    # ------------------------------------------------------------------ events

    async def _follow_events(self) -> None:
        while True:
            stream = self.engine.json_stream("GET", "/events", {"since": str(int(time.time()))})
            try:
                if not self.engine_up:
                    self.engine_up = True
                    self.publish("engine", {"up": True})
                    self.publish("refresh", {"type": "all"})
                async for event in stream:
                    await self._on_event(event)
            except Exception:  # whatever broke the stream, the engine is gone until it answers
                pass
            finally:
                stream.close()
            if self.engine_up:
                self.engine_up = False
                self.publish("engine", {"up": False})
            await asyncio.sleep(RETRY_AFTER)

    async def _on_event(self, event: dict[str, Any]) -> None:
        kind = event.get("Type")
        if kind != "container":
            if kind in ("image", "volume", "network"):
                self.publish("refresh", {"type": kind})
            return
        action = event.get("Action") or event.get("status") or ""
        if action.startswith(("exec_", "attach", "resize", "top", "archive-path", "export")):
            return
        container = event.get("id") or (event.get("Actor") or {}).get("ID", "")
        found = await self.engine.get("/containers/json", {"all": True,
                                                           "filters": {"id": [container]}})
        emitted = event.get("timeNano", 0) / 1e9
        if not found:
            self.publish("gone", {"id": container, "emitted": emitted})
        else:
            row = rows.container_row(found[0], self.browser_host)
            self.publish("container", {"id": row.id, "project": row.project, "state": row.state,
                                       "html": self.render_row(row), "emitted": emitted})
        self.publish("refresh", {"type": "compose"})

    # ------------------------------------------------------------------ stats

    async def _sample_stats(self) -> None:
        limit = asyncio.Semaphore(STATS_CONCURRENCY)
        while True:
            await self._stats_wanted.wait()
            started = time.monotonic()
            try:
                running = await self.engine.get("/containers/json")
                samples = await asyncio.gather(*(self._sample(limit, c["Id"])
                                                 for c in running))
            except (ConnectionFailed, APIError, OSError):
                samples = []
            found = {cid: figures for cid, figures in samples if figures}
            if found:
                self.publish("stats", found)
            sampled = {cid for cid, _ in samples}
            self._previous = {k: v for k, v in self._previous.items() if k in sampled}
            await asyncio.sleep(max(0.2, STATS_PERIOD - (time.monotonic() - started)))

    async def _sample(self, limit: asyncio.Semaphore,
                      container: str) -> tuple[str, dict[str, float] | None]:
        async with limit:
            try:
                sample = await self.engine.get(f"/containers/{container}/stats",
                                               {"stream": "false", "one-shot": True})
            except (APIError, ConnectionFailed):
                return container, None
        cpu = rows.cpu_percent(sample, self._previous.get(container))
        self._previous[container] = sample
        return container, {"cpu": cpu, "mem": rows.memory_bytes(sample)}


def release_free_memory() -> None:
    """Give the heap's free pages back to the system once the pages are gone.

    What the pages' work freed (a list of 200 containers decodes into a few MB of
    objects; /system/df as much again) stays in glibc's heap between live objects, and an
    idle dashboard would carry it for the rest of its life (~1 MiB, measured)."""
    import ctypes  # only once some page has been shown

    try:
        ctypes.CDLL(None).malloc_trim(0)
    except AttributeError:  # not glibc: nothing to give back this way
        pass
