"""Pure conversions from OCI linux.resources values to cgroupfs file contents.

Each follows runc 1.1 (libcontainer/cgroups/fs, fs2 and utils.go) so that a bundle
gets the same limits from moor-runtime as from runc (runtime-spec config-linux.md).
"""

from __future__ import annotations

from moorage.errors import InvalidParameter

TYPE_CHECKING = False  # typing.TYPE_CHECKING without importing typing (see fs.py)
if TYPE_CHECKING:
    from typing import Any


def shares_to_weight(shares: int) -> int:
    """cgroup v1 cpu.shares [2, 262144] onto cgroup v2 cpu.weight [1, 10000]."""
    # runc's formula with Go's truncating division; shares below the kernel's
    # minimum of 2 map to 1 as they do there.
    return 1 + ((max(shares, 2) - 2) * 9999) // 262142


def cpu_max(quota: int, period: int) -> str | None:
    """cpu.max: "<quota> <period>", "max" for no quota; the period is left out when unset."""
    if not quota and not period:
        return None
    value = str(quota) if quota > 0 else "max"
    return f"{value} {period}" if period else value


def limit_value(value: int) -> str | None:
    """A v2 limit file value: 0 leaves the file alone, -1 (any negative) is "max"."""
    if not value:
        return None
    return str(value) if value > 0 else "max"


def swap_max(swap: int, limit: int) -> str | None:
    """memory.swap.max from OCI memory.swap, which is memory+swap as in cgroup v1."""
    if limit == -1 and not swap:
        # Unlimited memory with no word on swap means unlimited swap too, as v1 behaves.
        return "max"
    if not swap:
        return None
    if swap < 0:
        return "max"
    if limit <= 0:
        raise InvalidParameter("memory.swap: cannot limit swap without a memory limit")
    if swap < limit:
        raise InvalidParameter(
            f"memory.swap {swap} is below memory.limit {limit}: it counts memory+swap")
    return str(swap - limit)


def memsw_first(limit: int, swap: int, current_limit: int) -> bool:
    """Whether v1 memory.memsw.limit_in_bytes must be written before memory.limit_in_bytes.

    The kernel keeps memory <= memory+swap at every step, so a raise of both must
    start with memsw and a cut with the memory limit.
    """
    return bool(limit and swap) and (swap == -1 or current_limit < swap)


def io_weight(blkio_weight: int) -> int:
    """cgroup v1 blkio.weight [10, 1000] onto cgroup v2 io.weight [1, 10000]."""
    return 1 + ((blkio_weight - 10) * 9999) // 990


def device_rule(rule: dict[str, Any]) -> tuple[str, str]:
    """An OCI linux.resources.devices entry as (v1 file, line): ("devices.allow", "c 1:3 rwm")."""
    allow, kind, major, minor, access = parse_device_rule(rule)
    file = "devices.allow" if allow else "devices.deny"
    if kind == "a":
        # The kernel reads an 'a' rule as every device with every access, whatever
        # follows it; a deny of 'a' also drops the rules inherited from the parent.
        return file, "a"
    return file, f"{kind} {_device_number(major)}:{_device_number(minor)} {access}"


def parse_device_rule(rule: dict[str, Any]) -> tuple[bool, str, int | None, int | None, str]:
    """(allow, type, major, minor, access) of an OCI device rule; None is every number."""
    kind = rule.get("type") or "a"
    if kind not in ("a", "b", "c"):
        raise InvalidParameter(f"linux.resources.devices: type {kind!r} is not one of a, b, c")
    access = rule.get("access") or "rwm"
    if access.strip("rwm"):
        raise InvalidParameter(f"linux.resources.devices: access {access!r} is not made of r, w, m")
    major, minor = (None if n is None or n == -1 else n
                    for n in (rule.get("major"), rule.get("minor")))
    return bool(rule.get("allow")), kind, major, minor, access


def _device_number(number: int | None) -> str:
    return "*" if number is None else str(number)


def v2_controllers(resources: dict[str, Any]) -> list[str]:
    """The cgroup v2 controllers that must be enabled to apply `resources`."""
    cpu = resources.get("cpu") or {}
    memory = resources.get("memory") or {}
    needed = []
    if cpu.get("shares") or cpu.get("quota") or cpu.get("period"):
        needed.append("cpu")
    if cpu.get("cpus") or cpu.get("mems"):
        needed.append("cpuset")
    if memory.get("limit") or memory.get("swap") or memory.get("reservation"):
        needed.append("memory")
    if (resources.get("pids") or {}).get("limit"):
        needed.append("pids")
    if (resources.get("blockIO") or {}).get("weight"):
        needed.append("io")
    if resources.get("hugepageLimits"):
        needed.append("hugetlb")
    for key in resources.get("unified") or {}:
        controller = key.partition(".")[0]
        # cgroup.* files belong to the core, which is always there.
        if controller != "cgroup" and controller not in needed:
            needed.append(controller)
    return needed
