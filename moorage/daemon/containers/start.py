"""Starting a container: its rootfs, files and OCI spec, a shim from the zygote, the
process; all under the container's lock."""

from __future__ import annotations

import asyncio
import errno
import json
import logging
import os
from dataclasses import replace

from moorage.daemon.containers import healthcheck, logconfig, setup, spec, volumes
from moorage.daemon.containers.attach import Attachments
from moorage.daemon.containers.context import Context
from moorage.daemon.containers.exits import end_process, release_run, shim_gone
from moorage.daemon.containers.init_binary import moor_init_path
from moorage.daemon.containers.monitor import Monitors
from moorage.daemon.containers.remove import remove_locked
from moorage.daemon.containers.shim_calls import call
from moorage.daemon.containers.shim_client import created
from moorage.daemon.networks.netns import held_path
from moorage.daemon.networks.service import Attachment, ContainerInfo
from moorage.errors import Conflict, InvalidParameter, MoorError, NotModified, SystemFailure
from moorage.fsutil import atomic_write
from moorage.model.records import EXITED, REMOVING, RESTARTING, RUNNING, ContainerRecord
from moorage.model.times import now_ns
from moorage.shim.wire import Failure, Forked, ShimConfig, Start, Started

log = logging.getLogger("moord.containers")


def start_error(reply: Failure, command: str) -> tuple[int, MoorError]:
    """Docker's exit code and error for a runtime create failure (moby daemon/start.go,
    translateContainerdStartErr): 127 for a command that does not exist, 126 for one
    that cannot run, 127 for a file mounted on a directory; else 128, unknown. By the
    errno the runtime reports when it does, by its message otherwise."""
    message = str(reply.error)
    text = f"failed to create shim task: OCI runtime create failed: {message}: unknown"
    lower = message.lower()
    code = reply.errno
    missing = code == errno.ENOENT if code is not None else "no such file or directory" in lower
    if command.lower() in lower and (missing or "executable file not found" in lower):
        return 127, InvalidParameter(text)
    if code == errno.EACCES or (code is None and "permission denied" in lower):
        return 126, InvalidParameter(text)
    if code == errno.ENOTDIR or (code is None and "not a directory" in lower):
        return 127, InvalidParameter(
            f"{text}: Are you trying to mount a directory onto a file (or vice-versa)? Check "
            "if the specified host path exists and is the expected type")
    return 128, SystemFailure(text)


class Starter:
    def __init__(self, ctx: Context, monitors: Monitors, attachments: Attachments) -> None:
        self.ctx = ctx
        self.monitors = monitors
        self.attachments = attachments

    async def container_start(self, ref: str) -> None:
        record = self.ctx.registry.get(ref)
        async with self.ctx.states.lock(record.id):
            record = self.ctx.states.current(record.id)
            if record.state.status == REMOVING:
                raise Conflict(f"container {record.id} is marked for removal and cannot be "
                               "started")
            if record.state.paused:
                raise Conflict("cannot start a paused container, try unpause instead")
            if record.state.running:
                raise NotModified("container already started")
            await self.start_locked(record)

    async def start_locked(self, record: ContainerRecord) -> None:
        """Caller holds the lock; the container is not running."""
        setup.check_bind_sources(record.host_config)
        await self._start(self._reset_policy(record))

    def _reset_policy(self, record: ContainerRecord) -> ContainerRecord:
        """A start by the user (or the daemon's at its start) begins the restart policy
        anew: no count, no back-off, no stop of the user's (moby ResetRestartManager)."""
        self.ctx.restarts.forget(record.id)
        if record.restart_count or record.manually_stopped:
            record = replace(record, restart_count=0, manually_stopped=False)
            self.ctx.registry.put(record)
        return record

    async def restart(self, container_id: str) -> None:
        """The restart policy's start, once its back-off ends; a failure leaves the
        container exited, as dockerd's (logged: nobody waits on it)."""
        async with self.ctx.states.lock(container_id):
            record = self.ctx.registry.find(container_id)
            if record is None or not record.state.restarting \
                    or self.ctx.restarts.cancelled(container_id):
                return
            try:
                await self._start(record)
            except Exception as err:  # recorded on the container by _failed
                log.warning("container %s: restart failed: %s", container_id, err)

    async def _start(self, record: ContainerRecord) -> None:
        ctx = self.ctx
        # The last run's shim may still be deleting the runtime's container of this id.
        await shim_gone(ctx, record)
        try:
            attachments, shim_config, namespace, forked = await asyncio.to_thread(
                self._prepare_and_fork, record, ctx.paths.new_socket(record.id))
            # The endpoints go into the namespace made ahead while the runtime creates
            # the container; the fd holds the namespace until the init has joined it.
            plugging = None if namespace is None else asyncio.ensure_future(asyncio.to_thread(
                ctx.networks.plug, container_info(record), attachments, held_path(namespace)))
            if not isinstance(forked, Failure):
                self.attachments.connect_ahead(replace(
                    record, shim_pid=int(forked.pid or 0), shim_socket=shim_config.socket_path))
            try:
                reply = forked if isinstance(forked, Failure) else await created(shim_config)
            finally:
                plug_error = await _settled(plugging)
                if namespace is not None:
                    os.close(namespace)
        except MoorError as err:
            await self._failed(record, 128, err)
            raise
        except Exception as err:
            failure = SystemFailure(f"starting container: {err}")
            await self._failed(record, 128, failure)
            raise failure from err
        if isinstance(reply, Failure):
            code, error = start_error(reply, record.path)
            await self._failed(record, code, error)
            raise error
        record = replace(record, shim_pid=int(reply.pid or 0),
                         shim_socket=shim_config.socket_path)
        ctx.registry.put(record)
        host = record.host_config
        try:
            if plug_error is not None:
                raise plug_error
            # Plugged ahead, with no DNS server to start and no port to publish (a default
            # `run`), the container needs no worker-thread trip (~0.2 ms, measured).
            if namespace is None or ctx.networks.embedded_dns(attachments) or \
                    ctx.networks.publishes(host.port_bindings, host.publish_all_ports,
                                           record.config.exposed_ports or ()):
                await asyncio.to_thread(self._connect, record, int(reply.init_pid or 0),
                                        attachments, namespace is not None)
        except Exception as err:
            await end_process(ctx, record)
            failure = err if isinstance(err, MoorError) else SystemFailure(
                f"failed to set up container networking: {err}")
            await self._failed(record, 128, failure)
            raise failure from None
        await self.attachments.resolve(record.id)
        # The exit's waiter is in place before the start: a process as short as `true`
        # ends before a wait sent after the start would reach the shim.
        self.monitors.watch(record)
        try:
            started = await call(ctx.paths, record, Start(), Started)
        except (MoorError, OSError, ValueError) as err:
            await end_process(ctx, record)
            failure = SystemFailure(f"failed to start container: {err}")
            await self._failed(record, 128, failure)
            raise failure from None
        ctx.states.transition(
            record.id, RUNNING, event="start", pid=int(started.pid), exit_code=0, error="",
            oom_killed=False, started_at=now_ns(), finished_at=0,
            health=healthcheck.initial(record))

    async def _failed(self, record: ContainerRecord, code: int, error: Exception) -> None:
        """As dockerd's start failure: the container stays as it was with the code and
        error; waiters and pending attaches learn of it, AutoRemove removes it."""
        await asyncio.to_thread(release_run, self.ctx, record)
        status = record.state.status if record.state.status not in (REMOVING, RESTARTING) \
            else EXITED
        # A restart that fails ends the container's run: its waiters learn of the exit.
        event = "exit" if record.state.restarting else "start-failed"
        record = self.ctx.states.transition(record.id, status, event=event,
                                            error=str(error), exit_code=code,
                                            finished_at=now_ns())
        if record.host_config.auto_remove:
            await remove_locked(self.ctx, record, remove_volumes=True)

    def _connect(self, record: ContainerRecord, init_pid: int,
                 attachments: list[Attachment], plugged: bool) -> None:
        """Blocking: the created container on its networks (`plugged` ahead: its DNS
        server still to start), its ports published; one worker-thread trip (each waits
        for a CPU on a loaded machine)."""
        info = container_info(record, init_pid)
        if plugged:
            self.ctx.networks.serve_dns(info, attachments)
        else:
            self.ctx.networks.plug(info, attachments)
        host = record.host_config
        self.ctx.networks.publish(info, attachments, host.port_bindings,
                                  host.publish_all_ports, record.config.exposed_ports or ())

    def _prepare_and_fork(self, record: ContainerRecord, socket_path: str
                          ) -> tuple[list[Attachment], ShimConfig, int | None, Forked | Failure]:
        """Blocking: `_prepare`, then the zygote's fork of the shim that creates the
        container; one worker-thread trip, as each waits for a CPU on a loaded machine."""
        attachments, shim_config, namespace = self._prepare(record, socket_path)
        try:
            forked = self.ctx.zygote.fork(shim_config)
        except BaseException:
            if namespace is not None:
                os.close(namespace)
            raise
        return attachments, shim_config, namespace, forked

    def _prepare(self, record: ContainerRecord,
                 socket_path: str) -> tuple[list[Attachment], ShimConfig, int | None]:
        """Blocking: the endpoints, rootfs, /etc files, config.json; the shim's
        configuration and the fd of the network namespace made for the container, if
        one is (the caller closes it)."""
        ctx = self.ctx
        paths = ctx.paths
        directory = paths.dir(record.id)
        rotation = logconfig.rotation(record.host_config.log_config.type,
                                      record.host_config.log_config.config)
        attachments = ctx.networks.prepare(container_info(record))
        rootfs = setup.mount_rootfs(directory, ctx.images.prepare_rootfs(record.id, record.image),
                                    volatile=record.host_config.auto_remove)
        volumes.check_propagation(record)
        volumes.mount_all(ctx.volumes, record)
        host = record.host_config
        setup.write_etc_files(directory, record.config, host, setup.EtcNetwork(
            addresses=tuple(a.endpoint.address for a in attachments),
            host_gateway=ctx.networks.bridge_gateway(),
            embedded_dns=ctx.networks.embedded_dns(attachments)))
        namespace_pids = {}
        for kind, mode in (("pid", host.pid_mode), ("ipc", host.ipc_mode),
                           ("network", host.network_mode), ("uts", host.uts_mode)):
            if mode.startswith("container:"):
                other = ctx.registry.get(mode.partition(":")[2])
                if not other.state.running:
                    raise Conflict(f"cannot join {kind} of a non running container: {other.id}")
                namespace_pids[kind] = other.state.pid
        user = setup.resolve_user(rootfs, record.config.user, host.group_add or ())
        runtime = ctx.config.runtime(host.runtime)
        namespace = ctx.networks.new_namespace(container_info(record))
        try:
            inputs = spec.SpecInputs(
                rootfs=rootfs, container_dir=directory,
                init_binary=moor_init_path() if host.init else "",
                namespace_pids=namespace_pids, user=user,
                network_namespace="" if namespace is None else held_path(namespace))
            document = spec.build(record, inputs)
            # No fsync: the bundle is written anew at every start.
            atomic_write(os.path.join(directory, "config.json"), json.dumps(document),
                         sync=False)
            if record.log_path:
                os.makedirs(os.path.dirname(record.log_path), exist_ok=True)
            os.makedirs(paths.shims, mode=0o700, exist_ok=True)
            paths.remove_exit_file(record.id)
        except BaseException:
            if namespace is not None:
                os.close(namespace)
            raise
        return attachments, ShimConfig(
            container_id=record.id, bundle=directory,
            runtime_root=os.path.join(ctx.config.exec_root, "runtime", runtime.name),
            runtime_path="" if runtime.name == "moor-runtime" else runtime.path,
            runtime_args=runtime.args, socket_path=socket_path,
            exit_file=paths.exit_file(record.id), log_path=record.log_path,
            tty=record.config.tty, open_stdin=record.config.open_stdin,
            stdin_once=record.config.stdin_once,
            console_size=_console_size(host.console_size), log_rotation=rotation.as_tuple(),
            log_format=record.log_format), namespace


async def _settled(future: asyncio.Future | None) -> Exception | None:
    """Wait for `future` (if any) to finish; the exception it ended with."""
    if future is None:
        return None
    try:
        await future
    except Exception as err:
        return err
    return None


def container_info(record: ContainerRecord, pid: int | None = None) -> ContainerInfo:
    """`pid`: the init's, before the container counts as running (between the runtime's
    create and start)."""
    return ContainerInfo(record.id, record.name,
                         pid if pid is not None else
                         (record.state.pid if record.state.running else 0),
                         record.host_config.network_mode, tuple(record.host_config.dns))


def _console_size(size: tuple[int, ...] | None) -> tuple[int, int]:
    return (size[0], size[1]) if size and len(size) == 2 else (0, 0)
