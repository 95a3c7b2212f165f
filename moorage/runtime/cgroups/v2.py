"""cgroup v2: one directory in the unified tree (runc 1.1 libcontainer/cgroups/fs2)."""

from __future__ import annotations

import os

from moorage import signals
from moorage.errors import InvalidParameter, SystemFailure
from moorage.runtime.cgroups import convert, fs
from moorage.runtime.cgroups.manager import CgroupManager
from moorage.runtime.cgroups.paths import v2_mountpoint

TYPE_CHECKING = False  # typing.TYPE_CHECKING without importing typing (see fs.py)
if TYPE_CHECKING:
    from typing import Any


class V2Manager(CgroupManager):
    @property
    def _leaf(self) -> str:
        return self.paths[""]

    def _main_dir(self) -> str:
        return self._leaf

    def _validate(self, resources: dict[str, Any]) -> None:
        cpu = resources.get("cpu") or {}
        if cpu.get("realtimeRuntime") or cpu.get("realtimePeriod"):
            raise InvalidParameter(
                "cpu.realtimeRuntime/realtimePeriod need cgroup v1; cgroup v2 has no such limit")
        for key in resources.get("unified") or {}:
            if not key or "/" in key or key.startswith("."):
                raise InvalidParameter(f"linux.resources.unified: {key!r} is not a cgroup file")
        needed = convert.v2_controllers(resources)
        if needed:
            mountpoint = v2_mountpoint()
            available = fs.read(mountpoint + "/cgroup.controllers").split()
            for controller in needed:
                if controller not in available:
                    raise SystemFailure(
                        f"cgroup v2: controller '{controller}' is not available in {mountpoint}")

    def _set(self, resources: dict[str, Any]) -> None:
        needed = convert.v2_controllers(resources)
        if needed:
            self._enable(needed)
        leaf = self._leaf
        cpu = resources.get("cpu") or {}
        if cpu.get("shares"):
            fs.write(leaf + "/cpu.weight", str(convert.shares_to_weight(cpu["shares"])))
        cpu_max = convert.cpu_max(cpu.get("quota") or 0, cpu.get("period") or 0)
        if cpu_max is not None:
            fs.write(leaf + "/cpu.max", cpu_max)
        if cpu.get("cpus"):
            fs.write(leaf + "/cpuset.cpus", cpu["cpus"])
        if cpu.get("mems"):
            fs.write(leaf + "/cpuset.mems", cpu["mems"])
        memory = resources.get("memory") or {}
        # swappiness and disableOOMKiller have no cgroup v2 file; runc ignores them too.
        limit = memory.get("limit") or 0
        swap = convert.swap_max(memory.get("swap") or 0, limit)
        if swap is not None:
            try:
                fs.write_raw(leaf + "/memory.swap.max", swap)
            except FileNotFoundError as e:
                # No swap accounting: "no swap" and "unlimited swap" hold anyway.
                if swap not in ("0", "max"):
                    raise SystemFailure(f"cgroup: cannot limit memory.swap: {leaf}/memory.swap.max"
                                      " does not exist (the kernel has swap accounting off)") from e
            except OSError as e:
                raise fs.write_error(leaf + "/memory.swap.max", swap, e) from e
        for file, value in (("memory.max", limit), ("memory.low", memory.get("reservation") or 0)):
            text = convert.limit_value(value)
            if text is not None:
                fs.write(f"{leaf}/{file}", text)
        pids = convert.limit_value((resources.get("pids") or {}).get("limit") or 0)
        if pids is not None:
            fs.write(leaf + "/pids.max", pids)
        weight = (resources.get("blockIO") or {}).get("weight")
        if weight:
            # BFQ takes blkio's scale as is; without it io.weight wants its own scale (runc).
            if os.path.exists(leaf + "/io.bfq.weight"):
                fs.write(leaf + "/io.bfq.weight", str(weight))
            else:
                fs.write(leaf + "/io.weight", str(convert.io_weight(weight)))
        for hugepage in resources.get("hugepageLimits") or ():
            fs.write(f"{leaf}/hugetlb.{hugepage['pageSize']}.max", str(hugepage["limit"]))
        for key, value in (resources.get("unified") or {}).items():
            fs.write(f"{leaf}/{key}", value)
        devices = resources.get("devices")
        if devices:
            # Only here: building the eBPF program's module costs every start ~0.1 ms.
            from moorage.runtime.cgroups import devicefilter

            devicefilter.apply(leaf, devices)

    def _enable(self, controllers: list[str]) -> None:
        """Enable `controllers` in each cgroup.subtree_control from the root to our parent."""
        mountpoint = v2_mountpoint()
        line = " ".join("+" + controller for controller in controllers)
        parent = os.path.dirname(self._leaf)
        directory = mountpoint
        for part in parent[len(mountpoint):].split("/"):
            if part:
                directory += "/" + part
            fs.write(directory + "/cgroup.subtree_control", line)

    def freeze(self) -> None:
        self._set_frozen("1")

    def thaw(self) -> None:
        self._set_frozen("0")

    def _set_frozen(self, value: str) -> None:
        fs.write(self._leaf + "/cgroup.freeze", value)
        # The write only asks; cgroup.events says when every process has stopped.
        events = self._leaf + "/cgroup.events"
        if not fs.wait_until(lambda: f"frozen {value}" in fs.read(events), timeout=5):
            if value == "1":
                fs.write(self._leaf + "/cgroup.freeze", "0")
            raise SystemFailure(f"cgroup: {events} did not reach 'frozen {value}' in 5 seconds")

    def frozen(self) -> bool:
        events = fs.read_if_exists(self._leaf + "/cgroup.events")
        return events is not None and "frozen 1" in events

    def kill_all(self, sig: int) -> None:
        # cgroup.kill (Linux 5.14) kills the whole subtree at once, forks included.
        if sig == signals.SIGKILL and os.path.exists(self._leaf + "/cgroup.kill"):
            fs.write(self._leaf + "/cgroup.kill", "1")
            return
        super().kill_all(sig)

    def oom_kills_file(self) -> str:
        return self._leaf + "/memory.events"

    def stats(self) -> dict[str, int | None]:
        leaf = self._leaf
        stats: dict[str, int | None] = {}
        usage = fs.read_if_exists(leaf + "/memory.current")
        if usage is not None:
            stats["memory_usage"] = int(usage)
            limit = fs.read(leaf + "/memory.max").strip()
            stats["memory_limit"] = None if limit == "max" else int(limit)
            for line in fs.read(self.oom_kills_file()).splitlines():
                key, _, value = line.partition(" ")
                if key == "oom_kill":
                    stats["oom_kills"] = int(value)
        cpu = fs.read_if_exists(leaf + "/cpu.stat")
        if cpu is not None:
            for line in cpu.splitlines():
                key, _, value = line.partition(" ")
                if key == "usage_usec":
                    stats["cpu_usage_ns"] = int(value) * 1000
                    break
        current = fs.read_if_exists(leaf + "/pids.current")
        if current is not None:
            stats["pids_current"] = int(current)
        return stats
