"""A container's volumes: made at create, filled from the image, mounted while it runs,
released with `rm -v`.

As dockerd 20.10 does it (daemon/create_unix.go, daemon/volumes.go): the mount
points of `--volumes-from` containers come first (their mode or the one asked,
`:ro`/`:rw`), binds and mounts of the request replace those at the same destination;
every volume mount point gets its volume at create (a named one if missing, with the
driver options of `--mount volume-opt`, a new anonymous one otherwise), and each path
of the image's and the request's Config.Volumes that nothing covers gets an anonymous
volume. A volume still empty at create is filled with what the image holds at that
path (copy-up, skipped with `nocopy`). The anonymous ones, those the request did not
name, go with the container on `rm -v` and `--rm`.
"""

from __future__ import annotations

import os
import subprocess
from collections.abc import Callable
from dataclasses import replace

from moorage.daemon.containers import setup
from moorage.daemon.volumes.service import VolumeService
from moorage.errors import Conflict, InvalidParameter, NotFound, SystemFailure
from moorage.model.config import HostConfig, MountPoint
from moorage.model.records import ContainerRecord
from moorage.runtime.mounts import resolve_in_root
from moorage.store.snapshots import Mount

_NOT_INHERITED = {"private", "rprivate", "shared", "rshared", "slave", "rslave", "nocopy"}


def inherit(points: tuple[MountPoint, ...], volumes_from: tuple[str, ...] | None,
            lookup: Callable[[str], ContainerRecord]) -> tuple[MountPoint, ...]:
    """`points` after the mount points of the `--volumes-from` containers whose
    destination `points` leave free (the only volume points with a Source yet);
    InvalidParameter in dockerd's words for a missing container or a bad specification."""
    inherited: dict[str, MountPoint] = {}
    for spec in volumes_from or ():
        if not spec:
            raise InvalidParameter("volumes-from specification cannot be an empty string")
        ref, sep, mode = spec.partition(":")
        words = mode.split(",") if sep else []
        # Propagation and nocopy belong to the source container's mounts.
        if sep and (not setup.valid_mode(mode) or _NOT_INHERITED.intersection(words)):
            raise InvalidParameter(f"invalid mode: {mode}")
        try:
            source = lookup(ref)
        except NotFound as err:
            # 400 as dockerd's (and not a 404, which the docker CLI takes for a
            # missing image and goes to pull).
            raise InvalidParameter(str(err)) from None
        for point in source.mounts:
            # dockerd copies neither the mode nor an explicit :rw past a read-only source.
            inherited[point.destination] = replace(
                point, mode="", rw=point.rw and "ro" not in words)
    own = {p.destination for p in points}
    return tuple(p for d, p in inherited.items() if d not in own) + points


def attach(points: tuple[MountPoint, ...], config_volumes: dict | None,
           service: VolumeService, host: HostConfig) -> tuple[MountPoint, ...]:
    """`points` plus an anonymous volume per uncovered Config.Volumes path, every volume
    made and given its Source. Named volumes come first: a refused name fails the create
    before any anonymous volume exists to leak."""
    covered = {p.destination for p in points}
    image_paths = sorted({os.path.normpath(path) for path in config_volumes or {}} - covered)
    # The image's volumes show Mode "" in inspect, unlike -v and --mount volumes ("z").
    points += tuple(MountPoint("volume", "", path, "", True, "", name="", driver="local")
                    for path in image_paths)
    wanted = _volume_settings(host)
    fresh = [p for p in points if p.type == "volume" and not p.source]
    names: dict[str, str] = {}
    made: list[str] = []
    try:
        for point in sorted(fresh, key=lambda p: not p.name):
            driver, options, labels = wanted.get(point.destination,
                                                 (host.volume_driver, None, None))
            name = service.for_container(point.name, driver, options, labels)
            names[point.destination] = name
            if not point.name:
                made.append(name)
    except Exception:
        for name in made:
            service.remove(name, force=True)
        raise
    return tuple(replace(p, name=names[p.destination], source=service.path(names[p.destination]))
                 if p.destination in names else p for p in points)


def _volume_settings(host: HostConfig) -> dict[str, tuple[str, dict | None, dict | None]]:
    """--mount type=volume's volume-driver, volume-opt and volume-label, by destination."""
    found = {}
    for mount in host.mounts or ():
        options = mount.volume_options
        if mount.type == "volume" and options is not None:
            config = options.driver_config
            found[mount.target] = ((config.name if config else "") or host.volume_driver,
                                   config.options if config else None, options.labels)
    return found


def populate(container_dir: str, rootfs_mounts: list[Mount], container: ContainerRecord,
             service: VolumeService, inherited: set[str]) -> None:
    """Blocking: copy the image's content into each empty volume (ownership and mode of
    the image's directory included), with the container's rootfs and the volumes mounted
    meanwhile. Not into the `inherited` destinations (--volumes-from), as dockerd."""
    candidates = [p for p in container.mounts if p.type == "volume"
                  and p.destination not in inherited and not _no_copy(p, container.host_config)]
    if not candidates:
        return
    rootfs = setup.mount_rootfs(container_dir, rootfs_mounts)
    try:
        for point in candidates:
            # Resolved inside the rootfs: an image's symlink must not point the copy at
            # the host. Nothing there, nothing to mount (moby's CopyImagePathContent).
            source = resolve_in_root(rootfs, point.destination)
            if not os.path.isdir(source):
                continue
            service.mount(point.name, container.id, point.destination, point.rw,
                          point.propagation, quiet=True)
            try:
                _copy_up(source, point)
            finally:
                service.unmount(point.name, container.id, quiet=True)
    finally:
        setup.unmount_rootfs(container_dir)


def _copy_up(source: str, point: MountPoint) -> None:
    if os.listdir(point.source):
        return
    done = subprocess.run(["cp", "-a", "--", f"{source}/.", point.source],
                          capture_output=True, text=True)
    if done.returncode != 0:
        raise SystemFailure(f"copying the image's {point.destination} into volume "
                            f"{point.name}: {done.stderr.strip()}")
    info = os.stat(source)
    os.chown(point.source, info.st_uid, info.st_gid)
    os.chmod(point.source, info.st_mode & 0o7777)


def _no_copy(point: MountPoint, host: HostConfig) -> bool:
    if "nocopy" in point.mode.split(","):
        return True
    return any(m.type == "volume" and m.target == point.destination and m.volume_options
               and m.volume_options.no_copy for m in host.mounts or ())


def mount_all(service: VolumeService, container: ContainerRecord) -> None:
    """Blocking, at start: every volume mounted for the container (mount events);
    on a failure the ones mounted are unmounted again, in dockerd's words:
    "error while mounting volume '<path>': <reason>"."""
    done = []
    try:
        for point in container.mounts:
            if point.type == "volume":
                try:
                    service.mount(point.name, container.id, point.destination, point.rw,
                                  point.propagation)
                except (SystemFailure, NotFound) as err:
                    raise SystemFailure(f"error while mounting volume '{point.source}': "
                                        f"{err}") from None
                done.append(point.name)
    except Exception:
        for name in done:
            service.unmount(name, container.id)
        raise


def unmount_all(service: VolumeService, container: ContainerRecord) -> None:
    """Blocking, once the container stopped: its volumes unmounted (unmount events)."""
    for point in container.mounts:
        if point.type == "volume":
            service.unmount(point.name, container.id)


def remove_anonymous(service: VolumeService, container: ContainerRecord) -> None:
    """Remove the anonymous volumes the request did not name (moby removeMountPoints: a
    volume with no Spec.Source; one from --volumes-from keeps its source's name). One
    another container still mounts stays, as with dockerd."""
    host = container.host_config
    named = {b.split(":")[0] for b in host.binds or () if not os.path.isabs(b.split(":")[0])}
    named |= {m.source for m in host.mounts or () if m.type == "volume" and m.source}
    for point in container.mounts:
        if point.type == "volume" and point.name not in named \
                and service.is_anonymous(point.name):
            try:
                service.remove(point.name)
            except (Conflict, NotFound):
                pass


def check_propagation(container: ContainerRecord) -> None:
    """At start, as dockerd's WithMounts: a shared bind needs a shared source mount, a
    slave one a shared or slave source mount (else the propagation asked for would
    silently not happen)."""
    for point in container.mounts:
        shared = point.propagation in ("shared", "rshared")
        if point.type != "bind" or not (shared or point.propagation in ("slave", "rslave")):
            continue
        mount_point, optional = _source_mount(point.source)
        if shared and not any(f.startswith("shared:") for f in optional):
            raise SystemFailure(f"path {point.source} is mounted on {mount_point} but it "
                                "is not a shared mount")
        if not any(f.startswith(("shared:", "master:")) for f in optional):
            raise SystemFailure(f"path {point.source} is mounted on {mount_point} but it "
                                "is not a shared or slave mount")


def _source_mount(path: str) -> tuple[str, list[str]]:
    """The mount point holding `path` and its mountinfo optional fields."""
    path = os.path.realpath(path)
    best, fields = "/", []
    with open("/proc/self/mountinfo") as mountinfo:
        for line in mountinfo:
            parts = line.split(" - ")[0].split()
            where = parts[4].replace("\\040", " ")
            inside = path == where or path.startswith(where.rstrip("/") + "/")
            if inside and len(where) >= len(best):
                best, fields = where, parts[6:]
    return best, fields
