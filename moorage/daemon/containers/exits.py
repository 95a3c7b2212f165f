"""The end of a container's process: making it end, and recording that it did.

`apply_exit` is the one way a running container becomes exited (under its lock);
`end_process` kills it and returns only once the init and the shim are gone, by
the shim when it answers and by the container's cgroup and the shim's pid when it
does not, so nothing outlives a `rm -f` or a daemon stop.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import signal
import time

from moorage.daemon.containers import setup, volumes
from moorage.daemon.containers.context import Context
from moorage.daemon.containers.paths import SHIM_GONE, exit_status, read_exit_file
from moorage.daemon.containers.shim_client import REQUEST_SECONDS, request
from moorage.daemon.containers.spec import cgroup_path
from moorage.errors import MoorError, SystemFailure
from moorage.model.records import EXITED, ContainerRecord
from moorage.runtime.cgroups import new_manager
from moorage.shim.wire import (
    CreateOutcome,
    CreateResult,
    ExitRecord,
    Kill,
    Ok,
    ShimState,
    State,
    Wait,
)

log = logging.getLogger("moord.containers")

_GONE_DEADLINE = 1.0  # seconds processes have to vanish once killed


async def apply_exit(ctx: Context, container_id: str, exit_record: ExitRecord,
                     status: str = EXITED) -> ContainerRecord | None:
    """Caller holds the lock. Running → exited (or restarting, for a restart policy)
    with the shim's exit record; the rootfs is unmounted. The record as it is after
    (None once removed); a second report of the same exit changes nothing."""
    current = ctx.registry.find(container_id)
    if current is None or not current.state.running or current.state.restarting:
        return current
    try:
        await asyncio.to_thread(release_run, ctx, current)
    except SystemFailure as err:  # a full disk: the addresses are released at the next start
        log.error("container %s exited: %s", container_id, err)
    code, oom, error, finished = exit_status(exit_record)
    return ctx.states.transition(container_id, status, event="exit", pid=0, exit_code=code,
                                 oom_killed=oom, error=error, finished_at=finished)


def release_run(ctx: Context, record: ContainerRecord) -> None:
    """Blocking: what a run held and its exit gives back (rootfs mount, volume mounts,
    published ports, DNS), in one trip to a worker thread: each trip waits for a CPU
    on a loaded machine, and `run --rm` waits for all of it."""
    setup.unmount_rootfs(ctx.paths.dir(record.id))
    volumes.unmount_all(ctx.volumes, record)
    ctx.networks.stopped(record.id)


async def end_process(ctx: Context, record: ContainerRecord) -> ExitRecord:
    """SIGKILL every process of the container and wait for the exit; its exit record."""
    try:
        exit_record = await _end_shim(ctx.paths.socket(record))
    except (TimeoutError, MoorError, OSError, ValueError) as err:
        # The shim writes the exit record right after it answers its waiters and before
        # its socket closes (and request() takes the record's own "error" key for a
        # failure): the file is the truth when present; kill_remains reads it again once
        # the shim is gone.
        exit_record = read_exit_file(ctx.paths, record.id) \
            or await kill_remains(ctx, record, repr(err))
    await asyncio.to_thread(_reap_shim, record.shim_pid)
    return exit_record


async def _end_shim(socket_path: str) -> ExitRecord:
    """SIGKILL every process of a shim's container and wait for the exit it reports."""
    async with asyncio.timeout(REQUEST_SECONDS):
        waiting = asyncio.ensure_future(request(socket_path, Wait(), ExitRecord))
        try:
            # A kill that fails (the process is already gone) still ends in the exit
            # the wait reports.
            with contextlib.suppress(MoorError, OSError):
                await request(socket_path, Kill(int(signal.SIGKILL), all=True), Ok)
            return await waiting
        finally:
            waiting.cancel()


async def end_unknown_shims(ctx: Context, known: set[str]) -> None:
    """At daemon start, before any container starts: the shims whose sockets no record
    names end, with their containers. A start that a crash cut short between the
    shim's fork and the record taking its socket left one: its container, created
    and waiting for the start, holds the id and the cgroup a new start would use."""
    try:
        names = os.listdir(ctx.paths.shims)
    except FileNotFoundError:
        return
    for name in names:
        socket_path = os.path.join(ctx.paths.shims, name)
        if not name.endswith(".sock") or socket_path in known:
            continue
        try:
            # Its create's outcome first: a shim whose create failed waits for that
            # question alone (for 30 s), and ends once it is asked.
            with contextlib.suppress(MoorError):
                await asyncio.wait_for(request(socket_path, CreateOutcome(), CreateResult),
                                       REQUEST_SECONDS)
            await _end_shim(socket_path)
        except (TimeoutError, MoorError, OSError, ValueError):
            continue  # nobody answers there (any more): its shim is gone or going
        log.warning("ended the shim %s, which no container knew", name)


async def kill_remains(ctx: Context, record: ContainerRecord, why: str) -> ExitRecord:
    """The shim cannot be asked and left no exit record: whatever still runs in the
    container's cgroup, and the shim itself, are killed; an exit record for them."""
    found = await asyncio.to_thread(_kill_cgroup, record)
    await asyncio.to_thread(_reap_shim, record.shim_pid)
    if found:
        log.warning("container %s: its shim is unreachable (%s): killed its processes",
                    record.id, why)
        return ExitRecord(137)
    return read_exit_file(ctx.paths, record.id) or SHIM_GONE


async def shim_gone(ctx: Context, record: ContainerRecord) -> None:
    """Wait for the shim of the container's last run to exit after reporting the exit.

    A shim reports the exit first and then has the runtime delete the container (its
    cgroup and state, under the same id a new start would use), and exits after. A
    start and a removal wait for that, at most _GONE_DEADLINE, woken by the shim's
    pidfd (no polling: on a loaded machine it competed with the delete itself). A
    shim whose socket is gone has exited or is about to; a pid that is no longer a
    shim is not waited for."""
    socket_path = ctx.paths.socket(record)
    if record.shim_pid <= 0 or not os.path.exists(socket_path):
        return
    try:
        pidfd = os.pidfd_open(record.shim_pid)
    except OSError:  # gone already
        return
    try:
        # Checked after the pidfd is open: the pidfd is then this shim's, not a reuse's.
        if not _is_shim(record.shim_pid):
            return
        loop = asyncio.get_running_loop()
        exited: asyncio.Future[None] = loop.create_future()
        loop.add_reader(pidfd, lambda: exited.done() or exited.set_result(None))
        try:
            await asyncio.wait_for(exited, _GONE_DEADLINE)
        except TimeoutError:
            log.warning("shim %d still runs %gs after its container's exit",
                        record.shim_pid, _GONE_DEADLINE)
        finally:
            loop.remove_reader(pidfd)
    finally:
        os.close(pidfd)


async def end_leftovers(ctx: Context, record: ContainerRecord) -> None:
    """At daemon start, for a container not running: a start the crash cut short may
    have left its shim waiting for the start, and its init in its cgroup, with its
    rootfs mounted; all go. The shim is reached by its own socket (never by a pid
    that may have been reused since)."""
    try:
        await request(ctx.paths.socket(record), State(), ShimState)
    except (MoorError, OSError, ValueError):
        if await asyncio.to_thread(_kill_cgroup, record):
            log.warning("container %s: killed what a cut-short start left", record.id)
    else:
        log.warning("container %s: ended the shim a cut-short start left", record.id)
        await end_process(ctx, record)
    await asyncio.to_thread(setup.unmount_rootfs, ctx.paths.dir(record.id))


def _kill_cgroup(record: ContainerRecord) -> bool:
    """Blocking: SIGKILL what runs in the container's cgroup; whether anything did."""
    try:
        cgroup = new_manager(cgroup_path(record), record.id)
        found = bool(cgroup.pids())
        if found:
            cgroup.kill_all(int(signal.SIGKILL))
            deadline = time.monotonic() + _GONE_DEADLINE
            while cgroup.pids() and time.monotonic() < deadline:
                time.sleep(0.01)
        cgroup.remove_if_empty()
        return found
    except (MoorError, OSError):
        return False


def _reap_shim(pid: int) -> None:
    """Blocking: wait for the shim to leave on its own, then kill it."""
    if not _is_shim(pid):
        return
    deadline = time.monotonic() + _GONE_DEADLINE
    while _is_shim(pid) and time.monotonic() < deadline:
        time.sleep(0.01)
    if _is_shim(pid):
        log.warning("shim %d did not exit after its container: killed", pid)
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGKILL)


def _is_shim(pid: int) -> bool:
    """`pid` is alive and a shim (forked from the zygote): never signal a reused pid."""
    if pid <= 0:
        return False
    try:
        with open(f"/proc/{pid}/cmdline", "rb") as f:
            cmdline = f.read()
        with open(f"/proc/{pid}/stat", "rb") as f:
            zombie = f.read().rpartition(b")")[2].split()[0] == b"Z"
    except (OSError, IndexError):
        return False
    return not zombie and b"moorage.shim" in cmdline

