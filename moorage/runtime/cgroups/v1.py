"""cgroup v1: one directory per hierarchy (runc 1.1 libcontainer/cgroups/fs)."""

from __future__ import annotations

import errno
import os
import time

from moorage.errors import InvalidParameter, SystemFailure
from moorage.runtime.cgroups import convert, fs
from moorage.runtime.cgroups.manager import CgroupManager

TYPE_CHECKING = False  # typing.TYPE_CHECKING without importing typing (see fs.py)
if TYPE_CHECKING:
    from typing import Any

# The kernel shows "no limit" as PAGE_COUNTER_MAX pages in bytes, which depends on
# the page size; no real limit comes near 2**62.
_UNLIMITED = 1 << 62


class V1Manager(CgroupManager):
    def _dir(self, subsystem: str, what: str) -> str:
        directory = self.paths.get(subsystem)
        if directory is None:
            raise SystemFailure(
                f"cgroup v1: cannot set {what}: the {subsystem} hierarchy is not mounted")
        return directory

    def join_self(self) -> None:
        unified = self.unified_dir()
        for directory in self._dirs():
            if directory != unified:
                fs.write(directory + "/tasks", "0")

    def _main_dir(self) -> str:
        # runc reads the container's processes from the devices hierarchy, which
        # every v1 manager has (paths.v1_paths insists on it).
        return self.paths["devices"]

    def _validate(self, resources: dict[str, Any]) -> None:
        if resources.get("unified"):
            raise InvalidParameter(
                "linux.resources.unified needs cgroup v2; this container uses cgroup v1")
        swappiness = (resources.get("memory") or {}).get("swappiness")
        if swappiness is not None and swappiness > 100:
            raise InvalidParameter(f"memory.swappiness {swappiness} is outside 0-100")

    def _prepare(self) -> None:
        cpuset = self.paths.get("cpuset")
        if cpuset is not None:
            _inherit_cpuset(cpuset)

    def _set(self, resources: dict[str, Any]) -> None:
        cpu = resources.get("cpu") or {}
        if cpu.get("cpus"):
            fs.write(self._dir("cpuset", "cpu.cpus") + "/cpuset.cpus", cpu["cpus"])
        if cpu.get("mems"):
            fs.write(self._dir("cpuset", "cpu.mems") + "/cpuset.mems", cpu["mems"])
        devices = resources.get("devices")
        if devices:
            fs.write_commands(self._dir("devices", "devices"),
                              (convert.device_rule(rule) for rule in devices))
        memory = resources.get("memory")
        if memory:
            self._set_memory(memory)
        if cpu:
            self._set_cpu(cpu)
        limit = convert.limit_value((resources.get("pids") or {}).get("limit") or 0)
        if limit is not None:
            fs.write(self._dir("pids", "pids.limit") + "/pids.max", limit)
        weight = (resources.get("blockIO") or {}).get("weight")
        if weight:
            directory = self._dir("blkio", "blockIO.weight")
            # With the BFQ scheduler the weight lives in blkio.bfq.weight (runc checks so too).
            file = directory + "/blkio.bfq.weight"
            if not os.path.exists(file):
                file = directory + "/blkio.weight"
            fs.write(file, str(weight))
        for hugepage in resources.get("hugepageLimits") or ():
            directory = self._dir("hugetlb", "hugepageLimits")
            file = f"{directory}/hugetlb.{hugepage['pageSize']}.limit_in_bytes"
            fs.write(file, str(hugepage["limit"]))

    def _set_memory(self, memory: dict[str, Any]) -> None:
        limit = memory.get("limit") or 0
        swap = memory.get("swap") or 0
        reservation = memory.get("reservation") or 0
        swappiness = memory.get("swappiness")
        oom = memory.get("disableOOMKiller")
        if not (limit or swap or reservation or oom) and swappiness is None:
            return
        directory = self._dir("memory", "memory limits")
        memsw = directory + "/memory.memsw.limit_in_bytes"
        if swap or limit == -1:
            has_memsw = os.path.exists(memsw)
            if swap and not has_memsw:
                raise SystemFailure(f"cgroup: cannot limit memory.swap: {memsw} does not exist"
                                  " (the kernel has swap accounting off; boot with swapaccount=1)")
            if limit == -1 and not swap and has_memsw:
                # Unlimited memory with no word on swap means unlimited swap (runc).
                swap = -1
        current = int(fs.read(directory + "/memory.limit_in_bytes")) if limit and swap else 0
        if convert.memsw_first(limit, swap, current):
            fs.write(memsw, str(swap))
            _set_memory_limit(directory, limit)
        else:
            if limit:
                _set_memory_limit(directory, limit)
            if swap:
                fs.write(memsw, str(swap))
        if reservation:
            fs.write(directory + "/memory.soft_limit_in_bytes", str(reservation))
        if oom:
            fs.write(directory + "/memory.oom_control", "1")
        if swappiness is not None:
            fs.write(directory + "/memory.swappiness", str(swappiness))

    def _set_cpu(self, cpu: dict[str, Any]) -> None:
        shares = cpu.get("shares")
        quota = cpu.get("quota") or 0
        period = cpu.get("period") or 0
        rt_period = cpu.get("realtimePeriod")
        rt_runtime = cpu.get("realtimeRuntime")
        if not (shares or quota or period or rt_period or rt_runtime):
            return
        directory = self._dir("cpu", "cpu limits")
        if shares:
            fs.write(directory + "/cpu.shares", str(shares))
            # The kernel clamps out-of-range shares silently; say so instead.
            actual = int(fs.read(directory + "/cpu.shares"))
            if actual != shares:
                bound = "maximum" if shares > actual else "minimum"
                raise InvalidParameter(f"cpu.shares {shares}: the {bound} allowed is {actual}")
        retry_period = False
        if period:
            try:
                fs.write_raw(directory + "/cpu.cfs_period_us", str(period))
            except OSError as e:
                # A shorter period can break the parent's quota with the old quota
                # still in place: set the quota first, then the period again.
                if e.errno != errno.EINVAL or not quota:
                    raise fs.write_error(directory + "/cpu.cfs_period_us", str(period), e) from e
                retry_period = True
        if quota:
            fs.write(directory + "/cpu.cfs_quota_us", str(quota))
            if retry_period:
                fs.write(directory + "/cpu.cfs_period_us", str(period))
        if rt_period:
            fs.write(directory + "/cpu.rt_period_us", str(rt_period))
        if rt_runtime:
            fs.write(directory + "/cpu.rt_runtime_us", str(rt_runtime))

    def freeze(self) -> None:
        state = self._dir("freezer", "the freezer") + "/freezer.state"
        deadline = time.monotonic() + 2
        attempt = 0
        while time.monotonic() < deadline:
            attempt += 1
            if attempt % 50 == 0:
                # A v1 freeze can stall in FREEZING while processes keep forking
                # or joining; a short thaw gives it a fresh start (runc does this).
                fs.write(state, "THAWED")
                time.sleep(0.01)
            fs.write(state, "FROZEN")
            current = fs.read(state).strip()
            if current == "FROZEN":
                return
            if current != "FREEZING":
                raise SystemFailure(f"cgroup: {state} went {current} while freezing")
            time.sleep(0.001)
        fs.write(state, "THAWED")
        raise SystemFailure(f"cgroup: cannot freeze {os.path.dirname(state)}: it stayed FREEZING")

    def thaw(self) -> None:
        fs.write(self._dir("freezer", "the freezer") + "/freezer.state", "THAWED")

    def frozen(self) -> bool:
        directory = self.paths.get("freezer")
        state = fs.read_if_exists(directory + "/freezer.state") if directory else None
        return state is not None and state.strip() == "FROZEN"

    def oom_kills_file(self) -> str:
        # memory.oom_control counts the OOM kills in this cgroup (kernel 4.13+).
        memory = self.paths.get("memory")
        return memory + "/memory.oom_control" if memory else ""

    def stats(self) -> dict[str, int | None]:
        stats: dict[str, int | None] = {}
        memory = self.paths.get("memory")
        if memory:
            stats["memory_usage"] = int(fs.read(memory + "/memory.usage_in_bytes"))
            limit = int(fs.read(memory + "/memory.limit_in_bytes"))
            stats["memory_limit"] = None if limit >= _UNLIMITED else limit
            stats["oom_kills"] = _field(fs.read(self.oom_kills_file()), "oom_kill")
        cpuacct = self.paths.get("cpuacct")
        if cpuacct:
            stats["cpu_usage_ns"] = int(fs.read(cpuacct + "/cpuacct.usage"))
        pids = self.paths.get("pids")
        if pids:
            stats["pids_current"] = int(fs.read(pids + "/pids.current"))
        return stats


def _field(text: str, name: str) -> int | None:
    """The value of `name` in a flat keyed file ("key value" lines)."""
    for line in text.splitlines():
        key, _, value = line.partition(" ")
        if key == name:
            return int(value)
    return None


def _set_memory_limit(directory: str, limit: int) -> None:
    path = directory + "/memory.limit_in_bytes"
    try:
        fs.write_raw(path, str(limit))
    except OSError as e:
        if e.errno != errno.EBUSY:
            raise fs.write_error(path, str(limit), e) from e
        # EBUSY: the cgroup already uses more than the new limit and cannot reclaim it.
        usage = fs.read(directory + "/memory.usage_in_bytes").strip()
        raise SystemFailure(f"cgroup: cannot set memory limit {limit} in {directory}:"
                          f" current usage is {usage}") from e


def _inherit_cpuset(leaf: str) -> None:
    """Give empty cpuset.cpus/mems the values of the nearest ancestor that has them.

    A new v1 cpuset cgroup starts with none, and a process cannot join it so.
    """
    for name in ("cpuset.cpus", "cpuset.mems"):
        empty = []
        directory = leaf
        while not (value := fs.read(f"{directory}/{name}").strip()):
            empty.append(directory)
            directory = os.path.dirname(directory)
        for directory in reversed(empty):
            fs.write(f"{directory}/{name}", value)
