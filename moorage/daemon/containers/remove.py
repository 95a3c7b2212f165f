"""Removal of a container: `rm`, `rm -f` at any moment of its life, AutoRemove."""

from __future__ import annotations

import asyncio

from moorage.daemon.containers import setup, volumes
from moorage.daemon.containers.context import Context
from moorage.daemon.containers.exits import apply_exit, end_process, shim_gone
from moorage.errors import Conflict, SystemFailure
from moorage.model.records import EXITED, REMOVING, ContainerRecord


async def container_rm(ctx: Context, ref: str, force: bool, remove_volumes: bool) -> None:
    """`remove_volumes`: also the anonymous volumes (rm -v)."""
    record = ctx.registry.get(ref)
    async with ctx.states.lock(record.id):
        record = ctx.states.current(record.id)
        if record.state.running:
            if not force:
                raise Conflict(f"You cannot remove a {record.state.status} container "
                               f"{record.id}. Stop the container before attempting removal "
                               "or force remove")
            # rm -f is a SIGKILL of the user's: no restart policy brings it back.
            ctx.restarts.cancel(record.id)
            if record.state.restarting:
                ctx.states.transition(record.id, EXITED, event="exit")
            else:
                await apply_exit(ctx, record.id, await end_process(ctx, record))
            record = ctx.states.current(record.id)
        await remove_locked(ctx, record, remove_volumes)


async def remove_locked(ctx: Context, record: ContainerRecord, remove_volumes: bool) -> None:
    """Caller holds the lock; the container is not running. Its files, its record, its
    anonymous volumes with `remove_volumes`; waiters for "removed" are woken. A removal
    cut short (status removing) is finished by the next one."""
    if ctx.registry.find(record.id) is None:
        return
    if record.state.status != REMOVING:
        record = ctx.states.transition(record.id, REMOVING)
    # One trip to a worker thread: on a loaded machine each trip waits for a CPU, and
    # these steps run one after another anyway (`run --rm` waits for all of them).
    try:
        await asyncio.to_thread(_remove_files, ctx, record)
    except Exception as error:
        # As dockerd's SetRemovalError: whoever waits for "removed" (`run --rm`) learns
        # of it instead of waiting forever; the record stays, for the next rm to finish.
        message = f"unable to remove filesystem for {record.id}: {error}"
        ctx.states.removal_failed(record, message)
        raise SystemFailure(message) from error
    ctx.volumes.leases.release(record.id)
    ctx.registry.drop(record.id)
    if remove_volumes and any(point.type == "volume" for point in record.mounts):
        await asyncio.to_thread(volumes.remove_anonymous, ctx.volumes, record)
    await shim_gone(ctx, record)  # its cgroup and runtime state go before "removed"
    ctx.paths.remove_exit_file(record.id)
    ctx.restarts.forget(record.id)
    ctx.states.removed(record)
    # The files went out of sight in _remove_files; deleting them is no part of the
    # removal anyone waits for (`run --rm` waited ~2-3 ms for it, measured). The loop's
    # default executor is awaited when the daemon stops.
    asyncio.get_running_loop().run_in_executor(None, ctx.images.empty_trash)


def _remove_files(ctx: Context, record: ContainerRecord) -> None:
    """Blocking: the container's directory and writable layer out of sight (deleted
    after the removal, see remove_locked), its endpoints released."""
    directory = ctx.paths.dir(record.id)
    setup.unmount_rootfs(directory)
    ctx.images.discard(directory)
    ctx.images.remove_rootfs(record.id, later=True)
    ctx.networks.release(record.id)
