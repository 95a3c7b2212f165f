"""Exec instances: a process started in a running container through its shim."""

from __future__ import annotations

import asyncio
import json
import os
import secrets

from moorage import environ
from moorage.daemon.containers import events as container_events
from moorage.daemon.containers import setup, spec
from moorage.daemon.containers.context import Context
from moorage.daemon.containers.shim_calls import call
from moorage.daemon.containers.shim_client import ShimError, ShimStream
from moorage.errors import Conflict, InvalidParameter, NotFound, SystemFailure
from moorage.model.config import ExecConfig
from moorage.model.records import ContainerRecord, ExecRecord
from moorage.model.times import now_ns
from moorage.shim.wire import Exec, ExitRecord, KillExec, Resize

# Seconds an exec's failure waits for the container's exit before it counts as the
# runtime's own failure.
_EXIT_GRACE = 0.5
# Seconds a resize waits for its exec to start: a client sends its terminal's size on
# the heels of the start's 101, before the process exists (dockerd waits as long).
_START_WAIT = 10.0


class ExecManager:
    def __init__(self, ctx: Context) -> None:
        self.ctx = ctx
        self.execs: dict[str, ExecRecord] = {}
        self._processes: dict[str, dict] = {}  # id → the OCI process to run
        self._start_tried: dict[str, asyncio.Event] = {}  # set once the start has run
        self._drains: set[asyncio.Task] = set()
        ctx.states.listen(self._on_event)

    def get(self, exec_id: str) -> ExecRecord:
        try:
            return self.execs[exec_id]
        except KeyError:
            raise NotFound(f"No such exec instance: {exec_id}") from None

    async def exec_create(self, ref: str, config: ExecConfig) -> ExecRecord:
        container = self.ctx.registry.get(ref)
        if not container.state.running:
            raise Conflict(f"Container {container.id} is not running")
        if container.state.restarting:
            raise Conflict(f"Container {container.id} is restarting, wait until the "
                           "container is running")
        if container.state.paused:
            raise Conflict(f"Container {container.id} is paused, unpause the container before "
                           "exec")
        if not config.cmd:
            raise Conflict("No exec command specified")
        process = await asyncio.to_thread(self._process, container, config)
        record = ExecRecord(secrets.token_hex(32), container.id, config, now_ns())
        self.execs[record.id] = record
        self._processes[record.id] = process
        self._start_tried[record.id] = asyncio.Event()
        container_events.publish(self.ctx, container, f"exec_create: {_command(config)}",
                                 execID=record.id)
        return record

    def _process(self, container: ContainerRecord, config: ExecConfig) -> dict:
        """Blocking: the container's process from its config.json, changed as asked."""
        directory = self.ctx.paths.dir(container.id)
        try:
            with open(os.path.join(directory, "config.json")) as f:
                base = json.load(f)["process"]
        except (OSError, ValueError, KeyError):
            raise Conflict(f"Container {container.id} is not running") from None
        process = dict(base)
        process["args"] = list(config.cmd or ())
        process["terminal"] = config.tty
        process["env"] = environ.merge(base.get("env") or (), config.env or ())
        if config.working_dir:
            process["cwd"] = config.working_dir
        if config.user:
            uid, gid, groups = setup.resolve_user(os.path.join(directory, "rootfs"),
                                                  config.user, ())
            process["user"] = {"uid": uid, "gid": gid, "additionalGids": list(groups)}
        if config.privileged:
            caps = list(spec.all_capabilities())
            process["capabilities"] = {k: caps for k in ("bounding", "effective", "permitted")}
        return process

    async def exec_start(self, exec_id: str, *, detach: bool) -> ShimStream:
        record = self.get(exec_id)
        if record.started:
            raise Conflict(f"Error: Exec command {exec_id} has already run")
        container = self.ctx.registry.get(record.container_id)
        if not container.state.running:
            raise Conflict(f"Container {container.id} is not running")
        record.started = True
        try:
            return await self._start(container, record, detach)
        finally:
            if tried := self._start_tried.get(exec_id):
                tried.set()

    async def _start(self, container: ContainerRecord, record: ExecRecord,
                     detach: bool) -> ShimStream:
        config = record.config
        container_events.publish(self.ctx, container, f"exec_start: {_command(config)}",
                                 execID=record.id)
        try:
            stream = await ShimStream.open(self.ctx.paths.socket(container), Exec(
                record.id, self._processes.pop(record.id),
                stdin=config.attach_stdin and not detach,
                stdout=config.attach_stdout and not detach,
                stderr=config.attach_stderr and not detach,
                console_size=list(config.console_size or ())[:2]))
        except (ShimError, NotFound, OSError) as err:
            record.exit_code = 126
            if await self._ending(container):
                raise Conflict(f"Container {container.id} is not running") from None
            # dockerd's wording and code for a process that could not be started.
            raise SystemFailure(f"OCI runtime exec failed: exec failed: {err}: unknown") \
                from None
        record.pid = stream.pid
        record.running = True
        stream.on_exit = lambda status: self._finished(container, record, status)
        stream.on_detach = lambda: container_events.publish(
            self.ctx, container, "exec_detach", execID=record.id)
        if detach:
            task = asyncio.get_running_loop().create_task(_drain(stream))
            self._drains.add(task)
            task.add_done_callback(self._drains.discard)
        return stream

    async def exec_resize(self, exec_id: str, height: int, width: int) -> None:
        record = self.get(exec_id)
        tried = self._start_tried.get(exec_id)
        if tried is not None:
            try:
                await asyncio.wait_for(tried.wait(), _START_WAIT)
            except TimeoutError:
                raise Conflict("timeout waiting for exec session ready") from None
        if not record.pid:
            raise InvalidParameter("exec process is not started")
        if not record.running:
            raise NotFound("no such exec")  # containerd's word for a process gone
        container = self.ctx.registry.get(record.container_id)
        if not container.state.running:
            raise Conflict(f"Container {container.id} is not running")
        await call(self.ctx.paths, container, Resize(height, width, exec_id))

    async def _ending(self, container: ContainerRecord) -> bool:
        """After a failed exec: whether the container was dying (its exit comes within
        moments); an exec into a dying container fails with ENOMEM or a reset socket."""
        current = self.ctx.registry.find(container.id)
        if current is None or not current.state.running:
            return True
        waiter = self.ctx.states.wait(current, "not-running")
        try:
            await asyncio.wait_for(asyncio.shield(waiter), _EXIT_GRACE)
        except TimeoutError:
            return False
        finally:
            waiter.cancel()
        return True

    def _finished(self, container: ContainerRecord, record: ExecRecord,
                  status: ExitRecord) -> None:
        record.running = False
        record.exit_code = int(status.exit_code)
        container_events.publish(self.ctx, container, "exec_die", execID=record.id,
                                 exitCode=str(record.exit_code))

    def _on_event(self, event: str, container: ContainerRecord, error: str) -> None:
        if event == "exit":
            for record in self.execs.values():
                if record.container_id == container.id and record.running:
                    record.running = False
                    if record.exit_code is None:
                        record.exit_code = 137
        elif event == "removed":
            for exec_id in self.ids_of(container.id):
                self.discard(exec_id)

    async def exec_kill(self, exec_id: str, signal: int) -> None:
        """Signal a running exec's process (an ExecSync past its timeout)."""
        record = self.get(exec_id)
        container = self.ctx.registry.get(record.container_id)
        await call(self.ctx.paths, container, KillExec(exec_id, signal))

    def discard(self, exec_id: str) -> None:
        """An internal exec (a healthcheck's) is forgotten once it ends."""
        self.execs.pop(exec_id, None)
        self._processes.pop(exec_id, None)
        self._start_tried.pop(exec_id, None)

    def ids_of(self, container_id: str) -> list[str]:
        return [e.id for e in self.execs.values() if e.container_id == container_id]


def _command(config: ExecConfig) -> str:
    """dockerd's exec action text: the entrypoint, a space, the arguments joined."""
    cmd = list(config.cmd or ())
    return f"{cmd[0]} {' '.join(cmd[1:])}"


async def _drain(stream: ShimStream) -> None:
    try:
        while await stream.read() is not None:
            pass
    finally:
        stream.close()
