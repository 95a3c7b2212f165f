"""Attach: a stream of the container's stdio, or a rendezvous resolved at its start."""

from __future__ import annotations

import asyncio

from moorage.daemon.containers import events as container_events
from moorage.daemon.containers.context import Context
from moorage.daemon.containers.shim_calls import open_stream
from moorage.daemon.containers.shim_client import ShimStream
from moorage.errors import Conflict
from moorage.model.records import ContainerRecord
from moorage.shim.wire import Attach


class Attachments:
    def __init__(self, ctx: Context) -> None:
        self.ctx = ctx
        self._pending: dict[str, list[tuple[dict, asyncio.Future]]] = {}
        ctx.states.listen(self._on_event)

    async def attach(self, ref: str, *, stdin: bool, stdout: bool,
                     stderr: bool) -> tuple[ContainerRecord, asyncio.Future]:
        """The container and a future of its ShimStream (resolved at start when not
        running)."""
        record = self.ctx.registry.get(ref)
        options = Attach(stdin=stdin and record.config.open_stdin, stdout=stdout,
                         stderr=stderr)
        future: asyncio.Future = asyncio.get_running_loop().create_future()
        if record.state.running:
            future.set_result(self._detachable(record, await open_stream(
                self.ctx.paths, record, options)))
        else:
            self._pending.setdefault(record.id, []).append((options, future))
        return record, future

    async def resolve(self, container_id: str) -> None:
        """The shim exists, the process has not started: the pending attaches connect."""
        record = self.ctx.states.current(container_id)
        for options, future in self._pending.pop(container_id, []):
            if not future.done():
                try:
                    future.set_result(self._detachable(record, await open_stream(
                        self.ctx.paths, record, options)))
                except Exception as err:  # the attach fails, not the start
                    future.set_exception(err)

    def _detachable(self, record: ContainerRecord, stream: ShimStream) -> ShimStream:
        stream.on_detach = lambda: container_events.publish(self.ctx, record, "detach")
        return stream

    def _on_event(self, event: str, record: ContainerRecord, error: str) -> None:
        if event in ("start-failed", "removed"):
            for _, future in self._pending.pop(record.id, []):
                if not future.done():
                    future.set_exception(Conflict(error or "container removed"))
