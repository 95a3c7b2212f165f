"""Exec instances: a process started in a running container through its shim."""

from __future__ import annotations

import asyncio
import json
import os
import secrets
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from moorage import environ
from moorage.api.containers.models import ExecConfig
from moorage.daemon import container_setup as setup
from moorage.daemon import oci_spec
from moorage.daemon.shims import ShimError, ShimStream
from moorage.errors import Conflict, NotFound, SystemError

if TYPE_CHECKING:
    from moorage.daemon.containers import ContainerService


@dataclass
class ExecInstance:
    """Mutable while the process lives: pid, running, exit code."""

    id: str
    container_id: str
    config: ExecConfig
    process: dict
    pid: int = 0
    running: bool = False
    exit_code: int | None = None
    started: bool = False
    tasks: set = field(default_factory=set)


class ExecManager:
    def __init__(self, service: ContainerService) -> None:
        self.service = service
        self.execs: dict[str, ExecInstance] = {}

    def get(self, exec_id: str) -> ExecInstance:
        try:
            return self.execs[exec_id]
        except KeyError:
            raise NotFound(f"No such exec instance: {exec_id}") from None

    def exec_create(self, ref: str, config: ExecConfig) -> ExecInstance:
        container = self.service.get(ref)
        if not container.state.running:
            raise Conflict(f"Container {container.id} is not running")
        if container.state.paused:
            raise Conflict(f"Container {container.id} is paused, unpause the container before "
                           "exec")
        if not config.cmd:
            raise Conflict("No exec command specified")
        directory = self.service._dir(container.id)
        with open(os.path.join(directory, "config.json")) as f:
            base = json.load(f)["process"]
        process = dict(base)
        process["args"] = list(config.cmd)
        process["terminal"] = config.tty
        process["env"] = environ.merge(base.get("env") or (), config.env or ())
        if config.working_dir:
            process["cwd"] = config.working_dir
        if config.user:
            uid, gid, groups = setup.resolve_user(os.path.join(directory, "rootfs"),
                                                  config.user, ())
            process["user"] = {"uid": uid, "gid": gid, "additionalGids": list(groups)}
        if config.privileged:
            caps = list(oci_spec.all_capabilities())
            process["capabilities"] = {k: caps for k in ("bounding", "effective", "permitted")}
        instance = ExecInstance(secrets.token_hex(32), container.id, config, process)
        self.execs[instance.id] = instance
        return instance

    async def exec_start(self, exec_id: str, *, detach: bool) -> ShimStream:
        instance = self.get(exec_id)
        if instance.started:
            raise Conflict(f"Error: Exec command {exec_id} has already run")
        container = self.service.get(instance.container_id)
        if not container.state.running:
            raise Conflict(f"Container {container.id} is not running")
        instance.started = True
        config = instance.config
        try:
            stream = await ShimStream.open(self.service._socket(container.id), {
                "op": "exec", "exec_id": instance.id, "process": instance.process,
                "stdin": config.attach_stdin and not detach,
                "stdout": config.attach_stdout and not detach,
                "stderr": config.attach_stderr and not detach,
                "console_size": list(config.console_size or ())[:2]})
        except ShimError as err:
            # dockerd's wording and code for a process that could not be started.
            instance.exit_code = 126
            raise SystemError(f"OCI runtime exec failed: exec failed: {err}: unknown") from None
        instance.pid = stream.pid
        instance.running = True
        stream.on_exit = lambda record: self._finished(instance, record)
        if detach:
            task = asyncio.get_running_loop().create_task(_drain(stream))
            instance.tasks.add(task)
            task.add_done_callback(instance.tasks.discard)
        return stream

    def _finished(self, instance: ExecInstance, record: dict) -> None:
        instance.running = False
        instance.exit_code = int(record.get("exit_code", 126))

    def container_exited(self, container_id: str) -> None:
        for instance in self.execs.values():
            if instance.container_id == container_id and instance.running:
                instance.running = False
                if instance.exit_code is None:
                    instance.exit_code = 137

    def container_removed(self, container_id: str) -> None:
        for exec_id in [e.id for e in self.execs.values() if e.container_id == container_id]:
            del self.execs[exec_id]

    def ids_of(self, container_id: str) -> list[str]:
        return [e.id for e in self.execs.values() if e.container_id == container_id]


async def _drain(stream: ShimStream) -> None:
    try:
        while await stream.read() is not None:
            pass
    finally:
        stream.close()
