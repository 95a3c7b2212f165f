"""The container service: the API's backend, composed of one part per concern.

Lookup and names (registry), transitions (state), create, start, stop and kill,
remove, exec, attach and logs each live in their module; this class wires them
and reconciles the records with the live shims when the daemon starts and stops.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator, Callable
from dataclasses import replace

from moorage.daemon.config import DaemonConfig
from moorage.daemon.containers import (
    archive,
    create,
    prune,
    remove,
    restarts,
    setup,
    stats,
    stop,
    tarstream,
    top,
    update,
)
from moorage.daemon.containers import events as container_events
from moorage.daemon.containers.attach import Attachments
from moorage.daemon.containers.context import Context
from moorage.daemon.containers.execs import ExecManager
from moorage.daemon.containers.exits import (
    apply_exit,
    end_leftovers,
    end_process,
    end_unknown_shims,
    kill_remains,
)
from moorage.daemon.containers.filters import select
from moorage.daemon.containers.health import HealthMonitors
from moorage.daemon.containers.logs import LogEntry, read_log
from moorage.daemon.containers.monitor import Monitors
from moorage.daemon.containers.paths import ContainerPaths, read_exit_file
from moorage.daemon.containers.registry import Registry
from moorage.daemon.containers.restarts import RestartManagers
from moorage.daemon.containers.shim_calls import call
from moorage.daemon.containers.shim_client import Zygote
from moorage.daemon.containers.spec import CGROUP_PARENT
from moorage.daemon.containers.start import Starter, container_info
from moorage.daemon.containers.state import StateMachine
from moorage.daemon.containers.store import ContainerStore
from moorage.daemon.events.bus import EventBus
from moorage.daemon.images.service import ImageService
from moorage.daemon.networks.service import ContainerInfo, NetworkService
from moorage.daemon.volumes.service import VolumeService
from moorage.errors import Conflict, InvalidParameter, MoorError, NotFound
from moorage.model.config import ContainerConfig, HostConfig
from moorage.model.networks import ContainerNetwork, EndpointRequest, PublishedPort
from moorage.model.records import EXITED, NAMESPACE_LABEL, REMOVING, ContainerRecord
from moorage.runtime.cgroups import new_manager
from moorage.shim.wire import ReopenLog, Resize, ShimState, State
from moorage.store.metadata import DOCKER_NAMESPACE

log = logging.getLogger("moord.containers")
_SHUTDOWN_DEADLINE = 30.0  # seconds the daemon's stop may spend stopping containers


class ContainerService:
    def __init__(self, config: DaemonConfig, images: ImageService,
                 volumes: VolumeService, events: EventBus, networks: NetworkService) -> None:
        registry = Registry(ContainerStore(images.metadata))
        zygote = Zygote()
        zygote.start()
        self.ctx = Context(config=config, images=images, volumes=volumes,
                           paths=ContainerPaths(config.data_root, config.exec_root),
                           registry=registry, states=StateMachine(registry), zygote=zygote,
                           events=events, restarts=RestartManagers(), networks=networks)
        container_events.follow_transitions(self.ctx)
        self.monitors = Monitors(self.ctx)
        self.attachments = Attachments(self.ctx)
        self.execs = ExecManager(self.ctx)
        self.health = HealthMonitors(self.ctx, self.execs)
        self.starter = Starter(self.ctx, self.monitors, self.attachments)
        self.ctx.restarts.bind(self.starter.restart)

    # ------------------------------------------------------------------ daemon

    async def start(self) -> None:
        """Reconcile with the shims: with live-restore a running container's shim is
        re-adopted; without it (Docker's default) the container is stopped, as dockerd's
        restore kills what its last run left. A removal a crash cut short finishes;
        then, as dockerd's restore, restart policies bring back what they keep running
        and AutoRemove removes what exited while the daemon was away."""
        ctx = self.ctx
        # The containers' shared parent cgroup is made here once, not by the runtime of
        # each container, which then makes and removes only its own (24 mkdirs and
        # rmdirs fewer a container on a v1 host); stop() removes it when empty.
        try:
            new_manager(CGROUP_PARENT, "moor").create(None)
        except (MoorError, OSError) as err:  # each container's runtime will try again
            log.warning("cgroup parent %s: %s", CGROUP_PARENT, err)
        records = ctx.registry.load()
        await end_unknown_shims(ctx, {ctx.paths.socket(record) for record in records})
        for record in records:
            async with ctx.states.lock(record.id):
                if record.state.status == REMOVING:
                    await end_leftovers(ctx, record)
                    await remove.remove_locked(ctx, record, remove_volumes=False)
                    continue
                if record.state.restarting:  # the daemon went during a back-off
                    await end_leftovers(ctx, record)
                    record = ctx.states.transition(record.id, EXITED)
                elif record.state.running:
                    try:
                        await call(ctx.paths, record, State(), ShimState)
                    except MoorError as err:
                        await apply_exit(ctx, record.id, read_exit_file(ctx.paths, record.id)
                                         or await kill_remains(ctx, record, str(err)))
                    else:
                        if ctx.config.live_restore:
                            host = record.host_config
                            await asyncio.to_thread(
                                ctx.networks.readopt, container_info(record),
                                host.port_bindings, host.publish_all_ports,
                                record.config.exposed_ports or ())
                            self.monitors.watch(record)
                            self.health.arm(record)
                            continue
                        await apply_exit(ctx, record.id, await end_process(ctx, record))
                    record = ctx.states.current(record.id)
                else:
                    await end_leftovers(ctx, record)
                await self._restore_stopped(record)

    async def _restore_stopped(self, record: ContainerRecord) -> None:
        """Caller holds the lock; the container is not running. A container that has run
        and that its policy keeps running starts anew (moby's restore: count reset);
        an exited --rm container is removed."""
        if record.state.status != EXITED:
            return
        if restarts.wants_restart(record, record.state.exit_code, record.manually_stopped):
            try:
                await self.starter.start_locked(record)
            except MoorError as err:
                log.warning("container %s: restart at daemon start failed: %s",
                            record.id, err)
        elif record.host_config.auto_remove:
            await remove.remove_locked(self.ctx, record, remove_volumes=True)

    async def stop(self) -> None:
        """Without live-restore the containers stop with the daemon and their rootfs
        is unmounted; with it they keep running and their shims outlive the daemon.
        A stop that fails (its exit not recorded on a full disk) still lets the rest of
        the shutdown run; its error is raised after."""
        ctx = self.ctx
        try:
            if not ctx.config.live_restore:
                await asyncio.wait_for(stop.stop_all(ctx), _SHUTDOWN_DEADLINE)
        except TimeoutError:
            log.warning("containers still running after %ss of shutdown",
                        _SHUTDOWN_DEADLINE)
        finally:
            await self._stop_services()

    async def _stop_services(self) -> None:
        ctx = self.ctx
        await ctx.restarts.stop()
        await self.health.stop()
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

    def namespace_of(self, container_id: str) -> str:
        """The image namespace a container takes its image from: the CRI's (k8s.io) for
        its containers, the Docker API's for the others and for holders not containers."""
        record = self.ctx.registry.find(container_id)
        labels = record.config.labels if record is not None else {}
        return labels.get(NAMESPACE_LABEL, DOCKER_NAMESPACE)

    def use_embedded_dns(self, container_id: str) -> None:
        """A running container joined a user network: its resolv.conf names the
        embedded DNS from now on (written in place: it is bind-mounted)."""
        record = self.ctx.registry.get(container_id)
        setup.rewrite_resolv_conf(self.ctx.paths.dir(record.id), record.host_config,
                                  embedded_dns=True)

    def published_ports(self, container_id: str) -> list[PublishedPort]:
        return self.ctx.networks.published(container_id)

    def network_settings(self, container_id: str) -> list[ContainerNetwork]:
        record = self.ctx.registry.get(container_id)
        return self.ctx.networks.container_networks(record.id,
                                                    record.host_config.network_mode)

    async def container_create(self, name: str, config: ContainerConfig, host: HostConfig,
                               endpoint: EndpointRequest | None = None,
                               cri_log_path: str = "") -> ContainerRecord:
        """`endpoint`: the container's aliases and address on its network, whose
        endpoint is made now; a refused one leaves no container. `cri_log_path`: the
        CRI's log file (kubelet's format) instead of the log driver's."""
        record = await create.container_create(self.ctx, name, config, host, cri_log_path)
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
            # As dockerd: AutoRemove is lifted for the stop a restart makes, or the
            # exit would remove the container it is about to start.
            auto_remove = record.host_config.auto_remove
            if auto_remove:
                await self._set_auto_remove(record.id, False)
            try:
                await stop.container_stop(self.ctx, record.id, timeout, sig)
            finally:
                if auto_remove:
                    await self._set_auto_remove(record.id, True)
        await self.starter.container_start(record.id)
        container_events.publish(self.ctx, record, "restart")

    async def _set_auto_remove(self, container_id: str, auto_remove: bool) -> None:
        async with self.ctx.states.lock(container_id):
            record = self.ctx.registry.find(container_id)
            if record is not None:
                self.ctx.registry.put(replace(record, host_config=replace(
                    record.host_config, auto_remove=auto_remove)))

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
            renamed = replace(record, name=name)
            self.ctx.registry.put(renamed)
        container_events.publish(self.ctx, renamed, "rename", oldName=record.name)

    async def container_list(self, *, all: bool, limit: int | None,
                             filters: dict[str, list[str]]) -> list[ContainerRecord]:
        found = sorted((r for r in self.ctx.registry.all()
                        if NAMESPACE_LABEL not in r.config.labels),
                       key=lambda r: r.created, reverse=True)
        # A limit lists containers in every state (docker ps --last/-n "includes all states").
        if not all and not (limit and limit > 0) and not filters.get("status") \
                and not filters.get("exited"):
            found = [r for r in found if r.state.running]
        found = await select(found, filters, self.ctx.registry)
        return found[:limit] if limit and limit > 0 else found

    def container_logs(self, ref: str, *, follow: bool, since_ns: int, until_ns: int,
                       tail: int | None) -> tuple[ContainerRecord,
                                                  AsyncIterator[list[LogEntry]]]:
        record = self.get(ref)
        if not record.log_path:
            raise InvalidParameter('configured logging driver does not support reading')

        def running() -> bool:
            current = self.ctx.registry.find(record.id)
            return current is not None and current.state.running

        return record, read_log(record.log_path, since_ns=since_ns, until_ns=until_ns,
                                tail=tail, follow=follow, running=running)

    async def container_attach(self, ref: str, *, stdin: bool, stdout: bool,
                               stderr: bool) -> tuple[ContainerRecord, asyncio.Future]:
        record, future = await self.attachments.attach(ref, stdin=stdin, stdout=stdout,
                                                       stderr=stderr)
        container_events.publish(self.ctx, record, "attach")
        return record, future

    async def container_resize(self, ref: str, height: int, width: int) -> None:
        record = self.get(ref)
        if not record.state.running:
            raise Conflict(f"Container {record.id} is not running")
        await call(self.ctx.paths, record, Resize(height, width))
        container_events.publish(self.ctx, record, "resize", height=str(height),
                                 width=str(width))

    async def container_reopen_log(self, ref: str) -> None:
        """The log file opened anew at its path (the CRI's ReopenContainerLog, after
        kubelet renamed it to rotate it)."""
        record = self.get(ref)
        if not record.state.running:
            raise Conflict(f"Container {record.id} is not running")
        await call(self.ctx.paths, record, ReopenLog())

    async def container_top(self, ref: str, ps_args: str) -> tuple[list[str],
                                                                    list[list[str]]]:
        return await top.container_top(self.ctx, ref, ps_args)

    def container_stats(self, ref: str, *, stream: bool,
                        one_shot: bool) -> AsyncIterator[dict]:
        return stats.container_stats(self.ctx, ref, stream=stream, one_shot=one_shot)

    async def container_path_stat(self, ref: str, path: str) -> dict:
        return await archive.path_stat(self.ctx, ref, path)

    async def container_get_archive(self, ref: str, path: str
                                    ) -> tuple[dict, archive.TarStream]:
        return await archive.get_archive(self.ctx, ref, path)

    async def container_put_archive(self, ref: str, path: str, body: AsyncIterator[bytes], *,
                                    direct: Callable[[], tarstream.Item] | None,
                                    no_overwrite_dir_non_dir: bool,
                                    copy_uid_gid: bool) -> None:
        await archive.put_archive(self.ctx, ref, path, body, direct=direct,
                                  no_overwrite_dir_non_dir=no_overwrite_dir_non_dir,
                                  copy_uid_gid=copy_uid_gid)

    async def container_update(self, ref: str, body: dict) -> None:
        await update.container_update(self.ctx, ref, body)

    async def container_export(self, ref: str) -> archive.TarStream:
        return await archive.export(self.ctx, ref)

    async def containers_prune(self, filters: dict[str, list[str]]) -> tuple[list[str], int]:
        return await prune.containers_prune(self.ctx, filters)

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
