"""Healthchecks (moby daemon/health.go): the container's HEALTHCHECK run as an exec in
it, each interval after it starts; State.Health with the last five results; a
`health_status` event when the status changes.

A probe runs for at most its timeout: one that hangs is killed (its exec process,
through the shim) and counts as a failure. A failure inside the start period does
not count while the container has never been healthy; the start interval paces the
probes of that period. Updates of State.Health are made under the container's lock
and saved, so they survive the daemon; the probes are re-armed for containers
re-adopted under live-restore.
"""

from __future__ import annotations

import asyncio
import contextlib
from dataclasses import replace

from moorage.daemon.containers import events as container_events
from moorage.daemon.containers import healthcheck
from moorage.daemon.containers.context import Context
from moorage.daemon.containers.execs import ExecManager
from moorage.daemon.containers.shim_calls import call
from moorage.daemon.containers.tasks import cancel_all
from moorage.errors import MoorError
from moorage.model.config import ExecConfig
from moorage.model.records import (
    HEALTHY,
    STARTING,
    UNHEALTHY,
    ContainerRecord,
    Health,
    HealthResult,
)
from moorage.model.times import now_ns
from moorage.protocol.units import go_duration_ns
from moorage.shim.wire import KillExec


class HealthMonitors:
    """One probing task per running container with a healthcheck."""

    def __init__(self, ctx: Context, execs: ExecManager) -> None:
        self.ctx = ctx
        self.execs = execs
        self._tasks: dict[str, asyncio.Task] = {}
        ctx.states.listen(self._on_event)

    def _on_event(self, event: str, record: ContainerRecord, error: str) -> None:
        if event == "start":
            self.arm(record)
        elif event in ("exit", "removed"):
            self._disarm(record.id)

    def arm(self, record: ContainerRecord) -> None:
        """Probe this run of the container (a start, or an adoption by a new daemon)."""
        self._disarm(record.id)
        probe = healthcheck.command(record)
        if probe is not None:
            self._tasks[record.id] = asyncio.get_running_loop().create_task(
                self._monitor(record.id, record.state.started_at, probe))

    def _disarm(self, container_id: str) -> None:
        task = self._tasks.pop(container_id, None)
        if task is not None and task is not asyncio.current_task():
            task.cancel()

    async def stop(self) -> None:
        tasks = list(self._tasks.values())
        self._tasks.clear()
        await cancel_all(tasks)

    async def _monitor(self, container_id: str, started_at: int, probe: list[str]) -> None:
        while True:
            record = self.ctx.registry.find(container_id)
            if record is None or record.state.started_at != started_at:
                return
            health = record.state.health or Health()
            starting = health.status == STARTING and \
                now_ns() - started_at < healthcheck.setting(record, "StartPeriod")
            pace = healthcheck.setting(record, "StartInterval" if starting else "Interval")
            await asyncio.sleep(pace / healthcheck.SECOND)
            result = await self._probe(record, probe)
            async with self.ctx.states.lock(container_id):
                current = self.ctx.registry.find(container_id)
                if current is None or current.state.started_at != started_at \
                        or not current.state.running:
                    return
                self._record(current, result)

    async def _probe(self, record: ContainerRecord, probe: list[str]) -> HealthResult:
        start = now_ns()
        timeout = healthcheck.setting(record, "Timeout")
        try:
            instance = await self.execs.exec_create(record.id, ExecConfig(
                cmd=tuple(probe), attach_stdout=True, attach_stderr=True))
        except MoorError as err:
            return HealthResult(start, now_ns(), -1, str(err))
        try:
            stream = await self.execs.exec_start(instance.id, detach=False)
        except MoorError as err:
            self.execs.discard(instance.id)
            return HealthResult(start, now_ns(), -1, str(err))
        output = bytearray()
        try:
            async with asyncio.timeout(timeout / healthcheck.SECOND):
                while (frame := await stream.read()) is not None:
                    output += frame[1][:healthcheck.OUTPUT_LIMIT - len(output)]
        except TimeoutError:
            # A hung probe would pile up one process per interval: it goes now.
            with contextlib.suppress(MoorError):
                await call(self.ctx.paths, record, KillExec(instance.id, 9))
            return HealthResult(start, now_ns(), -1, "Health check exceeded timeout "
                                f"({go_duration_ns(timeout)})")
        finally:
            stream.close()
            self.execs.discard(instance.id)
        code = int(stream.exit.exit_code) if stream.exit is not None else -1
        return HealthResult(start, now_ns(), code, output.decode(errors="replace"))

    def _record(self, record: ContainerRecord, result: HealthResult) -> None:
        """Caller holds the lock: the result in State.Health (moby handleProbeResult)."""
        health = record.state.health or Health()
        log_entries = (*health.log, result)[-healthcheck.LOG_ENTRIES:]
        streak, status = health.failing_streak, health.status
        if result.exit_code == 0:
            streak, status = 0, HEALTHY
        elif not (status == STARTING and result.start - record.state.started_at
                  < healthcheck.setting(record, "StartPeriod")):
            streak += 1
            retries = int((record.config.healthcheck or {}).get("Retries") or 0) \
                or healthcheck.DEFAULT_RETRIES
            if streak >= retries:
                status = UNHEALTHY
        updated = Health(status=status, failing_streak=streak, log=log_entries)
        self.ctx.registry.put(replace(record, state=replace(record.state, health=updated)))
        if status != health.status:
            container_events.publish(self.ctx, record, f"health_status: {status}")
