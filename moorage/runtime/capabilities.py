"""Linux capabilities: names, and the five sets applied to the container process.

The order follows runc (libcontainer/init_linux.go finalizeNamespace): drop the
bounding set while we still hold CAP_SETPCAP, switch user with keep-caps so the
permitted set survives setuid, then set effective/permitted/inheritable, then
raise the ambient set (which must be a subset of permitted and inheritable).
"""

from __future__ import annotations

import os

from moorage.linux import libc

NAMES = (
    "CAP_CHOWN", "CAP_DAC_OVERRIDE", "CAP_DAC_READ_SEARCH", "CAP_FOWNER", "CAP_FSETID",
    "CAP_KILL", "CAP_SETGID", "CAP_SETUID", "CAP_SETPCAP", "CAP_LINUX_IMMUTABLE",
    "CAP_NET_BIND_SERVICE", "CAP_NET_BROADCAST", "CAP_NET_ADMIN", "CAP_NET_RAW",
    "CAP_IPC_LOCK", "CAP_IPC_OWNER", "CAP_SYS_MODULE", "CAP_SYS_RAWIO", "CAP_SYS_CHROOT",
    "CAP_SYS_PTRACE", "CAP_SYS_PACCT", "CAP_SYS_ADMIN", "CAP_SYS_BOOT", "CAP_SYS_NICE",
    "CAP_SYS_RESOURCE", "CAP_SYS_TIME", "CAP_SYS_TTY_CONFIG", "CAP_MKNOD", "CAP_LEASE",
    "CAP_AUDIT_WRITE", "CAP_AUDIT_CONTROL", "CAP_SETFCAP", "CAP_MAC_OVERRIDE",
    "CAP_MAC_ADMIN", "CAP_SYSLOG", "CAP_WAKE_ALARM", "CAP_BLOCK_SUSPEND", "CAP_AUDIT_READ",
    "CAP_PERFMON", "CAP_BPF", "CAP_CHECKPOINT_RESTORE",
)
NUMBERS = {name: number for number, name in enumerate(NAMES)}


def last_cap() -> int:
    try:
        with open("/proc/sys/kernel/cap_last_cap", "rb") as f:
            return int(f.read())
    except OSError:
        return len(NAMES) - 1


def known(names: list[str] | None, limit: int) -> tuple[int, list[str]]:
    """Mask of the capabilities this kernel knows, and the names it does not.

    runc ignores unknown or unsupported names with a warning rather than
    failing, so that one profile serves kernels of different ages.
    """
    mask = 0
    unknown = []
    for name in names or ():
        number = NUMBERS.get(name)
        if number is None or number > limit:
            unknown.append(name)
        else:
            mask |= 1 << number
    return mask, unknown


class CapabilitySets:
    """The five masks of a process, resolved once before the process forks."""

    __slots__ = ("ambient", "bounding", "effective", "inheritable", "limit", "permitted",
                 "unknown")

    def __init__(self, caps: dict | None) -> None:
        caps = caps or {}
        self.limit = last_cap()
        unknown: list[str] = []
        masks = []
        for key in ("bounding", "effective", "permitted", "inheritable", "ambient"):
            mask, bad = known(caps.get(key), self.limit)
            masks.append(mask)
            unknown.extend(n for n in bad if n not in unknown)
        (self.bounding, self.effective, self.permitted, self.inheritable,
         self.ambient) = masks
        self.unknown = unknown

    def drop_bounding(self) -> None:
        for number in range(self.limit + 1):
            if not self.bounding & (1 << number):
                libc.prctl(libc.PR_CAPBSET_DROP, number)

    def apply(self) -> None:
        libc.capset(self.effective, self.permitted, self.inheritable)
        libc.prctl(libc.PR_CAP_AMBIENT, libc.PR_CAP_AMBIENT_CLEAR_ALL)
        for number in range(self.limit + 1):
            if self.ambient & (1 << number):
                try:
                    libc.prctl(libc.PR_CAP_AMBIENT, libc.PR_CAP_AMBIENT_RAISE, number)
                except OSError as err:
                    # runc ignores an ambient capability the kernel refuses
                    # (not in permitted and inheritable): same rule here.
                    if err.errno != 1:
                        raise


def switch_user(uid: int, gid: int, groups: list[int], caps: CapabilitySets) -> None:
    """Become uid/gid keeping the permitted set, then apply every set."""
    caps.drop_bounding()
    libc.prctl(libc.PR_SET_KEEPCAPS, 1)
    os.setgroups(groups)
    os.setresgid(gid, gid, gid)
    os.setresuid(uid, uid, uid)
    libc.prctl(libc.PR_SET_KEEPCAPS, 0)
    caps.apply()
