"""The container service: the state machine of every container, persisted in SQLite.

Each running container has a shim (forked by the zygote); the service keeps a
monitor task per shim waiting for the exit, and re-attaches to live shims at
start (reconcile). Blocking work (mounts, the zygote, files) runs in threads.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import os
import secrets
import signal
import sqlite3
from collections.abc import AsyncIterator
from dataclasses import replace

from moorage.api.containers.models import (
    ZERO_TIME,
    Container,
    ContainerConfig,
    HostConfig,
    State,
)
from moorage.daemon import container_setup as setup
from moorage.daemon import container_volumes, oci_spec
from moorage.daemon.config import DaemonConfig
from moorage.daemon.container_logs import LogEntry, read_log
from moorage.daemon.container_store import ContainerStore
from moorage.daemon.create_checks import refuse_unsupported, require_network
from moorage.daemon.execs import ExecManager
from moorage.daemon.images import ImageService
from moorage.daemon.init_binary import moor_init_path
from moorage.daemon.names import generate_name
from moorage.daemon.shims import ShimError, ShimStream, Zygote, request
from moorage.daemon.volumes import VolumeStore
from moorage.errors import (
    Conflict,
    InvalidParameter,
    MoorError,
    NotFound,
    NotModified,
    SystemError,
)
from moorage.runtime.cgroups import new_manager
from moorage.shim.stdio import now_rfc3339nano
from moorage.shim.wire import ShimConfig

log = logging.getLogger("moord.containers")


def _start_error(message: str) -> tuple[int, Exception]:
    """Docker's exit code and error kind for a runtime create failure (daemon/start.go)."""
    text = f"failed to create shim task: OCI runtime create failed: {message}: unknown"
    if "executable file not found" in message or "no such file or directory" in message:
        return 127, InvalidParameter(text)
    if "permission denied" in message:
        return 126, InvalidParameter(text)
    return 128, SystemError(text)


class ContainerService:
    def __init__(self, config: DaemonConfig, images: ImageService,
                 volumes: VolumeStore) -> None:
        self.config = config
        self.images = images
        self.volumes = volumes
        volumes.set_in_use_check(lambda name: [
            c.id for c in self.containers.values()
            if any(p.type == "volume" and p.name == name for p in c.mounts)])
        self.root = os.path.join(config.data_root, "containers")
        os.makedirs(self.root, mode=0o710, exist_ok=True)
        self.store = ContainerStore(config.data_root)
        self.zygote = Zygote()
        self.zygote.start()
        self.containers: dict[str, Container] = {}
        self.execs = ExecManager(self)
        self._monitors: dict[str, asyncio.Task] = {}
        self._waiters: dict[str, list[tuple[str, asyncio.Future]]] = {}
        self._pending_attach: dict[str, list[tuple[dict, asyncio.Future]]] = {}
        self._locks: dict[str, asyncio.Lock] = {}
        if hasattr(images, "set_in_use_check"):
            images.set_in_use_check(self._containers_using)

    # ------------------------------------------------------------------ lifecycle

    async def start(self) -> None:
        """Reconcile: re-attach to live shims, mark the others exited with their code."""
        for container in self.store.load_all():
            self.containers[container.id] = container
            if container.state.status in ("running", "paused", "restarting"):
                try:
                    await request(self._socket(container.id), {"op": "state"})
                    self._monitor(container.id)
                except (NotFound, ShimError, OSError):
                    await self._exited(container.id, self._read_exit_file(container.id))

    async def stop(self) -> None:
        """The daemon is going away; containers are not (their shims outlive it)."""
        for task in self._monitors.values():
            task.cancel()
        # Pending waits end with the daemon, as their connections do with dockerd's.
        for waiters in self._waiters.values():
            for _, future in waiters:
                future.cancel()
        self.zygote.stop()
        self.store.close()
        new_manager(oci_spec.CGROUP_PARENT, "moor").remove_if_empty()

    def counts(self) -> tuple[int, int, int]:
        states = [c.state for c in self.containers.values()]
        paused = sum(1 for s in states if s.paused)
        running = sum(1 for s in states if s.running) - paused
        return running, paused, len(states) - running - paused

    def _containers_using(self, image_id: str) -> list[str]:
        return [c.id for c in self.containers.values() if c.image == image_id]

    # ------------------------------------------------------------------ paths

    def _dir(self, container_id: str) -> str:
        return os.path.join(self.root, container_id)

    def _socket(self, container_id: str) -> str:
        # sun_path holds 108 bytes: a 24-hex prefix of the id keeps deep exec-roots usable.
        return os.path.join(self.config.exec_root, "shims", container_id[:24] + ".sock")

    def _exit_file(self, container_id: str) -> str:
        return os.path.join(self.config.exec_root, "shims", container_id[:24] + ".exit")

    def _read_exit_file(self, container_id: str) -> dict:
        try:
            with open(self._exit_file(container_id)) as f:
                return json.load(f)
        except (OSError, ValueError):
            return {"exit_code": 255, "finished_at": now_rfc3339nano(),
                    "error": "the container's shim is gone"}

    # ------------------------------------------------------------------ lookup

    def get(self, ref: str) -> Container:
        """By full id, name (with or without '/') or unique id prefix; NotFound otherwise."""
        if ref in self.containers:
            return self.containers[ref]
        name = "/" + ref.lstrip("/")
        for container in self.containers.values():
            if container.name == name:
                return container
        matches = [c for c in self.containers.values() if ref and c.id.startswith(ref)]
        if len(matches) > 1:
            raise InvalidParameter(f"Multiple IDs found with provided prefix: {ref}")
        if not matches:
            raise NotFound(f"No such container: {ref}")
        return matches[0]

    def _lock(self, container_id: str) -> asyncio.Lock:
        return self._locks.setdefault(container_id, asyncio.Lock())

    def _save(self, container: Container) -> None:
        self.containers[container.id] = container
        self.store.save(container)

    def _set_state(self, container_id: str, **changes: object) -> Container:
        container = self.containers[container_id]
        updated = replace(container, state=replace(container.state, **changes))
        self._save(updated)
        return updated

    # ------------------------------------------------------------------ create

    async def container_create(self, name: str, config: ContainerConfig,
                               host: HostConfig) -> Container:
        if name:
            name = setup.validate_name(name)
        if not config.image:
            raise InvalidParameter("config cannot be empty in order to create a container")
        # dockerd's order (daemon/create.go): the settings, then the image, then the command.
        setup.validate_config(config)
        setup.validate_host_config(host, tuple(r.name for r in self.config.runtimes))
        if host.security_opt:
            oci_spec.security_options(host.security_opt)
        refuse_unsupported(host)
        oci_spec.capabilities(host.cap_add or (), host.cap_drop or (), host.privileged)
        if config.stop_signal:
            oci_spec.parse_signal(config.stop_signal)
        mounts = setup.mount_points(host)
        for mode in (host.pid_mode, host.ipc_mode):
            if mode.startswith("container:"):
                self.get(mode.partition(":")[2])
        image = await asyncio.to_thread(self.images.resolve, config.image)
        container_id = secrets.token_hex(32)
        merged = setup.merge_image_config(config, image.config, container_id)
        command = [*(merged.entrypoint or ()), *(merged.cmd or ())]
        if not command:
            raise InvalidParameter("No command specified")
        if merged.stop_signal:
            oci_spec.parse_signal(merged.stop_signal)
        if not name:
            taken = {c.name for c in self.containers.values()}
            name = "/" + generate_name(lambda n: "/" + n in taken)
        self._check_name_free(name)
        directory = self._dir(container_id)
        host = setup.host_defaults(host, self.config.default_runtime)
        mounts = container_volumes.attach(mounts, merged.volumes, self.volumes)
        container = Container(
            id=container_id, created=now_rfc3339nano(), path=command[0],
            args=tuple(command[1:]), state=State(), image=image.id,
            resolv_conf_path=os.path.join(directory, "resolv.conf"),
            hostname_path=os.path.join(directory, "hostname"),
            hosts_path=os.path.join(directory, "hosts"),
            log_path=os.path.join(directory, f"{container_id}-json.log")
            if host.log_config.type == "json-file" else "",
            name=name, host_config=host, mounts=mounts, config=merged)
        os.makedirs(directory, mode=0o710)
        try:
            await asyncio.to_thread(container_volumes.populate, directory, image.lower_dirs,
                                    container)
            self._save(container)
        except Exception as err:
            setup.remove_container_dir(directory)
            container_volumes.remove_anonymous(self.volumes, container)
            if isinstance(err, sqlite3.IntegrityError):
                self._check_name_free(name)
            raise
        return container

    def _check_name_free(self, name: str) -> None:
        for other in self.containers.values():
            if other.name == name:
                raise Conflict(f'Conflict. The container name "{name}" is already in use by '
                               f'container "{other.id}". You have to remove (or rename) that '
                               "container to be able to reuse that name.")

    # ------------------------------------------------------------------ start

    async def container_start(self, ref: str) -> None:
        container = self.get(ref)
        async with self._lock(container.id):
            container = self.containers[container.id]
            if container.state.paused:
                raise Conflict("cannot start a paused container, try unpause instead")
            if container.state.running:
                raise NotModified("container already started")
            await self._start(container)

    async def _start(self, container: Container) -> None:
        try:
            require_network(container.host_config.network_mode)
            shim_config = await asyncio.to_thread(self._prepare, container)
            reply = await asyncio.to_thread(self.zygote.spawn, shim_config)
        except MoorError as err:
            await self._start_failed(container, 128, err)
            raise
        except Exception as err:
            failure = SystemError(f"starting container: {err}")
            await self._start_failed(container, 128, failure)
            raise failure from err
        if "error" in reply:
            code, error = _start_error(reply["error"])
            await self._start_failed(container, code, error)
            raise error
        socket_path = shim_config.socket_path
        for options, future in self._pending_attach.pop(container.id, []):
            if not future.done():
                try:
                    future.set_result(await ShimStream.open(socket_path,
                                                            {"op": "attach", **options}))
                except Exception as err:  # the attach fails, not the start
                    future.set_exception(err)
        try:
            started = await request(socket_path, {"op": "start"})
        except ShimError as err:
            await self._exited(container.id, self._read_exit_file(container.id))
            raise SystemError(f"failed to start container: {err}") from None
        self._set_state(container.id, status="running", running=True, paused=False,
                        pid=int(started["pid"]), exit_code=0, error="", oom_killed=False,
                        started_at=now_rfc3339nano(), finished_at=ZERO_TIME)
        self._monitor(container.id)

    async def _start_failed(self, container: Container, code: int, error: Exception) -> None:
        """As dockerd's start failure: the container stays created with the code and error;
        waiters and pending attaches learn of it, AutoRemove removes it."""
        await asyncio.to_thread(setup.unmount_rootfs, self._dir(container.id))
        self._set_state(container.id, exit_code=code, error=str(error),
                        finished_at=now_rfc3339nano())
        self._notify(container.id, "start-failed", code, str(error))
        if container.host_config.auto_remove:
            await self._remove(self.containers[container.id], remove_volumes=True)

    def _prepare(self, container: Container) -> ShimConfig:
        """Blocking: rootfs, /etc files, config.json; the shim's configuration."""
        directory = self._dir(container.id)
        image = self.images.resolve(container.image)
        rootfs = setup.mount_rootfs(directory, image.lower_dirs)
        host = container.host_config
        setup.write_etc_files(directory, container.config, host)
        namespace_pids = {}
        for kind, mode in (("pid", host.pid_mode), ("ipc", host.ipc_mode)):
            if mode.startswith("container:"):
                other = self.get(mode.partition(":")[2])
                if not other.state.running:
                    raise Conflict(f"cannot join {kind} of a non running container: {other.id}")
                namespace_pids[kind] = other.state.pid
        user = setup.resolve_user(rootfs, container.config.user, host.group_add or ())
        inputs = oci_spec.SpecInputs(
            rootfs=rootfs, container_dir=directory,
            init_binary=moor_init_path() if host.init else "",
            namespace_pids=namespace_pids, user=user)
        spec = oci_spec.build(container, inputs)
        tmp = os.path.join(directory, "config.json.tmp")
        with open(tmp, "w") as f:
            json.dump(spec, f)
        os.rename(tmp, os.path.join(directory, "config.json"))
        runtime = self.config.runtime(host.runtime)
        shims = os.path.join(self.config.exec_root, "shims")
        os.makedirs(shims, mode=0o700, exist_ok=True)
        try:
            os.unlink(self._exit_file(container.id))
        except FileNotFoundError:
            pass
        return ShimConfig(
            container_id=container.id, bundle=directory,
            runtime_root=os.path.join(self.config.exec_root, "runtime", runtime.name),
            runtime_path="" if runtime.name == "moor-runtime" else runtime.path,
            runtime_args=runtime.args, socket_path=self._socket(container.id),
            exit_file=self._exit_file(container.id), log_path=container.log_path,
            tty=container.config.tty, open_stdin=container.config.open_stdin,
            stdin_once=container.config.stdin_once,
            console_size=_console_size(host.console_size))

    # ------------------------------------------------------------------ exit

    def _monitor(self, container_id: str) -> None:
        self._monitors[container_id] = asyncio.get_running_loop().create_task(
            self._watch(container_id))

    async def _watch(self, container_id: str) -> None:
        try:
            record = await request(self._socket(container_id), {"op": "wait"})
        except (NotFound, ShimError, OSError):
            record = self._read_exit_file(container_id)
        self._monitors.pop(container_id, None)
        await self._exited(container_id, record)

    async def _exited(self, container_id: str, record: dict) -> None:
        await asyncio.to_thread(setup.unmount_rootfs, self._dir(container_id))
        container = self._set_state(
            container_id, status="exited", running=False, paused=False, pid=0,
            exit_code=int(record.get("exit_code", 255)),
            oom_killed=bool(record.get("oom_killed")), error=record.get("error", ""),
            finished_at=record.get("finished_at") or now_rfc3339nano())
        self.execs.container_exited(container_id)
        self._notify(container_id, "exit", container.state.exit_code, "")
        if container.host_config.auto_remove:
            await self._remove(container, remove_volumes=True)

    def _notify(self, container_id: str, event: str, code: int, error: str) -> None:
        """Wake waiters: exits satisfy not-running/next-exit, removal satisfies all."""
        kept = []
        for condition, future in self._waiters.get(container_id, []):
            # dockerd clears the error when it removes the container: a "removed" waiter
            # sees the exit code alone (State.SetRemoved).
            done = event == "removed" or condition != "removed"
            if done and not future.done():
                future.set_result((code, error))
            elif not done:
                kept.append((condition, future))
        self._waiters[container_id] = kept
        if event in ("start-failed", "removed"):
            for _, future in self._pending_attach.pop(container_id, []):
                if not future.done():
                    future.set_exception(Conflict(error or "container removed"))

    def container_wait(self, ref: str, condition: str) -> asyncio.Future:
        """Registered at once; gives (StatusCode, Error) when `condition` holds
        (not-running, next-exit, removed)."""
        if condition not in ("", "not-running", "next-exit", "removed"):
            raise InvalidParameter(f"invalid condition: {condition!r}")
        container = self.get(ref)
        condition = condition or "not-running"
        future: asyncio.Future = asyncio.get_running_loop().create_future()
        if condition == "not-running" and not container.state.running:
            future.set_result((container.state.exit_code, ""))
        else:
            self._waiters.setdefault(container.id, []).append((condition, future))
        return future

    # ------------------------------------------------------------------ signals

    def _running(self, ref: str) -> Container:
        container = self.get(ref)
        if not container.state.running:
            raise Conflict(f"Container {container.id} is not running")
        return container

    async def container_kill(self, ref: str, sig: str = "") -> None:
        try:
            container = self.get(ref)
        except NotFound as err:
            raise NotFound(f"Cannot kill container: {ref}: {err}") from None
        number = oci_spec.parse_signal(sig or "SIGKILL")
        if not container.state.running:
            raise Conflict(f"Cannot kill container: {ref}: Container {container.id} is not "
                           "running")
        await request(self._socket(container.id), {"op": "kill", "signal": number,
                                                   "all": number == signal.SIGKILL})

    async def container_stop(self, ref: str, timeout: int | None = None,
                             sig: str = "") -> None:
        container = self.get(ref)
        if not container.state.running:
            raise NotModified("container already stopped")
        if timeout is None:
            timeout = container.config.stop_timeout if container.config.stop_timeout \
                is not None else 10
        number = oci_spec.parse_signal(sig) if sig else oci_spec.stop_signal(container)
        waiter = self.container_wait(container.id, "not-running")
        try:
            if container.state.paused:
                await request(self._socket(container.id), {"op": "resume"})
            await request(self._socket(container.id), {"op": "kill", "signal": number})
            if timeout < 0:
                await waiter
                return
            await asyncio.wait_for(asyncio.shield(waiter), timeout)
        except (TimeoutError, ShimError, NotFound):
            if not waiter.done():
                try:
                    await request(self._socket(container.id),
                                  {"op": "kill", "signal": int(signal.SIGKILL), "all": True})
                except (ShimError, NotFound):
                    pass
                await waiter

    async def container_restart(self, ref: str, timeout: int | None = None,
                                sig: str = "") -> None:
        container = self.get(ref)
        if container.state.running:
            await self.container_stop(container.id, timeout, sig)
        await self.container_start(container.id)

    async def container_pause(self, ref: str, pause: bool) -> None:
        container = self.get(ref)
        if not pause and not container.state.paused:
            raise Conflict(f"Container {container.id} is not paused")
        container = self._running(ref)
        if pause and container.state.paused:
            raise Conflict(f"Container {container.id} is already paused")
        if not pause and not container.state.paused:
            raise Conflict(f"Container {container.id} is not paused")
        await request(self._socket(container.id), {"op": "pause" if pause else "resume"})
        self._set_state(container.id, paused=pause, status="paused" if pause else "running")

    # ------------------------------------------------------------------ remove, rename

    async def container_rm(self, ref: str, force: bool = False,
                           remove_volumes: bool = False) -> None:
        container = self.get(ref)
        if container.state.running:
            if not force:
                state = "paused" if container.state.paused else "running"
                raise Conflict(f"You cannot remove a {state} container {container.id}. Stop "
                               "the container before attempting removal or force remove")
            waiter = self.container_wait(container.id, "not-running")
            await request(self._socket(container.id),
                          {"op": "kill", "signal": int(signal.SIGKILL), "all": True})
            await waiter
            container = self.containers.get(container.id, container)
        if container.id in self.containers:
            await self._remove(container, remove_volumes)

    async def _remove(self, container: Container, remove_volumes: bool) -> None:
        """`remove_volumes`: also the anonymous volumes (rm -v; AutoRemove, as dockerd's)."""
        if self.containers.pop(container.id, None) is None:
            return
        self.store.delete(container.id)
        self.execs.container_removed(container.id)
        await asyncio.to_thread(setup.remove_container_dir, self._dir(container.id))
        if remove_volumes:
            await asyncio.to_thread(container_volumes.remove_anonymous, self.volumes, container)
        with contextlib.suppress(FileNotFoundError):
            os.unlink(self._exit_file(container.id))
        self._locks.pop(container.id, None)
        self._notify(container.id, "removed", container.state.exit_code, "")
        self._waiters.pop(container.id, None)

    async def container_rename(self, ref: str, new_name: str) -> None:
        container = self.get(ref)
        if not new_name:
            raise InvalidParameter("Neither old nor new names may be empty")
        try:
            name = setup.validate_name("/" + new_name.lstrip("/"))
        except InvalidParameter as err:
            raise InvalidParameter(f"Error when allocating new name: {err}") from None
        if name == container.name:
            raise InvalidParameter("Renaming a container with the same name as its current "
                                   "name")
        self._check_name_free(name)
        self._save(replace(container, name=name))

    # ------------------------------------------------------------------ list, logs

    def container_list(self, *, all: bool, limit: int | None,
                       filters: dict[str, list[str]]) -> list[Container]:
        from moorage.daemon.container_filters import matches

        found = sorted(self.containers.values(), key=lambda c: c.created, reverse=True)
        # A limit lists containers in every state (docker ps --last/-n "includes all states").
        if not all and not (limit and limit > 0) and not filters.get("status") \
                and not filters.get("exited"):
            found = [c for c in found if c.state.running]
        found = [c for c in found if matches(c, filters, self)]
        return found[:limit] if limit and limit > 0 else found

    def container_logs(self, ref: str, *, follow: bool, since: float, until: float,
                       tail: int | None) -> tuple[Container, AsyncIterator[LogEntry]]:
        container = self.get(ref)
        if not container.log_path:
            raise InvalidParameter('configured logging driver does not support reading')
        return container, read_log(
            container.log_path, since=since, until=until, tail=tail, follow=follow,
            running=lambda: self._is_running(container.id))

    def graph_driver_data(self, container: Container) -> dict[str, str]:
        try:
            lower = self.images.resolve(container.image).lower_dirs
        except NotFound:  # the image was removed by force: the container keeps its layers
            lower = []
        return setup.graph_driver_data(self._dir(container.id), lower)

    async def container_size(self, container: Container) -> tuple[int, int]:
        """(SizeRw, SizeRootFs): the writable layer, and it plus the image."""
        rw = await asyncio.to_thread(setup.tree_size, os.path.join(self._dir(container.id),
                                                                   "diff"))
        try:
            image = self.images.lookup(container.image, retained=True).size
        except NotFound:
            image = 0
        return rw, rw + image

    def _is_running(self, container_id: str) -> bool:
        container = self.containers.get(container_id)
        return container is not None and container.state.running

    # ------------------------------------------------------------------ attach, resize

    async def container_attach(self, ref: str, *, stdin: bool, stdout: bool,
                               stderr: bool) -> tuple[Container, asyncio.Future]:
        """The container and a future of its ShimStream (resolved at start when not running)."""
        container = self.get(ref)
        options = {"stdin": stdin and container.config.open_stdin, "stdout": stdout,
                   "stderr": stderr}
        future: asyncio.Future = asyncio.get_running_loop().create_future()
        if container.state.running:
            future.set_result(await ShimStream.open(self._socket(container.id),
                                                    {"op": "attach", **options}))
        else:
            self._pending_attach.setdefault(container.id, []).append((options, future))
        return container, future

    async def container_resize(self, ref: str, height: int, width: int,
                               exec_id: str = "") -> None:
        container = self._running(ref)
        await request(self._socket(container.id), {"op": "resize", "h": height, "w": width,
                                                   "exec_id": exec_id})


def _console_size(size: tuple[int, ...] | None) -> tuple[int, int]:
    return (size[0], size[1]) if size and len(size) == 2 else (0, 0)
