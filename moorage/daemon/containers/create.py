"""Creating a container: checks in dockerd's order, the image's config merged, its
directory and volumes, its record."""

from __future__ import annotations

import asyncio
import os
import secrets

from moorage.daemon.containers import events as container_events
from moorage.daemon.containers import healthcheck, logconfig, refusals, setup, spec, volumes
from moorage.daemon.containers.context import Context
from moorage.errors import InvalidParameter
from moorage.model.config import ContainerConfig, HostConfig, MountPoint
from moorage.model.records import NAMESPACE_LABEL, ContainerRecord
from moorage.model.times import now_ns
from moorage.store.snapshots import Mount


async def container_create(ctx: Context, name: str, config: ContainerConfig,
                           host: HostConfig, cri_log_path: str = "") -> ContainerRecord:
    """`cri_log_path`: the output goes there in the CRI's log format (kubelet's file)
    instead of through the container's log driver."""
    if name:
        name = setup.validate_name(name)
    if not config.image:
        raise InvalidParameter("config cannot be empty in order to create a container")
    # dockerd's order (daemon/create.go): the settings, then the image, then the command.
    setup.validate_config(config)
    healthcheck.validate(config.healthcheck)
    setup.validate_host_config(host, tuple(r.name for r in ctx.config.runtimes))
    if host.security_opt:
        spec.security_options(host.security_opt)
    refusals.refuse_unsupported(host)
    ctx.networks.check_ports(host.network_mode, host.port_bindings, host.publish_all_ports,
                             config.exposed_ports or ())
    spec.capabilities(host.cap_add or (), host.cap_drop or (), host.privileged)
    if config.stop_signal:
        spec.parse_signal(config.stop_signal)
    mounts = volumes.inherit(setup.mount_points(host), host.volumes_from, ctx.registry.get)
    for mode in (host.pid_mode, host.ipc_mode):
        if mode.startswith("container:"):
            ctx.registry.get(mode.partition(":")[2])
    container_id = secrets.token_hex(32)
    image_id, merged, command, rootfs = await asyncio.to_thread(
        _image_and_layer, ctx, config, container_id)
    try:
        name = name or ctx.registry.new_name()
        ctx.registry.reserve(name, container_id)
        try:
            record = await _create(ctx, container_id, name, merged, host, mounts, command,
                                   image_id, cri_log_path, rootfs)
        finally:
            ctx.registry.release(name, container_id)
    except Exception:
        await asyncio.to_thread(ctx.images.remove_rootfs, container_id)
        raise
    container_events.publish(ctx, record, "create")
    return record


def _image_and_layer(ctx: Context, config: ContainerConfig, container_id: str
                     ) -> tuple[str, ContainerConfig, list[str], list[Mount]]:
    """Blocking: the image, the configuration merged with its own and the command, in
    dockerd's order (the image, then the command); then the container's writable layer
    and its mounts. One worker-thread trip, as each trip waits for a CPU on a loaded
    machine and every create (`run --rm` above all) waits for it."""
    image = ctx.images.resolve(config.image)
    merged = setup.merge_image_config(config, image.config, container_id)
    command = [*(merged.entrypoint or ()), *(merged.cmd or ())]
    if not command:
        raise InvalidParameter("No command specified")
    if merged.stop_signal:
        spec.parse_signal(merged.stop_signal)
    # containerd gives the CRI's containers no init layer, dockerd gives Docker's one.
    return image.id, merged, command, ctx.images.prepare_rootfs(
        container_id, image.id, NAMESPACE_LABEL not in merged.labels)


async def _create(ctx: Context, container_id: str, name: str, merged: ContainerConfig,
                  host: HostConfig, mounts: tuple[MountPoint, ...], command: list[str],
                  image_id: str, cri_log_path: str, rootfs: list[Mount]) -> ContainerRecord:
    """The record, directory and volumes of the container on its writable layer
    (`rootfs`, which the caller removes on a failure)."""
    directory = ctx.paths.dir(container_id)
    host = setup.host_defaults(host, ctx.config.default_runtime,
                               (ctx.config.log_driver, ctx.config.log_opts))
    logconfig.check_names(host.log_config.type, host.log_config.config)
    inherited = {p.destination for p in mounts if p.type == "volume" and p.source}
    mounts = volumes.attach(mounts, merged.volumes, ctx.volumes, host)
    record = ContainerRecord(
        id=container_id, name=name, created=now_ns(), path=command[0],
        args=tuple(command[1:]), image=image_id, config=merged, host_config=host,
        mounts=mounts, resolv_conf_path=os.path.join(directory, "resolv.conf"),
        hostname_path=os.path.join(directory, "hostname"),
        hosts_path=os.path.join(directory, "hosts"),
        log_path=cri_log_path or logconfig.log_path(directory, container_id,
                                                    host.log_config.type),
        log_format="cri" if cri_log_path else "json-file")
    os.makedirs(directory, mode=0o710)
    for point in mounts:
        if point.type == "volume":
            ctx.volumes.leases.acquire(container_id, point.name)
    try:
        if any(point.type == "volume" for point in mounts):
            await asyncio.to_thread(volumes.populate, directory, rootfs, record, ctx.volumes,
                                    inherited)
        ctx.registry.put(record)
    except Exception:
        setup.remove_container_dir(directory)
        ctx.volumes.leases.release(container_id)
        volumes.remove_anonymous(ctx.volumes, record)
        raise
    return record
