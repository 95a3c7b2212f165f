"""The `local` driver's options, as moby's volume/local does them: `type`, `device`
and `o` checked at create, and mount(2) of the device on the volume's _data while
a container uses it (tmpfs, `type=none,o=bind`, a block device or any filesystem
the kernel mounts). `size` needs quota support the engine does not have: refused
in dockerd's words, as dockerd refuses it without quota."""

from __future__ import annotations

import errno
import os

from moorage.errors import InvalidParameter, SystemFailure
from moorage.linux import libc

_VALID = ("type", "device", "o", "size")
# moby's mandatoryOpts, in a fixed order (Go's map order is random).
_REQUIRED = (("o", ("device", "type")), ("device", ("type",)), ("type", ("device",)))

# moby/sys/mount's flag table: an option that sets (True) or clears (False) a flag.
_FLAGS: dict[str, tuple[bool, int]] = {
    "defaults": (False, 0), "ro": (True, libc.MS_RDONLY), "rw": (False, libc.MS_RDONLY),
    "suid": (False, libc.MS_NOSUID), "nosuid": (True, libc.MS_NOSUID),
    "dev": (False, libc.MS_NODEV), "nodev": (True, libc.MS_NODEV),
    "exec": (False, libc.MS_NOEXEC), "noexec": (True, libc.MS_NOEXEC),
    "sync": (True, libc.MS_SYNCHRONOUS), "async": (False, libc.MS_SYNCHRONOUS),
    "dirsync": (True, libc.MS_DIRSYNC), "remount": (True, libc.MS_REMOUNT),
    "mand": (True, libc.MS_MANDLOCK), "nomand": (False, libc.MS_MANDLOCK),
    "atime": (False, libc.MS_NOATIME), "noatime": (True, libc.MS_NOATIME),
    "diratime": (False, libc.MS_NODIRATIME), "nodiratime": (True, libc.MS_NODIRATIME),
    "bind": (True, libc.MS_BIND), "rbind": (True, libc.MS_BIND | libc.MS_REC),
    "relatime": (True, libc.MS_RELATIME), "norelatime": (False, libc.MS_RELATIME),
    "strictatime": (True, libc.MS_STRICTATIME), "nostrictatime": (False, libc.MS_STRICTATIME),
}
_PROPAGATION = {
    "private": libc.MS_PRIVATE, "rprivate": libc.MS_PRIVATE | libc.MS_REC,
    "shared": libc.MS_SHARED, "rshared": libc.MS_SHARED | libc.MS_REC,
    "slave": libc.MS_SLAVE, "rslave": libc.MS_SLAVE | libc.MS_REC,
    "unbindable": libc.MS_UNBINDABLE, "runbindable": libc.MS_UNBINDABLE | libc.MS_REC,
}


def validate(options: dict[str, str]) -> None:
    """InvalidParameter in moby's words for options the local driver refuses."""
    for key in options:
        if key not in _VALID:
            raise InvalidParameter(f'invalid option: "{key}"')
    for key, needs in _REQUIRED:
        if key in options:
            for need in needs:
                if need not in options:
                    raise InvalidParameter(f'missing required option: "{need}"')
    if "size" in options:
        raise InvalidParameter("quota size requested but no quota support")


def needs_mount(options: dict[str, str] | None) -> bool:
    return bool(options and (options.get("type") or options.get("device")))


def mount(options: dict[str, str], target: str) -> None:
    """Mount the volume's device on `target` (its _data). SystemFailure in moby's words:
    "failed to mount local volume: mount DEVICE:TARGET, flags: 0x…: <errno>"."""
    device, kind = options.get("device", ""), options.get("type", "")
    flags, propagation, data = _parse(options.get("o", ""))
    _call("mount", device, target, kind, flags, data)
    try:
        if propagation:
            _call("mount", "", target, "", propagation, "")
        if flags & (libc.MS_BIND | libc.MS_RDONLY) == libc.MS_BIND | libc.MS_RDONLY:
            _call("remount-ro", "", target, "", flags | libc.MS_REMOUNT, "")
    except SystemFailure:
        unmount(target)
        raise


def unmount(target: str) -> None:
    try:
        libc.umount2(target, libc.MNT_DETACH)
    except OSError as err:
        if err.errno not in (errno.EINVAL, errno.ENOENT):  # not mounted, or gone
            raise


def _call(op: str, source: str, target: str, kind: str, flags: int, data: str) -> None:
    try:
        libc.mount(source, target, kind, flags, data)
    except OSError as err:
        # moby/sys/mount's mountError text.
        text = f"{op} {source}:{target}" if source else f"{op} {target}"
        if flags:
            text += f", flags: {flags:#x}"
        if data:
            text += f", data: {data}"
        reason = os.strerror(err.errno or 0)
        raise SystemFailure(f"failed to mount local volume: {text}: "
                            f"{reason[:1].lower()}{reason[1:]}") from None


def _parse(options: str) -> tuple[int, int, str]:
    """(flags, propagation flags, data) as moby/sys/mount's parseOptions splits `o`."""
    flags = propagation = 0
    data = []
    for option in options.split(","):
        if option in _FLAGS:
            sets, flag = _FLAGS[option]
            flags = flags | flag if sets else flags & ~flag
        elif option in _PROPAGATION:
            propagation |= _PROPAGATION[option]
        elif option:
            data.append(option)
    return flags, propagation, ",".join(data)
