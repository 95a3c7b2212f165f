"""Signals: kill, stop, pause; each returns once the state it asked for holds.

As dockerd: `kill` with SIGKILL and `stop` return once the container is dead and
its exit is recorded, so the next inspect shows the exit code and `rm` sees an
exited container.
"""

from __future__ import annotations

import asyncio
import contextlib
import signal
from dataclasses import replace

from moorage.daemon.containers import events as container_events
from moorage.daemon.containers import spec
from moorage.daemon.containers.context import Context
from moorage.daemon.containers.exits import end_process
from moorage.daemon.containers.monitor import exited
from moorage.daemon.containers.shim_calls import call
from moorage.daemon.containers.shim_client import REQUEST_SECONDS
from moorage.errors import Conflict, MoorError, NotFound, NotModified
from moorage.model.records import EXITED, PAUSED, RUNNING, ContainerRecord
from moorage.shim.wire import Kill, Pause, Resume

DEFAULT_STOP_TIMEOUT = 10


async def container_kill(ctx: Context, ref: str, sig: str = "") -> None:
    try:
        record = ctx.registry.get(ref)
    except NotFound as err:
        raise NotFound(f"Cannot kill container: {ref}: {err}") from None
    number = spec.parse_signal(sig or "SIGKILL")
    if not record.state.running:
        raise Conflict(f"Cannot kill container: {ref}: Container {record.id} is not running")
    record = await _exit_on_next(ctx, record, number, by_user=True)
    if record.state.restarting or not record.state.running:
        return  # no process to signal: a pending restart was cancelled or goes on
    container_events.publish(ctx, record, "kill", signal=str(int(number)))
    if number != signal.SIGKILL:
        await call(ctx.paths, record, Kill(number))
        return
    waiter = ctx.states.wait(record, "not-running")
    with contextlib.suppress(MoorError):  # a shim gone: its exit is being recorded
        await call(ctx.paths, record, Kill(number, all=True))
    await _until_exited(ctx, record, waiter, REQUEST_SECONDS)


async def container_stop(ctx: Context, ref: str, timeout: int | None = None,
                         sig: str = "", by_user: bool = True) -> None:
    """`by_user` False: the daemon's shutdown, which unless-stopped does not count."""
    record = ctx.registry.get(ref)
    if not record.state.running:
        raise NotModified("container already stopped")
    if timeout is None:
        timeout = record.config.stop_timeout if record.config.stop_timeout is not None \
            else DEFAULT_STOP_TIMEOUT
    number = spec.parse_signal(sig) if sig else spec.stop_signal(record)
    # A restarting container has no process for the signal: the SIGKILL a stop ends
    # with (which cancels any policy) is where it goes at once.
    record = await _exit_on_next(ctx, record, signal.SIGKILL if record.state.restarting
                                 else number, by_user)
    if not record.state.running:
        return
    waiter = ctx.states.wait(record, "not-running")
    container_events.publish(ctx, record, "kill", signal=str(int(number)))
    try:
        if record.state.paused:
            await call(ctx.paths, record, Resume())
        await call(ctx.paths, record, Kill(number))
        if timeout < 0:
            await waiter
        else:
            await asyncio.wait_for(asyncio.shield(waiter), timeout)
    except (TimeoutError, MoorError):
        container_events.publish(ctx, record, "kill", signal=str(int(signal.SIGKILL)))
        await _until_exited(ctx, record, waiter, 0)
    container_events.publish(ctx, record, "stop")


async def _exit_on_next(ctx: Context, record: ContainerRecord, number: int,
                        by_user: bool) -> ContainerRecord:
    """moby's killWithSignal before the signal: the stop signal (any signal when the
    image names none, and SIGKILL always) cancels the restart policy until the next
    start, and a restarting container, with no process to signal, ends there; a kill
    or stop by the user is remembered for unless-stopped. The record after."""
    async with ctx.states.lock(record.id):
        current = ctx.states.current(record.id)
        stop_signal = current.config.stop_signal
        cancelled = number == signal.SIGKILL or not stop_signal \
            or spec.parse_signal(stop_signal) == number
        if cancelled:
            ctx.restarts.cancel(current.id)
        if by_user and not current.manually_stopped:
            current = replace(current, manually_stopped=True)
            ctx.registry.put(current)
        if cancelled and current.state.restarting:
            current = ctx.states.transition(current.id, EXITED, event="exit")
        return current


async def _until_exited(ctx: Context, record: ContainerRecord, waiter: asyncio.Future,
                        grace: float) -> None:
    """Wait `grace` seconds for the recorded exit, then end the container ourselves."""
    if grace:
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(asyncio.shield(waiter), grace)
    if waiter.done():
        return
    async with ctx.states.lock(record.id):
        current = ctx.registry.find(record.id)
        if current is not None and current.state.running:
            await exited(ctx, record.id, await end_process(ctx, current))
    waiter.cancel()


async def container_pause(ctx: Context, ref: str, pause: bool) -> None:
    record = ctx.registry.get(ref)
    async with ctx.states.lock(record.id):
        record = ctx.states.current(record.id)
        if record.state.restarting:
            raise Conflict(f"Container {record.id} is restarting, wait until the container "
                           "is running")
        if not record.state.running:
            if not pause:
                raise Conflict(f"Container {record.id} is not paused")
            raise Conflict(f"Container {record.id} is not running")
        if pause and record.state.paused:
            raise Conflict(f"Container {record.id} is already paused")
        if not pause and not record.state.paused:
            raise Conflict(f"Container {record.id} is not paused")
        await call(ctx.paths, record, Pause() if pause else Resume())
        ctx.states.transition(record.id, PAUSED if pause else RUNNING,
                              event="pause" if pause else "unpause")


async def stop_all(ctx: Context) -> None:
    """The daemon stops without live-restore: every running container gets its stop
    signal, its stop timeout, then SIGKILL (dockerd's shutdown), all at once."""
    running = [r for r in ctx.registry.all() if r.state.running]
    results = await asyncio.gather(*(container_stop(ctx, r.id, by_user=False)
                                     for r in running),
                                   return_exceptions=True)
    for record, result in zip(running, results, strict=True):
        if isinstance(result, BaseException) and not isinstance(result, NotModified):
            async with ctx.states.lock(record.id):
                current = ctx.registry.find(record.id)
                if current is not None and current.state.running:
                    await exited(ctx, record.id, await end_process(ctx, current))
