"""The container service: the API's backend, composed of one part per concern.

Lookup and names (registry), transitions (state), create, start, stop and kill,
remove, exec, attach and logs each live in their module; this class wires them
and reconciles the records with the live shims when the daemon starts and stops.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator
from dataclasses import replace

from moorage.daemon.config import DaemonConfig
from moorage.daemon.containers import create, remove, setup, stop
from moorage.daemon.containers.attach import Attachments
from moorage.daemon.containers.context import Context
from moorage.daemon.containers.execs import ExecManager
from moorage.daemon.containers.exits import end_process, kill_remains
from moorage.daemon.containers.filters import select
from moorage.daemon.containers.logs import LogEntry, read_log
from moorage.daemon.containers.monitor import Monitors, exited
from moorage.daemon.containers.paths import ContainerPaths, read_exit_file
from moorage.daemon.containers.registry import Registry
from moorage.daemon.containers.shim_calls import call
from moorage.daemon.containers.shim_client import Zygote
from moorage.daemon.containers.spec import CGROUP_PARENT
from moorage.daemon.containers.start import Starter, container_info
from moorage.daemon.containers.state import StateMachine
from moorage.daemon.containers.store import ContainerStore
from moorage.daemon.events.bus import EventBus
from moorage.daemon.images.service import ImageService
from moorage.daemon.networks import ContainerInfo, NetworkService
from moorage.daemon.volumes.store import VolumeStore
from moorage.errors import Conflict, InvalidParameter, MoorError, NotFound
from moorage.model.config import ContainerConfig, HostConfig
from moorage.model.networks import ContainerNetwork, EndpointRequest, PublishedPort
from moorage.model.records import REMOVING, ContainerRecord
from moorage.runtime.cgroups import new_manager

log = logging.getLogger("moord.containers")
_SHUTDOWN_DEADLINE = 30.0  # seconds the daemon's stop may spend stopping containers


class ContainerService:
    def __init__(self, config: DaemonConfig, images: ImageService,
                 volumes: VolumeStore, events: EventBus, networks: NetworkService) -> None:
        registry = Registry(ContainerStore(images.metadata))
        zygote = Zygote()
        zygote.start()
        self.ctx = Context(config=config, images=images, volumes=volumes,
                           paths=ContainerPaths(config.data_root, config.exec_root),
                           registry=registry, states=StateMachine(registry), zygote=zygote,
                           events=events, networks=networks)
        self.monitors = Monitors(self.ctx)
        self.attachments = Attachments(self.ctx)
        self.execs = ExecManager(self.ctx)
        self.starter = Starter(self.ctx, self.monitors, self.attachments)

    # ------------------------------------------------------------------ daemon

    async def start(self) -> None:
        """Reconcile with the shims: with live-restore a running container's shim is
        re-adopted; without it (Docker's default) the container is stopped, as dockerd's
        restore kills what its last run left. A removal a crash cut short finishes."""
        ctx = self.ctx
        for record in ctx.registry.load():
            async with ctx.states.lock(record.id):
                if record.state.status == REMOVING:
                    await remove.remove_locked(ctx, record, remove_volumes=False)
                    continue
                if not record.state.running:
                    continue
                try:
                    await call(ctx.paths, record, {"op": "state"})
                except MoorError as err:
                    await exited(ctx, record.id, read_exit_file(ctx.paths, record.id)
                                 or await kill_remains(ctx, record, str(err)))
                    continue
                if ctx.config.live_restore:
                    host = record.host_config
                    await asyncio.to_thread(ctx.networks.readopt, container_info(record),
                                            host.port_bindings, host.publish_all_ports,
                                            record.config.exposed_ports or ())
                    self.monitors.watch(record)
                else:
                    await exited(ctx, record.id, await end_process(ctx, record))

    async def stop(self) -> None:
        """Without live-restore the containers stop with the daemon and their rootfs
        is unmounted; with it they keep running and their shims outlive the daemon."""
        ctx = self.ctx
        if not ctx.config.live_restore:
            try:
                await asyncio.wait_for(stop.stop_all(ctx), _SHUTDOWN_DEADLINE)
            except TimeoutError:
                log.warning("containers still running after %ss of shutdown",
                            _SHUTDOWN_DEADLINE)
        await self.monitors.stop()
        ctx.states.cancel_waiters()
        for record in ctx.registry.all():
            if not record.state.running:
                await asyncio.to_thread(setup.unmount_rootfs, ctx.paths.dir(record.id))
        ctx.zygote.stop()
        new_manager(CGROUP_PARENT, "moor").remove_if_empty()

    def counts(self) -> tuple[int, int, int]:
        states = [r.state for r in self.ctx.registry.all()]
        paused = sum(1 for s in states if s.paused)
        running = sum(1 for s in states if s.running) - paused
        return running, paused, len(states) - running - paused

    # ------------------------------------------------------------------ the API's backend

    def get(self, ref: str) -> ContainerRecord:
        return self.ctx.registry.get(ref)

    def network_info(self, ref: str) -> ContainerInfo:
        """What the network service needs of a container (NotFound as `get`)."""
        return container_info(self.ctx.registry.get(ref))

    def published_ports(self, container_id: str) -> list[PublishedPort]:
        return self.ctx.networks.published(container_id)

    def network_settings(self, container_id: str) -> list[ContainerNetwork]:
        record = self.ctx.registry.get(container_id)
        return self.ctx.networks.container_networks(record.id,
                                                    record.host_config.network_mode)

    async def container_create(self, name: str, config: ContainerConfig, host: HostConfig,
                               endpoint: EndpointRequest | None = None) -> ContainerRecord:
        """`endpoint`: the container's aliases and address on its network, whose
        endpoint is made now; a refused one leaves no container."""
        record = await create.container_create(self.ctx, name, config, host)
        if endpoint is not None:
            try:
                await asyncio.to_thread(self.ctx.networks.reserve, container_info(record),
                                        endpoint)
            except BaseException:
                await remove.container_rm(self.ctx, record.id, True, True)
                raise
        return record

    async def container_start(self, ref: str) -> None:
        await self.starter.container_start(ref)

    async def container_stop(self, ref: str, timeout: int | None = None,
                             sig: str = "") -> None:
        await stop.container_stop(self.ctx, ref, timeout, sig)

    async def container_restart(self, ref: str, timeout: int | None = None,
                                sig: str = "") -> None:
        record = self.get(ref)
        if record.state.running:
            await stop.container_stop(self.ctx, record.id, timeout, sig)
        await self.starter.container_start(record.id)

    async def container_kill(self, ref: str, sig: str = "") -> None:
        await stop.container_kill(self.ctx, ref, sig)

    async def container_pause(self, ref: str, pause: bool) -> None:
        await stop.container_pause(self.ctx, ref, pause)

    def container_wait(self, ref: str, condition: str) -> asyncio.Future:
        return self.ctx.states.wait(self.get(ref), condition)

    async def container_rm(self, ref: str, force: bool = False,
                           remove_volumes: bool = False) -> None:
        await remove.container_rm(self.ctx, ref, force, remove_volumes)

    async def container_rename(self, ref: str, new_name: str) -> None:
        record = self.get(ref)
        if not new_name:
            raise InvalidParameter("Neither old nor new names may be empty")
        try:
            name = setup.validate_name("/" + new_name.lstrip("/"))
        except InvalidParameter as err:
            raise InvalidParameter(f"Error when allocating new name: {err}") from None
        async with self.ctx.states.lock(record.id):
            record = self.ctx.states.current(record.id)
            if name == record.name:
                raise InvalidParameter("Renaming a container with the same name as its "
                                       "current name")
            self.ctx.registry.check_name_free(name)
            self.ctx.registry.put(replace(record, name=name))

    async def container_list(self, *, all: bool, limit: int | None,
                             filters: dict[str, list[str]]) -> list[ContainerRecord]:
        found = sorted(self.ctx.registry.all(), key=lambda r: r.created, reverse=True)
        # A limit lists containers in every state (docker ps --last/-n "includes all states").
        if not all and not (limit and limit > 0) and not filters.get("status") \
                and not filters.get("exited"):
            found = [r for r in found if r.state.running]
        found = await select(found, filters, self.ctx.registry)
        return found[:limit] if limit and limit > 0 else found

    def container_logs(self, ref: str, *, follow: bool, since: float, until: float,
                       tail: int | None) -> tuple[ContainerRecord, AsyncIterator[LogEntry]]:
        record = self.get(ref)
        if not record.log_path:
            raise InvalidParameter('configured logging driver does not support reading')

        def running() -> bool:
            current = self.ctx.registry.find(record.id)
            return current is not None and current.state.running

        return record, read_log(record.log_path, since=since, until=until, tail=tail,
                                follow=follow, running=running)

    async def container_attach(self, ref: str, *, stdin: bool, stdout: bool,
                               stderr: bool) -> tuple[ContainerRecord, asyncio.Future]:
        return await self.attachments.attach(ref, stdin=stdin, stdout=stdout, stderr=stderr)

    async def container_resize(self, ref: str, height: int, width: int,
                               exec_id: str = "") -> None:
        record = self.get(ref)
        if not record.state.running:
            raise Conflict(f"Container {record.id} is not running")
        await call(self.ctx.paths, record, {"op": "resize", "h": height, "w": width,
                                               "exec_id": exec_id})

    def graph_driver_data(self, record: ContainerRecord) -> dict[str, str]:
        try:
            rootfs = self.ctx.images.rootfs_mounts(record.id)
        except NotFound:  # created before writable layers were snapshots
            return {}
        return setup.graph_driver_data(self.ctx.paths.dir(record.id), rootfs)

    async def container_size(self, record: ContainerRecord) -> tuple[int, int]:
        """(SizeRw, SizeRootFs): the writable layer, and it plus the image."""
        try:
            upper = self.ctx.images.rootfs_mounts(record.id)[0].option("upperdir") or ""
        except NotFound:  # created before writable layers were snapshots
            upper = ""
        rw = await asyncio.to_thread(setup.tree_size, upper) if upper else 0
        try:
            image = self.ctx.images.lookup(record.image, retained=True).size
        except NotFound:
            image = 0
        return rw, rw + image
