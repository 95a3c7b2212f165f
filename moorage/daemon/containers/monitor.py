"""One task per running container, waiting on its shim for the exit."""

from __future__ import annotations

import asyncio
from dataclasses import replace

from moorage.daemon.containers import events as container_events
from moorage.daemon.containers.context import Context
from moorage.daemon.containers.exits import apply_exit, kill_remains
from moorage.daemon.containers.paths import exit_status, read_exit_file
from moorage.daemon.containers.remove import remove_locked
from moorage.daemon.containers.shim_client import request
from moorage.daemon.containers.tasks import cancel_all
from moorage.errors import MoorError
from moorage.model.records import RESTARTING, ContainerRecord
from moorage.shim.wire import ExitRecord, Wait


class Monitors:
    def __init__(self, ctx: Context) -> None:
        self.ctx = ctx
        self._tasks: dict[str, asyncio.Task] = {}

    def watch(self, record: ContainerRecord) -> None:
        """Wait for the exit of this run of the container (its shim's)."""
        self._tasks[record.id] = asyncio.get_running_loop().create_task(
            self._watch(record.id, record.shim_pid, self.ctx.paths.socket(record)))

    async def _watch(self, container_id: str, shim_pid: int, socket_path: str) -> None:
        exit_record: ExitRecord | None
        lost = ""
        try:
            exit_record = await request(socket_path, Wait(), ExitRecord)
        except (MoorError, OSError, ValueError) as err:
            exit_record = read_exit_file(self.ctx.paths, container_id)
            lost = repr(err)
        if self._tasks.get(container_id) is asyncio.current_task():
            del self._tasks[container_id]
        if self.ctx.registry.find(container_id) is None:  # removed meanwhile (rm -f)
            return
        async with self.ctx.states.lock(container_id):
            record = self.ctx.registry.find(container_id)
            if record is None or record.shim_pid != shim_pid or not record.state.running:
                return  # this run's exit was recorded already (rm -f, stop, a restart)
            if exit_record is None:
                # Never record an exit of processes that may still run: they would
                # outlive their container's removal.
                exit_record = await kill_remains(self.ctx, record, lost)
            await exited(self.ctx, container_id, exit_record)

    async def stop(self) -> None:
        tasks = list(self._tasks.values())
        self._tasks.clear()
        await cancel_all(tasks)


async def exited(ctx: Context, container_id: str, exit_record: ExitRecord) -> None:
    """Caller holds the lock: record the exit; then the restart policy's back-off, or
    AutoRemove (with its anonymous volumes, as dockerd's --rm)."""
    record = ctx.registry.find(container_id)
    if record is None or not record.state.running or record.state.restarting:
        return
    code, oom, _, finished = exit_status(exit_record)
    if oom:
        container_events.publish(ctx, record, "oom")
    delay = ctx.restarts.decide(record, code, (finished - record.state.started_at) / 1e9,
                                record.manually_stopped)
    if delay is not None:
        ctx.registry.put(replace(record, restart_count=record.restart_count + 1))
        await apply_exit(ctx, container_id, exit_record, status=RESTARTING)
        ctx.restarts.schedule(container_id, delay)
        return
    record = await apply_exit(ctx, container_id, exit_record)
    if record is not None and not record.state.running and record.host_config.auto_remove:
        await remove_locked(ctx, record, remove_volumes=True)
