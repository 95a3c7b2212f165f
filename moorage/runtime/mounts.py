"""Mount option parsing and safe resolution of mount destinations inside a rootfs."""

from __future__ import annotations

import os

from moorage.errors import InvalidParameter
from moorage.linux import libc

# option -> (set, clear) flags (runtime-spec config-linux.md "Mount Options",
# the same table as runc's libcontainer/specconv).
_FLAGS = {
    "async": (0, libc.MS_SYNCHRONOUS), "atime": (0, libc.MS_NOATIME),
    "bind": (libc.MS_BIND, 0), "defaults": (0, 0), "dev": (0, libc.MS_NODEV),
    "diratime": (0, libc.MS_NODIRATIME), "dirsync": (libc.MS_DIRSYNC, 0),
    "exec": (0, libc.MS_NOEXEC), "mand": (libc.MS_MANDLOCK, 0),
    "noatime": (libc.MS_NOATIME, 0), "nodev": (libc.MS_NODEV, 0),
    "nodiratime": (libc.MS_NODIRATIME, 0), "noexec": (libc.MS_NOEXEC, 0),
    "nomand": (0, libc.MS_MANDLOCK), "norelatime": (0, libc.MS_RELATIME),
    "nostrictatime": (0, libc.MS_STRICTATIME), "nosuid": (libc.MS_NOSUID, 0),
    "nosymfollow": (libc.MS_NOSYMFOLLOW, 0), "rbind": (libc.MS_BIND | libc.MS_REC, 0),
    "relatime": (libc.MS_RELATIME, 0), "remount": (libc.MS_REMOUNT, 0),
    "ro": (libc.MS_RDONLY, 0), "rw": (0, libc.MS_RDONLY), "strictatime": (libc.MS_STRICTATIME, 0),
    "suid": (0, libc.MS_NOSUID), "symfollow": (0, libc.MS_NOSYMFOLLOW),
    "sync": (libc.MS_SYNCHRONOUS, 0),
}
PROPAGATION = {
    "private": libc.MS_PRIVATE, "rprivate": libc.MS_PRIVATE | libc.MS_REC,
    "shared": libc.MS_SHARED, "rshared": libc.MS_SHARED | libc.MS_REC,
    "slave": libc.MS_SLAVE, "rslave": libc.MS_SLAVE | libc.MS_REC,
    "unbindable": libc.MS_UNBINDABLE, "runbindable": libc.MS_UNBINDABLE | libc.MS_REC,
}
# Options runc accepts that change nothing at mount(2) level here.
_IGNORED = {"tmpcopyup"}
_UNSUPPORTED = {"idmap", "ridmap"}

OPTION_NAMES = sorted([*_FLAGS, *PROPAGATION, *_IGNORED])


class MountOptions:
    __slots__ = ("data", "flags", "propagation")

    def __init__(self, options: list[str] | None) -> None:
        flags = 0
        propagation: list[int] = []
        data: list[str] = []
        for option in options or ():
            if option in _FLAGS:
                set_bits, clear_bits = _FLAGS[option]
                flags = (flags | set_bits) & ~clear_bits
            elif option in PROPAGATION:
                propagation.append(PROPAGATION[option])
            elif option in _UNSUPPORTED:
                raise InvalidParameter(f"mount option {option!r} is not supported")
            elif option not in _IGNORED:
                data.append(option)
        self.flags = flags
        self.propagation = propagation
        self.data = ",".join(data)

    @property
    def is_bind(self) -> bool:
        return bool(self.flags & libc.MS_BIND)


def resolve_in_root(rootfs: str, path: str) -> str:
    """Host path of `path` as the container will see it, without leaving `rootfs`.

    Symlinks met on the way are followed the way the kernel will follow them
    inside the container: absolute targets start again at the rootfs, relative
    ones from the link's folder. A `..` in a link target that would climb above
    the rootfs is an attempt to reach the host: it is refused, never clamped,
    so a hostile image cannot redirect a mount outside its rootfs. Missing
    components are left as they are, for the caller to create.
    """
    parts = [p for p in os.path.normpath("/" + path).split("/") if p]
    resolved: list[str] = []
    links = 0
    while parts:
        part = parts.pop(0)
        if part == ".":
            continue
        if part == "..":
            if not resolved:
                raise InvalidParameter(
                    f"mount destination {path} escapes the rootfs through a symlink")
            resolved.pop()
            continue
        current = os.path.join(rootfs, *resolved, part)
        try:
            target = os.readlink(current)
        except OSError:
            resolved.append(part)
            continue
        links += 1
        if links > 40:
            raise InvalidParameter(f"mount destination {path}: too many levels of symlinks")
        target_parts = [p for p in target.split("/") if p]
        if target.startswith("/"):
            resolved = []
        parts = target_parts + parts
    return os.path.join(rootfs, *resolved)


def create_destination(rootfs: str, path: str, *, is_dir: bool) -> str:
    """Resolve `path` in the rootfs and create it (a folder, or an empty file)."""
    host_path = resolve_in_root(rootfs, path)
    parent = os.path.dirname(host_path)
    if not os.path.isdir(parent):
        os.makedirs(parent, 0o755, exist_ok=True)
    if is_dir:
        if not os.path.isdir(host_path):
            os.makedirs(host_path, 0o755, exist_ok=True)
    elif not os.path.exists(host_path):
        os.close(os.open(host_path, os.O_CREAT | os.O_WRONLY | os.O_CLOEXEC, 0o644))
    return host_path


def open_target(rootfs: str, host_path: str) -> int:
    """O_PATH handle on the destination, proven to still lie inside the rootfs.

    Mounting onto /proc/self/fd/N of this handle closes the window between
    resolution and mount(2) in which a swapped symlink could redirect it.
    """
    fd = os.open(host_path, os.O_PATH | os.O_NOFOLLOW | os.O_CLOEXEC)
    real = os.readlink(f"/proc/self/fd/{fd}")
    if real != rootfs and not real.startswith(rootfs.rstrip("/") + "/"):
        os.close(fd)
        raise InvalidParameter(f"mount destination {host_path} resolves outside the rootfs")
    return fd
