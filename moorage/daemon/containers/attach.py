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

# An attach's stream opened ahead, or why it could not be.
Opened = ShimStream | Exception


class Attachments:
    def __init__(self, ctx: Context) -> None:
        self.ctx = ctx
        self._pending: dict[str, list[tuple[dict, asyncio.Future]]] = {}
        # By container: the streams of its pending attaches, opening (connect_ahead).
        self._ahead: dict[str, asyncio.Task[list[tuple[asyncio.Future, Opened]]]] = {}
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

    def connect_ahead(self, record: ContainerRecord) -> None:
        """Right after the fork of the container's shim (`record` names it): the pending
        attaches' streams open while the runtime creates the container, answered by the
        shim once it has, instead of after it on the start's path (~0.3 ms, measured).
        resolve takes them; a start that fails closes them (_on_event)."""
        pending = self._pending.get(record.id)
        if pending:
            self._ahead[record.id] = asyncio.ensure_future(self._open_all(record, list(pending)))

    async def _open_all(self, record: ContainerRecord, pending: list[tuple[dict, asyncio.Future]]
                        ) -> list[tuple[asyncio.Future, Opened]]:
        opened: list[tuple[asyncio.Future, Opened]] = []
        for options, future in pending:
            try:
                opened.append((future, await open_stream(self.ctx.paths, record, options)))
            except Exception as err:
                opened.append((future, err))
        return opened

    async def resolve(self, container_id: str) -> None:
        """The shim exists, the process has not started: the pending attaches connect."""
        record = self.ctx.states.current(container_id)
        ahead = self._ahead.pop(container_id, None)
        opened = dict(await ahead) if ahead is not None else {}
        for options, future in self._pending.pop(container_id, []):
            stream = opened.pop(future, None)
            if future.done():  # its client went away
                if isinstance(stream, ShimStream):
                    stream.close()
                continue
            try:
                if stream is None:
                    stream = await open_stream(self.ctx.paths, record, options)
                if isinstance(stream, Exception):
                    raise stream
                future.set_result(self._detachable(record, stream))
            except Exception as err:  # the attach fails, not the start
                future.set_exception(err)

    def _detachable(self, record: ContainerRecord, stream: ShimStream) -> ShimStream:
        stream.on_detach = lambda: container_events.publish(self.ctx, record, "detach")
        return stream

    def _on_event(self, event: str, record: ContainerRecord, error: str) -> None:
        if event in ("start-failed", "removed"):
            ahead = self._ahead.pop(record.id, None)
            if ahead is not None:
                ahead.add_done_callback(_close_opened)
            for _, future in self._pending.pop(record.id, []):
                if not future.done():
                    future.set_exception(Conflict(error or "container removed"))


def _close_opened(ahead: asyncio.Task[list[tuple[asyncio.Future, Opened]]]) -> None:
    if ahead.cancelled() or ahead.exception() is not None:
        return
    for _, stream in ahead.result():
        if isinstance(stream, ShimStream):
            stream.close()
