"""A container's volumes: made at create, filled from the image, released with `rm -v`.

As dockerd 20.10 does it (daemon/create_unix.go, daemon/volumes.go): every
volume mount point gets its volume at create (a named one if missing, a new
anonymous one otherwise), and each path of the image's and the request's
Config.Volumes that no bind or volume covers gets an anonymous volume. A volume
still empty at create is filled with what the image holds at that path (copy-up,
skipped with `nocopy`). The anonymous ones, those the request did not name, go
with the container on `rm -v` and `--rm`.
"""

from __future__ import annotations

import os
import subprocess
from dataclasses import replace

from moorage.daemon.containers import setup
from moorage.daemon.volumes.store import VolumeStore
from moorage.errors import Conflict, NotFound, SystemFailure
from moorage.model.config import HostConfig, MountPoint
from moorage.model.records import ContainerRecord
from moorage.runtime.mounts import resolve_in_root
from moorage.store.snapshots import Mount


def attach(points: tuple[MountPoint, ...], config_volumes: dict | None,
           store: VolumeStore) -> tuple[MountPoint, ...]:
    """`points` plus an anonymous volume per uncovered Config.Volumes path, every volume
    made and given its Source. Named volumes come first: a refused name fails the create
    before any anonymous volume exists to leak."""
    covered = {p.destination for p in points}
    image_paths = sorted({os.path.normpath(path) for path in config_volumes or {}} - covered)
    # The image's volumes show Mode "" in inspect, unlike -v and --mount volumes ("z").
    points += tuple(MountPoint("volume", "", path, "", True, "", name="", driver="local")
                    for path in image_paths)
    names = {p.destination: store.create(p.name) for p in points
             if p.type == "volume" and p.name}
    names.update({p.destination: store.create() for p in points
                  if p.type == "volume" and not p.name})
    return tuple(replace(p, name=names[p.destination], source=store.path(names[p.destination]))
                 if p.type == "volume" else p for p in points)


def populate(container_dir: str, rootfs_mounts: list[Mount],
             container: ContainerRecord) -> None:
    """Blocking: copy the image's content into each empty volume (ownership and mode of
    the image's directory included), with the container's rootfs mounted meanwhile."""
    wanted = [p for p in container.mounts if p.type == "volume"
              and not _no_copy(p, container.host_config) and not os.listdir(p.source)]
    if not wanted:
        return
    rootfs = setup.mount_rootfs(container_dir, rootfs_mounts)
    try:
        for point in wanted:
            # Resolved inside the rootfs: an image's symlink must not point the copy at
            # the host.
            source = resolve_in_root(rootfs, point.destination)
            if not os.path.isdir(source):
                continue
            done = subprocess.run(["cp", "-a", "--", f"{source}/.", point.source],
                                  capture_output=True, text=True)
            if done.returncode != 0:
                raise SystemFailure(f"copying the image's {point.destination} into volume "
                                  f"{point.name}: {done.stderr.strip()}")
            info = os.stat(source)
            os.chown(point.source, info.st_uid, info.st_gid)
            os.chmod(point.source, info.st_mode & 0o7777)
    finally:
        setup.unmount_rootfs(container_dir)


def _no_copy(point: MountPoint, host: HostConfig) -> bool:
    if "nocopy" in point.mode.split(","):
        return True
    return any(m.type == "volume" and m.target == point.destination and m.volume_options
               and m.volume_options.no_copy for m in host.mounts or ())


def remove_anonymous(store: VolumeStore, container: ContainerRecord) -> None:
    """Remove the volumes the request did not name (moby removeMountPoints: a volume with
    no Spec.Source). One another container still mounts stays, as with dockerd."""
    host = container.host_config
    named = {b.split(":")[0] for b in host.binds or () if not os.path.isabs(b.split(":")[0])}
    named |= {m.source for m in host.mounts or () if m.type == "volume" and m.source}
    for point in container.mounts:
        if point.type == "volume" and point.name not in named:
            try:
                store.remove(point.name)
            except (Conflict, NotFound):
                pass
