"""Where a container's cgroup lives in each hierarchy, by the rules of runc 1.1's cgroupfs driver.

An absolute cgroupsPath is taken from each hierarchy's root; a relative one from the
calling process's own cgroup in that hierarchy; an empty one means the container id,
relative (runc: libcontainer/specconv createCgroupConfig sets Name = id, and
libcontainer/cgroups/fs/paths.go joins a relative name to GetOwnCgroupPath).
"""

from __future__ import annotations

import os

from moorage.errors import InvalidParameter, SystemFailure

ROOT = "/sys/fs/cgroup"
HYBRID_ROOT = "/sys/fs/cgroup/unified"


def detect_mode() -> str:
    """"unified", "hybrid" or "legacy", as the host mounts cgroups under /sys/fs/cgroup."""
    # Only a cgroup2 mount has cgroup.controllers, and every cgroup2 directory has it:
    # two stat calls answer what statfs's f_type would (Python's statvfs does not
    # expose it) without reading mountinfo.
    if os.path.exists(ROOT + "/cgroup.controllers"):
        return "unified"
    if os.path.exists(HYBRID_ROOT + "/cgroup.controllers"):
        return "hybrid"
    return "legacy"


def unified() -> bool:
    """True on a cgroup v2 host (one cgroup2 tree at /sys/fs/cgroup)."""
    return detect_mode() == "unified"


def v2_mountpoint() -> str:
    mode = detect_mode()
    if mode == "unified":
        return ROOT
    if mode == "hybrid":
        return HYBRID_ROOT
    raise SystemFailure(f"cgroup v2: no cgroup2 hierarchy is mounted at {ROOT} or {HYBRID_ROOT}")


def clean_path(cgroups_path: str | None, container_id: str) -> str:
    """runc's CleanPath: absolute stays absolute, relative cannot climb out with '..'."""
    path = cgroups_path or container_id
    if "\n" in path:
        raise InvalidParameter(f"cgroupsPath {path!r} contains a newline")
    if path.startswith("/"):
        # normpath keeps a leading '//' (POSIX leaves it implementation-defined).
        cleaned = "/" + os.path.normpath(path).lstrip("/")
    else:
        cleaned = os.path.normpath("/" + path).lstrip("/")
    if cleaned in ("", "/"):
        # runc would use the parent itself and later try to remove it.
        raise InvalidParameter(f"cgroupsPath {path!r} names a parent cgroup, not one of its own")
    return cleaned


def own_cgroups() -> dict[str, str]:
    """/proc/self/cgroup as {"cpu,cpuacct": "/x", ..., "": "/y"}; "" is the cgroup2 hierarchy."""
    with open("/proc/self/cgroup") as f:
        lines = f.read().splitlines()
    own = {}
    for line in lines:
        _, controllers, path = line.split(":", 2)
        own[controllers] = path
    return own


def _v1_mounts() -> list[tuple[set[str], str, str]]:
    """(super options, mount point, root) of each cgroup v1 mount under /sys/fs/cgroup."""
    mounts = []
    with open("/proc/self/mountinfo") as f:
        for line in f:
            if " - cgroup " not in line:
                continue
            fields = line.split()
            mountpoint = fields[4]
            if mountpoint.startswith(ROOT + "/"):
                options = fields[fields.index("-", 6) + 3]
                mounts.append((set(options.split(",")), mountpoint, fields[3]))
    return mounts


def _join(mountpoint: str, root: str, own: str, inner: str) -> str:
    if inner.startswith("/"):
        return mountpoint + inner
    # The mount may show only a subtree (a bind mount or a cgroup namespace):
    # /proc/self/cgroup paths are relative to the hierarchy's root, not to the mount.
    if root != "/":
        if own != root and not own.startswith(root + "/"):
            raise SystemFailure(f"cgroup: own cgroup {own} is outside {mountpoint} (root {root})")
        own = own[len(root):]
    return mountpoint + own.rstrip("/") + "/" + inner


def v1_paths(inner: str) -> dict[str, str]:
    """{subsystem: directory} for every v1 hierarchy, and "" for a hybrid host's cgroup2 tree.

    Co-mounted subsystems ("cpu,cpuacct") each get a key naming the same directory,
    as in runc's state.json.
    """
    own = own_cgroups()
    mounts = _v1_mounts()
    if not mounts:
        raise SystemFailure(f"cgroup v1: no hierarchy is mounted under {ROOT}")
    paths = {}
    for controllers, path in own.items():
        # Named hierarchies other than systemd's belong to other tools (runc skips them too).
        if not controllers or (controllers.startswith("name=") and controllers != "name=systemd"):
            continue
        names = controllers.split(",")
        for options, mountpoint, root in mounts:
            if options.issuperset(names):
                directory = _join(mountpoint, root, path, inner)
                for name in names:
                    paths[name] = directory
                break
    if "devices" not in paths:
        # Without it every device node would be open to the container (runc refuses too).
        raise SystemFailure(f"cgroup v1: the devices hierarchy is not mounted under {ROOT}")
    # A hybrid host's processes belong to the cgroup2 tree as well; runc joins it too,
    # so that tools reading that tree (systemd, BPF programs) see the container.
    if "" in own and os.path.exists(HYBRID_ROOT + "/cgroup.controllers"):
        paths[""] = _join(HYBRID_ROOT, "/", own[""], inner)
    return paths


def v2_path(inner: str) -> str:
    mountpoint = v2_mountpoint()
    if inner.startswith("/"):
        return mountpoint + inner
    # Like runc's fs2 driver, take /proc/self/cgroup's path as relative to the mount:
    # true on the host and inside a cgroup namespace, where cgroup2 is mounted.
    return _join(mountpoint, "/", own_cgroups()[""], inner)
