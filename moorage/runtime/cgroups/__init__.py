"""The container's cgroups: cgroup v1, v2, and v1 with the v2 tree alongside (hybrid).

The rules follow runc 1.1's cgroupfs driver (libcontainer/cgroups/fs and fs2) so that
a bundle lands in the same cgroups under moor-runtime as under runc, and both can
inspect each other's containers.
"""

from __future__ import annotations

from moorage.errors import InvalidParameter
from moorage.runtime.cgroups.manager import CREATED, CgroupManager
from moorage.runtime.cgroups.paths import clean_path, detect_mode, unified, v1_paths, v2_path
from moorage.runtime.cgroups.v1 import V1Manager
from moorage.runtime.cgroups.v2 import V2Manager

__all__ = ["CgroupManager", "detect_mode", "load_manager", "new_manager", "unified"]


def new_manager(cgroups_path: str | None, container_id: str, mode: str = "auto") -> CgroupManager:
    """The manager for a new container's cgroup; nothing is created until create().

    `cgroups_path` is linux.cgroupsPath: absolute from each hierarchy's root, relative
    to this process's own cgroup, or, when empty, the container id, relative (runc).
    `mode` "v1" or "v2" overrides what the host mounts ("auto"); "v2" on a hybrid
    host uses its /sys/fs/cgroup/unified tree alone.
    Raises InvalidParameter for a path naming a parent cgroup, SystemFailure when the
    hierarchies are missing.
    """
    inner = clean_path(cgroups_path, container_id)
    if mode == "auto":
        mode = "v2" if unified() else "v1"
    if mode == "v2":
        return V2Manager({"": v2_path(inner)})
    if mode == "v1":
        return V1Manager(v1_paths(inner))
    raise InvalidParameter(f"cgroup mode {mode!r} is not one of auto, v1, v2")


def load_manager(paths: dict[str, str]) -> CgroupManager:
    """Reopen a container's cgroup from the `paths` its manager had (kept in state.json)."""
    if paths.keys() - {CREATED} == {""}:
        return V2Manager(dict(paths))
    return V1Manager(dict(paths))
